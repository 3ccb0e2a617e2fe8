"""Risk classes and approval requests: LOW flows, MEDIUM and HIGH wait for a person, and a
request is bound to the draft's diff and risk (pending, approved, rejected, expired, stale,
executed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_kit import ALICE, ROOT, heading, lines, policy_world, refusal

from enforcer.model import Caller

HIGH = '[policy.risk]\nhigh_paths = ["**/auth/**"]\n'


def many_files(n: int) -> dict[str, str | None]:
    return {f"notes/n{i}.md": "# n\n" for i in range(n)}


@pytest.mark.parametrize(
    ("files", "risk", "raised_by"),
    [
        ({"a.md": lines(50)}, "LOW", []),
        ({"a.md": lines(51)}, "MEDIUM", ["medium_changed_lines"]),
        (many_files(10), "LOW", []),
        (many_files(11), "MEDIUM", ["medium_files"]),
        ({"src/auth/login.md": heading("x")}, "HIGH", ["high_paths"]),
        ({"src/auth/login.md": lines(60)}, "HIGH", ["high_paths", "medium_changed_lines"]),
    ],
)
async def test_each_risk_class_comes_from_the_diff(
    tmp_path: Path, files: dict[str, str | None], risk: str, raised_by: list[str]
) -> None:
    async with policy_world(tmp_path, HIGH) as w:
        draft = await w.draft(files)
        check = await w.e.modules.policy_check(draft, ALICE)
        assert check["risk"] == risk and check["details"]["raised_by"] == raised_by
        if risk == "LOW":
            out = await w.e.modules.draft_promote(ALICE, draft)
            assert out["risk"] == "LOW" and out["rules"] == ["auto_approve"]
            assert out["approval"] is None
            assert await w.e.approvals.listing() == []
        else:
            err = await refusal(w.e.modules.draft_promote(ALICE, draft))
            assert err.code == "APPROVAL_REQUIRED" and err.details["risk"] == risk
            assert err.details["rules"] == [*raised_by, "approval"]


async def test_high_waits_for_a_person_even_when_medium_is_automatic(tmp_path: Path) -> None:
    policy = '[policy]\nauto_approve = ["LOW", "MEDIUM"]\n' + HIGH
    async with policy_world(tmp_path, policy) as w:
        medium = await w.draft({"a.md": lines(80)})
        assert (await w.e.modules.draft_promote(ALICE, medium))["risk"] == "MEDIUM"
        high = await w.draft({"auth/x.md": heading("x")})
        err = await refusal(w.e.modules.draft_promote(ALICE, high))
        assert err.code == "APPROVAL_REQUIRED" and err.details["risk"] == "HIGH"


async def test_medium_is_promoted_by_the_same_call_once_approved(tmp_path: Path) -> None:
    async with policy_world(tmp_path) as w:
        m = w.e.modules
        draft = await w.draft({"a.md": lines(80)})
        err = await refusal(m.draft_promote(ALICE, draft))
        approval = err.details["approval"]
        assert err.code == "APPROVAL_REQUIRED" and approval["status"] == "PENDING"
        assert approval["id"] == f"{draft}-r1" and approval["opened"] is True
        assert approval["diff_sha256"] == (await m.draft_diff(draft))["diff_sha256"]
        assert approval["requested_by"] == "alice"
        assert approval["expires_at"] == "2026-01-02T12:00:00.000000Z"
        # Asking again while pending opens nothing new.
        again = await refusal(m.draft_promote(ALICE, draft))
        assert again.details["approval"]["id"] == approval["id"]
        assert again.details["approval"]["opened"] is False
        assert (await m.draft_show(draft))["approval"]["status"] == "PENDING"
        queue = await w.e.approvals.listing()
        assert [(a["id"], a["status"], a["risk"]) for a in queue] == [
            (approval["id"], "PENDING", "MEDIUM")
        ]
        assert queue[0]["added"] == 80 and queue[0]["files"] == 1
        decided = await w.e.approvals.approve(ROOT, approval["id"], "read it, fine")
        assert decided["status"] == "APPROVED" and decided["note"] == "read it, fine"
        assert (await m.draft_show(draft))["approval"]["status"] == "APPROVED"
        out = await m.draft_promote(ALICE, draft)
        assert out["version"] == 2 and out["approval"] == approval["id"]
        assert out["rules"] == ["medium_changed_lines", "approval"]
        shown = (await m.draft_show(draft))["approval"]
        assert shown["status"] == "EXECUTED" and shown["version"] == 2
        assert len(await w.ledger("promotion.requested")) == 2  # both asks are on record
        assert len(await w.e.approvals.listing()) == 1
        granted = (await w.ledger("approval.approved"))[-1]
        assert granted.actor == "root" and granted.data["note"] == "read it, fine"
        assert granted.data["policy_set_hash"] == out["policy_set_hash"]
        assert await w.e.replay_equals_store()


async def test_a_rejected_request_denies_that_diff_until_the_draft_changes(
    tmp_path: Path,
) -> None:
    async with policy_world(tmp_path) as w:
        m = w.e.modules
        draft = await w.draft({"a.md": lines(80)})
        first = (await refusal(m.draft_promote(ALICE, draft))).details["approval"]["id"]
        await w.e.approvals.reject(ROOT, first, "too much at once")
        err = await refusal(m.draft_promote(ALICE, draft))
        assert err.code == "POLICY_DENIED" and "approval" in err.details["rules"]
        assert err.details["approval"]["status"] == "REJECTED"
        assert "too much at once" in err.message
        await m.draft_write(ALICE, draft, "a.md", lines(70))
        await m.draft_validate(ALICE, draft)
        err = await refusal(m.draft_promote(ALICE, draft))
        assert err.code == "APPROVAL_REQUIRED"
        assert err.details["approval"]["id"] == f"{draft}-r2"
        assert (await w.e.approvals.show(first))["status"] == "REJECTED"


async def test_an_edit_after_approval_makes_it_stale_and_the_promotion_asks_again(
    tmp_path: Path,
) -> None:
    async with policy_world(tmp_path) as w:
        m = w.e.modules
        draft = await w.draft({"a.md": lines(80)})
        first = (await refusal(m.draft_promote(ALICE, draft))).details["approval"]["id"]
        await w.e.approvals.approve(ROOT, first, "ok")
        await m.draft_write(ALICE, draft, "b.md", heading("one more"))
        assert (await m.draft_show(draft))["approval"]["status"] == "STALE"
        await m.draft_validate(ALICE, draft)
        err = await refusal(m.draft_promote(ALICE, draft))
        assert err.code == "APPROVAL_REQUIRED"
        assert err.details["approval"]["id"] == f"{draft}-r2"
        assert err.details["approval"]["supersedes"] == {"id": first, "status": "STALE"}
        late = await refusal(w.e.approvals.approve(ROOT, first, "ok"))
        assert late.code == "CONFLICT" and late.details["status"] == "STALE"


async def test_a_pending_request_expires_and_the_next_promotion_opens_another(
    tmp_path: Path,
) -> None:
    async with policy_world(tmp_path, "[policy]\napproval_expiry_s = 3600\n") as w:
        m = w.e.modules
        draft = await w.draft({"a.md": lines(80)})
        first = (await refusal(m.draft_promote(ALICE, draft))).details["approval"]
        assert first["expires_at"] == "2026-01-01T13:00:00.000000Z"
        await w.later(3599)
        assert (await w.e.approvals.show(first["id"]))["status"] == "PENDING"
        await w.later(1)
        assert (await w.e.approvals.show(first["id"]))["status"] == "EXPIRED"
        assert (await m.draft_show(draft))["approval"]["status"] == "EXPIRED"
        late = await refusal(w.e.approvals.approve(ROOT, first["id"], "ok"))
        assert late.code == "CONFLICT" and late.details["status"] == "EXPIRED"
        err = await refusal(m.draft_promote(ALICE, draft))
        assert err.details["approval"]["id"] == f"{draft}-r2"
        assert err.details["approval"]["supersedes"] == {"id": first["id"], "status": "EXPIRED"}
        assert [a["status"] for a in await w.e.approvals.listing()] == ["PENDING", "EXPIRED"]
        assert await w.e.replay_equals_store()


async def test_the_requester_may_not_approve_their_own_request(tmp_path: Path) -> None:
    alice_admin = Caller("alice", role="admin", instance="cli")
    async with policy_world(tmp_path) as w:
        draft = await w.draft({"a.md": lines(80)})
        approval = (await refusal(w.e.modules.draft_promote(ALICE, draft))).details["approval"]
        err = await refusal(w.e.approvals.approve(alice_admin, approval["id"], "mine, fine"))
        assert err.code == "FORBIDDEN" and err.details["requested_by"] == "alice"
        assert (await w.e.approvals.show(approval["id"]))["status"] == "PENDING"
        refused = (await w.ledger("approval.refused"))[-1]
        assert refused.actor == "alice" and refused.data["reason"] == "self-approval"
        operator = await refusal(w.e.approvals.approve(Caller("bob"), approval["id"], "ok"))
        assert operator.code == "FORBIDDEN"
        await w.e.approvals.approve(ROOT, approval["id"], "ok")


async def test_a_higher_risk_after_approval_asks_again(tmp_path: Path) -> None:
    async with policy_world(tmp_path) as w:
        m = w.e.modules
        draft = await w.draft({"auth/a.md": lines(80)})
        first = (await refusal(m.draft_promote(ALICE, draft))).details["approval"]
        assert first["risk"] == "MEDIUM"
        await w.e.approvals.approve(ROOT, first["id"], "ok for MEDIUM")
        w.write_policy(HIGH)
        err = await refusal(m.draft_promote(ALICE, draft))
        assert err.details["approval"]["risk"] == "HIGH"
        assert err.details["approval"]["supersedes"] == {"id": first["id"], "status": "STALE"}


async def test_deciding_needs_a_note_and_a_known_request(tmp_path: Path) -> None:
    async with policy_world(tmp_path) as w:
        assert (await refusal(w.e.approvals.approve(ROOT, "nope-r1", "ok"))).code == "NOT_FOUND"
        assert (await refusal(w.e.approvals.approve(ROOT, "../x", "ok"))).code == (
            "INVALID_ARGUMENT"
        )
        draft = await w.draft({"a.md": lines(80)})
        approval = (await refusal(w.e.modules.draft_promote(ALICE, draft))).details["approval"]
        bad = await refusal(w.e.approvals.reject(ROOT, approval["id"], "  "))
        assert bad.code == "INVALID_ARGUMENT"
