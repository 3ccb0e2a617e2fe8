"""An approval request's state at an instant, at the edges a weakened comparison would pass:
tests written against the mutants that survived tests/enforcer/policy/test_approvals.py
(scripts/mutation.py, target enforcer/policy/approvals.py)."""

from __future__ import annotations

import dataclasses

import pytest

from enforcer.policy.approvals import ApprovalRow

EXPIRES = "2026-01-01T12:00:00.000000Z"
BEFORE = "2026-01-01T11:59:59.999999Z"
AFTER = "2026-01-01T12:00:00.000001Z"


def request(status: str) -> ApprovalRow:
    return ApprovalRow(
        id="skills-d1-r1",
        module="skills",
        draft="skills-d1",
        task="T1",
        diff_sha256="0" * 64,
        risk="HIGH",
        rules=("high_paths",),
        files=1,
        added=1,
        removed=0,
        requested_by="alice",
        requested_at="2026-01-01T00:00:00.000000Z",
        expires_at=EXPIRES,
        policy_set_hash="1" * 64,
        status=status,
        decided_by=None,
        decided_at=None,
        note=None,
        version=None,
        seq=7,
    )


def test_a_pending_request_expires_at_its_expiry_instant() -> None:
    pending = request("PENDING")
    assert pending.status_at(BEFORE) == "PENDING" and pending.open_at(BEFORE)
    assert pending.status_at(EXPIRES) == "EXPIRED" and not pending.open_at(EXPIRES)
    assert pending.status_at(AFTER) == "EXPIRED"
    assert pending.as_dict(AFTER)["status"] == "EXPIRED"


@pytest.mark.parametrize("status", ["APPROVED", "REJECTED", "EXECUTED", "STALE", "EXPIRED"])
def test_a_decided_request_keeps_its_state_past_the_expiry(status: str) -> None:
    # They sort before and after "PENDING": only PENDING itself turns EXPIRED.
    assert request(status).status_at(AFTER) == status


def test_a_request_row_cannot_be_changed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        request("PENDING").status = "APPROVED"  # type: ignore[misc]
