"""The dry run (policy_check) answers exactly what the promotion then decides, rule by rule:
the same decision, reason, risk, rules, approval, exceptions, details and policy hash."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from policy_kit import ALICE, ROOT, PolicyWorld, heading, lines, policy_world, refusal

from enforcer.errors import PhasegateError

POLICY = """
[policy]
max_promotions_per_day = 3
approval_expiry_s = 3600
[policy.risk]
high_paths = ["**/auth/**"]
"""
KEYS = ("decision", "reason", "policy_set_hash", "approval", "risk", "rules", "exceptions")

Setup = Callable[[PolicyWorld], Awaitable[str]]


async def low(w: PolicyWorld) -> str:
    return await w.draft({"a.md": heading("a")})


async def medium_lines(w: PolicyWorld) -> str:
    return await w.draft({"a.md": lines(51)})


async def medium_files(w: PolicyWorld) -> str:
    return await w.draft({f"n/{i}.md": "# n\n" for i in range(11)})


async def high(w: PolicyWorld) -> str:
    return await w.draft({"src/auth/a.md": heading("a")})


async def approved(w: PolicyWorld) -> str:
    draft = await medium_lines(w)
    ask = await refusal(w.e.modules.draft_promote(ALICE, draft))
    await w.e.approvals.approve(ROOT, ask.details["approval"]["id"], "ok")
    return draft


async def rejected(w: PolicyWorld) -> str:
    draft = await medium_lines(w)
    ask = await refusal(w.e.modules.draft_promote(ALICE, draft))
    await w.e.approvals.reject(ROOT, ask.details["approval"]["id"], "no")
    return draft


async def pending(w: PolicyWorld) -> str:
    draft = await medium_lines(w)
    await refusal(w.e.modules.draft_promote(ALICE, draft))
    return draft


async def stale(w: PolicyWorld) -> str:
    draft = await approved(w)
    await w.e.modules.draft_write(ALICE, draft, "b.md", heading("b"))
    await w.e.modules.draft_validate(ALICE, draft)
    return draft


async def expired(w: PolicyWorld) -> str:
    draft = await pending(w)
    await w.later(3600)
    return draft


async def forbidden(w: PolicyWorld) -> str:
    draft = await w.draft({"secrets/a.md": heading("a")})
    w.write_policy(POLICY + '[policy.modules.skills]\nforbidden_paths = ["secrets/**"]\n')
    return draft


async def locked(w: PolicyWorld) -> str:
    draft = await w.draft({"SKILL.md": heading("changed")})
    w.write_policy(POLICY + '[policy.modules.skills]\nlocked_paths = ["SKILL.md"]\n')
    return draft


async def daily_limit(w: PolicyWorld) -> str:
    for name in ("x", "y", "z"):
        await w.promoted({f"{name}.md": heading(name)})
    return await low(w)


async def lifted(w: PolicyWorld) -> str:
    draft = await forbidden(w)
    await w.e.exceptions.grant(ROOT, "skills", "forbidden_paths", "+1h", "key rotation")
    return draft


async def lifted_then_ended(w: PolicyWorld) -> str:
    draft = await lifted(w)
    await w.later(3600)
    return draft


async def policy_file_typo(w: PolicyWorld) -> str:
    draft = await medium_lines(w)
    w.write_policy("[policy]\nauto_aprove = ['LOW', 'MEDIUM']\n")
    return draft


CASES: dict[str, tuple[Setup, str]] = {
    "low_auto_approved": (low, "allow"),
    "medium_changed_lines": (medium_lines, "needs_approval"),
    "medium_files": (medium_files, "needs_approval"),
    "high_paths": (high, "needs_approval"),
    "pending": (pending, "needs_approval"),
    "approved": (approved, "allow"),
    "rejected": (rejected, "deny"),
    "stale_after_an_edit": (stale, "needs_approval"),
    "expired": (expired, "needs_approval"),
    "forbidden_path": (forbidden, "deny"),
    "locked_path": (locked, "deny"),
    "daily_limit": (daily_limit, "deny"),
    "exception_lifts_a_rule": (lifted, "allow"),
    "exception_ended": (lifted_then_ended, "deny"),
    "policy_file_typo": (policy_file_typo, "needs_approval"),
}


def _decision_of(entry_data: dict[str, Any]) -> dict[str, Any]:
    return {k: entry_data[k] for k in (*KEYS, "details")}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_dry_run_equals_the_decision_the_promotion_takes(
    tmp_path: Path, case: str
) -> None:
    setup, expected = CASES[case]
    async with policy_world(tmp_path, POLICY) as w:
        draft = await setup(w)
        check = await w.e.modules.policy_check(draft, ALICE)
        assert check["decision"] == expected, check
        try:
            out = await w.e.modules.draft_promote(ALICE, draft)
        except PhasegateError as e:
            taken = (await w.ledger())[-1]
            assert taken.type in ("promotion.requested", "promotion.rejected")
            assert _decision_of(taken.data) == _decision_of(check)
            assert e.details["rules"] == check["rules"]
            assert e.details.get("approval") == check["approval"]
            return
        promoted = (await w.ledger("promotion.promoted"))[-1].data
        assert check["decision"] == promoted["decision"] == "allow"
        for key in ("policy_set_hash", "risk", "rules", "exceptions"):
            assert promoted[key] == check[key] == out[key], key
        assert promoted["approval"] == (check["approval"] or {}).get("id")


async def test_the_dry_run_says_what_install_would_meet_and_the_install_agrees(
    tmp_path: Path,
) -> None:
    windows = '[policy.modules.skills]\ninstall_windows = ["Sat 13:00-14:00"]\n'
    async with policy_world(tmp_path, windows) as w:
        w.clock.advance(2 * 86400)  # Saturday 12:00
        await w.e.lease_acquire(ALICE, "T1")
        draft = await low(w)
        check = await w.e.modules.policy_check(draft, ALICE)
        assert check["install"]["decision"] == "deny"
        version = (await w.e.modules.draft_promote(ALICE, draft))["version"]
        err = await refusal(w.e.modules.module_install(ALICE, "skills", version, task="T1"))
        refused = (await w.ledger("module.install_refused"))[-1].data
        assert {k: refused[k] for k in KEYS} == {k: check["install"][k] for k in KEYS}
        assert err.details["next_window"] == check["install"]["details"]["next_window"]
        assert check["details"]["rollback_window_s"] == 259200
        await w.later(3600)
        assert (await w.e.modules.policy_check(draft, ALICE))["install"]["decision"] == "allow"
        await w.e.modules.module_install(ALICE, "skills", version, task="T1")
