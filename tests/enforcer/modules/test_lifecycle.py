"""The change lifecycle through the enforcer: validation gates promotion, promotion needs the
newest base, the pause is checked twice, the freeze and an unreadable control refuse, a hung
validator is stopped, and each step is one ledger entry with its actor and hashes — which a
replay turns back into exactly the store's tables."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from modules_kit import ADMIN, ME, World, at_phase, promote_change, world

from enforcer.errors import (
    ConflictError,
    FrozenError,
    NotValidatedError,
    PromotionPausedError,
    StoreError,
)
from enforcer.modules import halt_points


async def entries(w: World, kind: str | None = None) -> list[dict[str, Any]]:
    rows = await w.e.store.read(lambda tx: tx.all("SELECT entry FROM ledger ORDER BY seq"))
    found = [json.loads(r[0]) for r in rows]
    return [x for x in found if kind is None or x["type"] == kind]


async def test_each_step_is_ledgered_with_its_actor_and_hashes_and_replays(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        v2 = await promote_change(w, {"SKILL.md": "# Two\n", "prompts/new.md": "# New\n"})
        await w.e.modules.module_install(ME, "skills", 2, task="T1")
        await at_phase(w.e, "T1", "MONITOR")
        await w.e.modules.module_rollback(ME, "skills", "v2 breaks reviews", task="T1")
        steps = [
            x
            for x in await entries(w)
            if x["type"].split(".")[0] in ("module", "draft", "promotion")
        ]
        assert [x["type"] for x in steps] == [
            "module.registered",
            "module.installed",
            "draft.created",
            "draft.edited",
            "draft.edited",
            "draft.validation_started",
            "draft.validated",
            "promotion.promoted",
            "module.installed",
            "module.rolled_back",
        ]
        assert {x["actor"] for x in steps[:2]} == {ADMIN.actor}
        assert {x["actor"] for x in steps[2:]} == {ME.actor}
        assert all(x["subject"]["task"] == "T1" for x in steps[2:])
        promoted = steps[7]["data"]
        assert promoted["bundle_sha256"] == v2["bundle_sha256"] == steps[4]["data"]["bundle_sha256"]
        assert promoted["diff_sha256"] == v2["diff_sha256"]
        assert promoted["report_sha256"] == steps[6]["data"]["report_sha256"]
        assert promoted["attestation_sha256"] == steps[8]["data"]["attestation_sha256"]
        assert (
            steps[9]["data"].items()
            >= {
                "version": 1,
                "from_version": 2,
                "reason": "v2 breaks reviews",
            }.items()
        )
        assert await w.e.replay_equals_store()
        listed = await w.e.modules.module_versions("skills")
        assert listed["active"] == 1 and [v["version"] for v in listed["versions"]] == [1, 2]


async def test_promotion_needs_a_validation_of_exactly_the_current_content(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        await at_phase(w.e, "T1", "PR")
        with pytest.raises(NotValidatedError):
            await m.draft_promote(ME, draft)
        assert (await entries(w, "promotion.blocked"))[-1]["data"]["code"] == "NOT_VALIDATED"
        assert (await m.draft_validate(ME, draft))["state"] == "VALIDATED"
        await m.draft_write(ME, draft, "SKILL.md", "# Two, edited after validation\n")
        assert (await m.draft_show(draft))["state"] == "EDITING"
        with pytest.raises(NotValidatedError):
            await m.draft_promote(ME, draft)
        assert (await m.draft_validate(ME, draft))["state"] == "VALIDATED"
        assert (await m.draft_promote(ME, draft))["version"] == 2


async def test_a_failing_validator_fails_the_draft_and_makes_no_version(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "notes.md", "no heading here\n")
        result = await m.draft_validate(ME, draft)
        assert result["state"] == "FAILED"
        assert result["report"]["exit_code"] == 1
        assert "no heading: notes.md" in result["report"]["stdout_tail"]
        assert result["report"]["bundle_sha256"] == result["bundle_sha256"]
        shown = await m.draft_show(draft)
        assert shown["state"] == "FAILED" and shown["report"]["exit_code"] == 1
        await at_phase(w.e, "T1", "PR")
        with pytest.raises(NotValidatedError):
            await m.draft_promote(ME, draft)
        assert (await m.module_versions("skills"))["newest"] == 1
        assert (await entries(w, "draft.validation_failed"))[-1]["data"]["exit_code"] == 1


async def test_a_draft_behind_the_newest_version_conflicts_until_rebased(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await w.e.task_start(ME, "second change", "T2")
        await at_phase(w.e, "T2", "IMPLEMENT")
        late = (await m.draft_create(ME, "T2", "skills"))["draft"]
        await m.draft_write(ME, late, "prompts/review.md", "# Review prompt\n\nBe kind.\n")
        await promote_change(w, {"SKILL.md": "# Review skill v2\n"})  # T1 makes v2 first
        assert (await m.draft_validate(ME, late))["state"] == "VALIDATED"
        await at_phase(w.e, "T2", "PR")
        with pytest.raises(ConflictError) as caught:
            await m.draft_promote(ME, late)
        assert "draft_rebase" in caught.value.hint
        await w.e.phase_backtrack(ME, "T2", "IMPLEMENT", "rebase the draft")
        rebased = await m.draft_rebase(ME, late)
        assert (rebased["base_version"], rebased["state"]) == (2, "EDITING")
        shown = await m.draft_show(late, "SKILL.md")
        assert shown["file"]["content"] == "# Review skill v2\n"  # v2's change is in
        assert (await m.draft_show(late, "prompts/review.md"))["file"]["content"].endswith(
            "kind.\n"
        )
        await m.draft_validate(ME, late)
        await at_phase(w.e, "T2", "PR")
        assert (await m.draft_promote(ME, late))["version"] == 3


async def test_a_rebase_whose_changes_collide_is_a_conflict_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await w.e.task_start(ME, "second change", "T2")
        await at_phase(w.e, "T2", "IMPLEMENT")
        late = (await m.draft_create(ME, "T2", "skills"))["draft"]
        before = await m.draft_write(ME, late, "SKILL.md", "# Review skill, T2's way\n")
        await promote_change(w, {"SKILL.md": "# Review skill, T1's way\n"})
        with pytest.raises(ConflictError) as caught:
            await m.draft_rebase(ME, late)
        assert caught.value.details["paths"] == ["SKILL.md"]
        after = await m.draft_show(late)
        assert (after["bundle_sha256"], after["base_version"]) == (before["bundle_sha256"], 1)


async def test_the_pause_refuses_promotion_before_it_starts_while_other_tools_work(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        await w.e.set_control(ADMIN, "promotions_paused", True, "release freeze week")
        await m.draft_write(ME, draft, "SKILL.md", "# Two, still editable\n")
        assert (await m.draft_validate(ME, draft))["state"] == "VALIDATED"
        await m.draft_diff(draft)
        await at_phase(w.e, "T1", "PR")
        with pytest.raises(PromotionPausedError):
            await m.draft_promote(ME, draft)
        await m.module_install(ME, "skills", 1, task="T1")  # other tools still work
        assert (await entries(w, "promotion.blocked"))[-1]["data"]["code"] == "PROMOTION_PAUSED"
        await w.e.set_control(ADMIN, "promotions_paused", False, "over")
        assert (await m.draft_promote(ME, draft))["version"] == 2


async def test_a_pause_set_during_a_promotion_refuses_it_right_before_the_pointer_moves(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        await m.draft_validate(ME, draft)
        await at_phase(w.e, "T1", "PR")

        async def pause_now() -> None:  # after the first check and the signature
            await w.e.set_control(ADMIN, "promotions_paused", True, "stop that one")

        halt_points.set_hook("promote:signed", pause_now)
        try:
            with pytest.raises(PromotionPausedError):
                await m.draft_promote(ME, draft)
        finally:
            halt_points.set_hook("promote:signed", None)
        assert (await m.module_versions("skills"))["newest"] == 1
        assert (await m.draft_show(draft))["state"] == "VALIDATED"
        await w.e.set_control(ADMIN, "promotions_paused", False, "go on")
        assert (await m.draft_promote(ME, draft))["version"] == 2


async def test_the_freeze_refuses_every_mutating_module_call(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        v2 = await promote_change(w)
        await m.module_install(ME, "skills", v2["version"], task="T1")
        await w.e.phase_backtrack(ME, "T1", "IMPLEMENT", "one more draft")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await w.e.set_control(ADMIN, "freeze", True, "incident")
        src = tmp_path / "src2"
        src.mkdir()
        (src / "a.md").write_text("# a\n")
        calls = {
            "draft_create": lambda: m.draft_create(ME, "T1", "skills"),
            "draft_write": lambda: m.draft_write(ME, draft, "a.md", "# a\n"),
            "draft_delete_file": lambda: m.draft_delete_file(ME, draft, "SKILL.md"),
            "draft_apply_patch": lambda: m.draft_apply_patch(
                ME, draft, "--- /dev/null\n+++ b/z.md\n@@ -0,0 +1 @@\n+# z\n"
            ),
            "draft_rebase": lambda: m.draft_rebase(ME, draft),
            "draft_validate": lambda: m.draft_validate(ME, draft),
            "draft_discard": lambda: m.draft_discard(ME, draft, "no"),
            "draft_promote": lambda: m.draft_promote(ME, "skills-d1"),
            "module_install": lambda: m.module_install(ME, "skills", v2["version"], task="T1"),
            "module_rollback": lambda: m.module_rollback(ADMIN, "skills", "no"),
            "module_add": lambda: m.module_add(
                ADMIN, "other", src, tmp_path / "live" / "other", ["true"]
            ),
        }
        for name, call in calls.items():
            with pytest.raises(FrozenError):
                await call()
                pytest.fail(f"{name} went through the freeze")
        assert (await m.module_versions("skills"))["active"] == 2
        assert await m.draft_diff(draft)  # reads still work
        assert not (tmp_path / "live" / "other").exists()


async def test_unreadable_controls_refuse_promotion_and_every_change(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        await m.draft_validate(ME, draft)
        await at_phase(w.e, "T1", "PR")
        conn = sqlite3.connect(w.state / "phasegate.db", isolation_level=None)
        conn.execute("ALTER TABLE controls RENAME TO controls_gone")
        conn.close()
        for call in (
            m.draft_promote(ME, draft),
            m.module_install(ME, "skills", 1, task="T1"),
            m.draft_write(ME, draft, "SKILL.md", "# Three\n"),
        ):
            with pytest.raises(StoreError):
                await call
        conn = sqlite3.connect(w.state / "phasegate.db", isolation_level=None)
        conn.execute("ALTER TABLE controls_gone RENAME TO controls")
        conn.close()
        assert (await m.module_versions("skills"))["newest"] == 1


async def test_a_validator_past_its_time_fails_the_draft_while_other_calls_are_answered(
    tmp_path: Path,
) -> None:
    import asyncio
    import sys

    hang = [sys.executable, "-c", "import time; time.sleep(300)"]
    async with world(tmp_path, validator=hang, timeout_s=2) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        running = asyncio.create_task(m.draft_validate(ME, draft))
        for _ in range(100_000):  # yield (bounded) until the run has started
            if (await m.draft_show(draft))["state"] == "VALIDATING":
                break
            await asyncio.sleep(0)
        for _ in range(20):  # the server keeps answering while the validator runs
            await m.module_list()
            await m.draft_diff(draft)
        assert not running.done()
        result = await asyncio.wait_for(running, 60)
        assert result["state"] == "FAILED"
        assert result["report"]["stopped_by"] == "timeout"
        assert result["report"]["duration_ms"] < 30_000
        assert (await m.draft_show(draft))["state"] == "FAILED"
