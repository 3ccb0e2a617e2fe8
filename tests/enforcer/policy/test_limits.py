"""Limits and windows: promotions per module and per actor per UTC day, install windows with
the next one in the hint, and rollback windows by risk class (then only an admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from phasegate_testkit import BOB
from policy_kit import ALICE, ROOT, heading, lines, policy_world, refusal

SATURDAY_NOON = datetime(2026, 1, 3, 12, 0, tzinfo=UTC)
DAY = 86400


async def test_promotions_per_module_per_day_then_the_next_day(tmp_path: Path) -> None:
    async with policy_world(tmp_path, "[policy]\nmax_promotions_per_day = 2\n") as w:
        await w.promoted({"a.md": heading("a")})
        draft = await w.draft({"b.md": heading("b")})
        check = await w.e.modules.policy_check(draft, ALICE)
        assert check["details"]["limits"]["module"] == {"used": 1, "left": 1}
        await w.e.modules.draft_promote(ALICE, draft)
        third = await w.draft({"c.md": heading("c")})
        err = await refusal(w.e.modules.draft_promote(ALICE, third))
        assert err.code == "POLICY_DENIED" and err.details["rules"] == ["max_promotions_per_day"]
        assert err.details["limits"]["module"] == {"used": 2, "left": 0}
        assert "2026-01-02T00:00:00.000000Z" in err.hint
        rejected = (await w.ledger("promotion.rejected"))[-1]
        assert rejected.data["rules"] == ["max_promotions_per_day"]
        await w.later(12 * 3600)  # 2026-01-02 00:00 UTC: a new day
        assert (await w.e.modules.draft_promote(ALICE, third))["version"] == 4


async def test_promotions_per_actor_per_day_across_modules(tmp_path: Path) -> None:
    async with policy_world(tmp_path, "[policy]\nmax_promotions_per_day = 2\n") as w:
        await w.register("tools")
        await w.promoted({"a.md": heading("a")})
        await w.promoted({"a.md": heading("a")}, module="tools")
        draft = await w.draft({"b.md": heading("b")}, module="tools")
        err = await refusal(w.e.modules.draft_promote(ALICE, draft))
        assert err.details["limits"]["actor"] == {"actor": "alice", "used": 2, "left": 0}
        assert err.details["limits"]["module"] == {"used": 1, "left": 1}
        assert "alice has made 2" in err.message
        await w.e.task_start(BOB, "bob's change", "T2")
        by_bob = await w.draft({"c.md": heading("c")}, module="tools", caller=BOB, task="T2")
        assert (await w.e.modules.draft_promote(BOB, by_bob))["version"] == 3


async def test_install_outside_the_windows_is_refused_with_the_next_one(tmp_path: Path) -> None:
    policy = '[policy.modules.skills]\ninstall_windows = ["Mon-Fri 08:00-18:00"]\n'
    # Registering installs v1 on a Saturday: a module's first install has nothing to protect.
    async with policy_world(tmp_path, policy, start=SATURDAY_NOON) as w:
        version = await w.promoted({"a.md": heading("a")})
        err = await refusal(w.e.modules.module_install(ALICE, "skills", version, task="T1"))
        assert err.code == "POLICY_DENIED" and err.details["rules"] == ["install_windows"]
        assert err.details["next_window"] == "2026-01-05T08:00:00.000000Z"
        assert "2026-01-05T08:00:00.000000Z" in err.hint and "1d 20h" in err.hint
        admin = await refusal(w.e.modules.module_install(ROOT, "skills", version))
        assert admin.code == "POLICY_DENIED"  # windows bind supervisors too
        refused = (await w.ledger("module.install_refused"))[-1]
        assert refused.data["rules"] == ["install_windows"] and refused.data["version"] == 2
        assert (await w.e.modules.module_versions("skills"))["active"] == 1
        await w.later(44 * 3600 + 1)  # Monday 08:00:01
        out = await w.e.modules.module_install(ALICE, "skills", version, task="T1")
        assert out["version"] == 2 and out["rules"] == ["install_windows"]
        assert w.installed_text("a.md") == heading("a")


@pytest.mark.parametrize(
    ("files", "risk", "window"),
    [
        ({"a.md": heading("a")}, "LOW", 3 * DAY),
        ({"a.md": lines(80)}, "MEDIUM", 7 * DAY),
        ({"auth/a.md": heading("a")}, "HIGH", 30 * DAY),
    ],
)
async def test_an_agent_may_roll_back_within_the_window_of_the_risk_class_then_only_an_admin(
    tmp_path: Path, files: dict[str, str | None], risk: str, window: int
) -> None:
    policy = '[policy.risk]\nhigh_paths = ["auth/"]\n'
    async with policy_world(tmp_path, policy) as w:
        draft = await w.draft(files)
        if risk != "LOW":
            ask = await refusal(w.e.modules.draft_promote(ALICE, draft))
            await w.e.approvals.approve(ROOT, ask.details["approval"]["id"], "ok")
        version = (await w.e.modules.draft_promote(ALICE, draft))["version"]
        await w.e.modules.module_install(ALICE, "skills", version, task="T1")
        await w.later(window)
        inside = await w.e.modules.module_rollback(ALICE, "skills", "smoke failed", task="T1")
        assert inside["version"] == 1 and inside["rules"] == ["rollback_window_s"]
        await w.e.modules.module_install(ALICE, "skills", version, task="T1")
        await w.later(window + 1)
        err = await refusal(w.e.modules.module_rollback(ALICE, "skills", "late", task="T1"))
        assert err.code == "FORBIDDEN" and err.details["rules"] == ["rollback_window_s"]
        assert err.details["rollback"]["risk"] == risk
        assert err.details["rollback"]["window_s"] == window
        assert "only an admin" in err.message and "phasegate module rollback" in err.hint
        refused = (await w.ledger("module.install_refused"))[-1]
        assert refused.data["action"] == "module.rolled_back"
        out = await w.e.modules.module_rollback(ROOT, "skills", "supervisor rolls back")
        assert out["version"] == 1
        assert await w.e.replay_equals_store()
