"""Time-bound exceptions: one rule lifted for one module until a moment, named in every
decision it changed, ending by itself at its expiry or when revoked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from policy_kit import ALICE, ROOT, heading, lines, policy_world, refusal

from enforcer.model import Caller

POLICY = """
[policy]
max_promotions_per_day = 1
[policy.modules.skills]
forbidden_paths = ["secrets/**"]
locked_paths = ["SKILL.md"]
install_windows = ["Mon-Fri 08:00-18:00"]
"""
SATURDAY_NOON = datetime(2026, 1, 3, 12, 0, tzinfo=UTC)


async def test_an_exception_lifts_a_rule_until_its_expiry_and_not_after(tmp_path: Path) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        assert (await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# x\n"))).code == (
            "POLICY_DENIED"
        )
        granted = await w.e.exceptions.grant(ROOT, "skills", "locked_paths", "+2h", "INC-7")
        assert granted["id"] == "X1" and granted["until"] == "2026-01-01T14:00:00.000000Z"
        assert granted["status"] == "ACTIVE"
        await m.draft_write(ALICE, draft, "SKILL.md", "# lifted\n")
        edited = (await w.ledger("draft.edited"))[-1]
        assert [x["id"] for x in edited.data["exceptions"]] == ["X1"]
        assert edited.data["exceptions"][0]["reason"] == "INC-7"
        # A decision the exception did not change does not name it.
        await m.draft_write(ALICE, draft, "other.md", "# o\n")
        assert (await w.ledger("draft.edited"))[-1].data["exceptions"] == []
        await w.later(2 * 3600 - 1)
        await m.draft_write(ALICE, draft, "SKILL.md", "# still lifted\n")
        await w.later(1)
        err = await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# too late\n"))
        assert err.code == "POLICY_DENIED" and err.details["exceptions"] == []
        assert (await w.e.exceptions.listing()) == []
        ended = await w.e.exceptions.listing(everything=True)
        assert [(x["id"], x["status"]) for x in ended] == [("X1", "EXPIRED")]


async def test_a_revoked_exception_stops_at_once(tmp_path: Path) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        await w.e.exceptions.grant(ROOT, "skills", "forbidden_paths", "1d", "rotate a key")
        await m.draft_write(ALICE, draft, "secrets/key.md", "# k\n")
        revoked = await w.e.exceptions.revoke(ROOT, "X1", "done")
        assert revoked["status"] == "REVOKED" and revoked["revoked_by"] == "root"
        err = await refusal(m.draft_write(ALICE, draft, "secrets/key2.md", "# k\n"))
        assert err.code == "POLICY_DENIED"
        again = await refusal(w.e.exceptions.revoke(ROOT, "X1", "twice"))
        assert again.code == "CONFLICT"
        assert [e.type for e in await w.ledger()][-3:] == [
            "draft.edited",
            "exception.revoked",
            "draft.edit_refused",
        ]


async def test_exceptions_lift_the_limits_windows_and_approval_each_named(
    tmp_path: Path,
) -> None:
    async with policy_world(tmp_path, POLICY, start=SATURDAY_NOON) as w:
        m = w.e.modules
        await w.promoted({"a.md": heading("a")})
        capped = await w.draft({"b.md": lines(80)})
        err = await refusal(m.draft_promote(ALICE, capped))
        assert err.details["rules"] == ["max_promotions_per_day"]
        await w.e.exceptions.grant(ROOT, "skills", "max_promotions_per_day", "+1h", "release")
        await w.e.exceptions.grant(ROOT, "skills", "approval", "+1h", "pre-reviewed")
        await w.e.exceptions.grant(ROOT, "skills", "install_windows", "+1h", "weekend fix")
        out = await m.draft_promote(ALICE, capped)
        assert out["risk"] == "MEDIUM" and out["approval"] is None
        assert sorted(x["rule"] for x in out["exceptions"]) == [
            "approval",
            "max_promotions_per_day",
        ]
        installed = await m.module_install(ALICE, "skills", out["version"], task="T1")
        assert [x["rule"] for x in installed["exceptions"]] == ["install_windows"]
        assert await w.e.replay_equals_store()


@pytest.mark.parametrize(
    ("module", "rule", "until", "code"),
    [
        ("skills", "no_such_rule", "+1h", "INVALID_ARGUMENT"),
        ("nope", "locked_paths", "+1h", "NOT_FOUND"),
        ("skills", "locked_paths", "2025-12-31T00:00:00Z", "INVALID_ARGUMENT"),
        ("skills", "locked_paths", "+91d", "INVALID_ARGUMENT"),
        ("skills", "locked_paths", "tomorrow", "INVALID_ARGUMENT"),
    ],
)
async def test_a_bad_grant_is_refused(
    tmp_path: Path, module: str, rule: str, until: str, code: str
) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        err = await refusal(w.e.exceptions.grant(ROOT, module, rule, until, "why"))
        assert err.code == code
        assert await w.ledger("exception.granted") == []


async def test_only_an_admin_grants(tmp_path: Path) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        err = await refusal(w.e.exceptions.grant(Caller("bob"), "skills", "approval", "1h", "x"))
        assert err.code == "FORBIDDEN"
        granted = await w.e.exceptions.grant(
            ROOT, "skills", "approval", "2026-01-01T18:30:00", "UTC without an offset"
        )
        assert granted["until"] == "2026-01-01T18:30:00.000000Z"
