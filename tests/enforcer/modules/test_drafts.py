"""Drafts through the enforcer: never installable, several per module, discarded ones kept,
a promoted one frozen for good, only the task's lease holder edits, and the policy hook's
decisions obeyed at edits and at promotion (deny, needs approval, allow), each ledgered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from modules_kit import ME, OTHER, World, at_phase, world

from enforcer.errors import (
    ApprovalRequiredError,
    ConflictError,
    NotFoundError,
    PolicyDeniedError,
)
from enforcer.modules.policy_hook import Decision, PolicyRequest
from enforcer.store import Tx


async def entries(w: World, kind: str | None = None) -> list[dict[str, Any]]:
    rows = await w.e.store.read(lambda tx: tx.all("SELECT entry FROM ledger ORDER BY seq"))
    found = [json.loads(r[0]) for r in rows]
    return [x for x in found if kind is None or x["type"] == kind]


class Rules:
    """A policy hook for the test: decides promotions by what the test sets."""

    def __init__(self) -> None:
        self.promote = Decision.allow("rules-1")
        self.seen: list[PolicyRequest] = []

    def decide(self, request: PolicyRequest, tx: Tx) -> Decision:
        self.seen.append(request)
        if request.point == "edit" and "secrets/key.txt" in request.paths:
            return Decision.deny("rules-1", "secrets/** is forbidden", "forbidden_paths")
        return self.promote if request.point == "promote" else Decision.allow("rules-1")

    def approval_of(self, draft: str, tx: Tx) -> dict[str, Any] | None:
        return None


async def test_the_policy_hook_denies_edits_and_asks_for_approval_at_promotion(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        rules = Rules()
        w.e.modules.kit.policy = rules
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        with pytest.raises(PolicyDeniedError) as denied:
            await m.draft_write(ME, draft, "secrets/key.txt", "k")
        assert denied.value.details["rules"] == ["forbidden_paths"]
        assert (await m.draft_show(draft))["state"] == "CREATED"
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        await m.draft_validate(ME, draft)
        await at_phase(w.e, "T1", "PR")
        request = {"id": "A-1", "risk": "HIGH", "diff_sha256": "…"}
        rules.promote = Decision.needs_approval("rules-1", "HIGH risk needs a person", request)
        assert (await m.policy_check(draft))["decision"] == "needs_approval"
        with pytest.raises(ApprovalRequiredError) as asked:
            await m.draft_promote(ME, draft)
        assert asked.value.details["approval"] == request
        assert (await entries(w, "promotion.requested"))[-1]["data"]["approval"] == request
        rules.promote = Decision.deny("rules-1", "not today", "windows")
        with pytest.raises(PolicyDeniedError):
            await m.draft_promote(ME, draft)
        assert (await entries(w, "promotion.rejected"))[-1]["data"]["reason"] == "not today"
        rules.promote = Decision.allow("rules-1")
        promoted = await m.draft_promote(ME, draft)
        assert promoted["policy_set_hash"] == "rules-1"
        last = rules.seen[-1]
        assert (last.point, last.files, last.paths, last.diff_sha256) == (
            "promote",
            1,
            ("SKILL.md",),
            promoted["diff_sha256"],
        )


async def test_drafts_are_never_installable_and_a_promoted_one_takes_no_edits(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await m.draft_create(ME, "T1", "skills"))["draft"]
        await m.draft_write(ME, draft, "SKILL.md", "# Two\n")
        await m.draft_validate(ME, draft)
        await at_phase(w.e, "T1", "PR")
        with pytest.raises(NotFoundError):  # the only thing install takes is a version
            await m.module_install(ME, "skills", 2, task="T1")
        assert not any("# Two" in t for t in w.installed().values()), (
            "a draft's content reached the install path"
        )
        await m.draft_promote(ME, draft)
        await w.e.phase_backtrack(ME, "T1", "IMPLEMENT", "again")
        with pytest.raises(ConflictError):
            await m.draft_write(ME, draft, "SKILL.md", "# Three\n")
        with pytest.raises(ConflictError):
            await m.draft_promote(ME, draft)


async def test_several_drafts_per_module_and_a_discarded_one_is_kept(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        m = w.e.modules
        await at_phase(w.e, "T1", "IMPLEMENT")
        one = (await m.draft_create(ME, "T1", "skills"))["draft"]
        two = (await m.draft_create(ME, "T1", "skills", 1))["draft"]
        assert (one, two) == ("skills-d1", "skills-d2")
        await m.draft_write(ME, one, "a.md", "# one\n")
        await m.draft_write(ME, two, "b.md", "# two\n")
        assert [c["path"] for c in (await m.draft_diff(one))["changes"]] == ["a.md"]
        assert [c["path"] for c in (await m.draft_diff(two))["changes"]] == ["b.md"]
        gone = await m.draft_discard(ME, two, "duplicate")
        assert gone["state"] == "DISCARDED"
        assert (await m.draft_show(two))["state"] == "DISCARDED"
        with pytest.raises(ConflictError):
            await m.draft_write(ME, two, "b.md", "# again\n")


async def test_another_agent_cannot_change_a_draft_of_a_task_it_does_not_hold(
    tmp_path: Path,
) -> None:
    from enforcer.errors import LeaseHeldError

    async with world(tmp_path) as w:
        await at_phase(w.e, "T1", "IMPLEMENT")
        draft = (await w.e.modules.draft_create(ME, "T1", "skills"))["draft"]
        with pytest.raises(LeaseHeldError):
            await w.e.modules.draft_write(OTHER, draft, "SKILL.md", "# mine\n")
