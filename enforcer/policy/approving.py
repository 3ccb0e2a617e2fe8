"""Deciding approval requests: the admin's approve and reject, and the queue they work from.

Only an admin decides, only a PENDING request (not one that EXPIRED or went STALE), always
with a note, and never the actor who requested it (FORBIDDEN, ledgered as
``approval.refused``). Each decision is one transaction that ledgers ``approval.approved`` or
``approval.rejected`` with the note, the request's diff and risk, and the ``policy_set_hash``
in force. The agent's next ``draft_promote`` of the same draft then goes through (or is denied)
without asking again.

    await approvals.approve(root, "skills-d1-r1", "reviewed the diff")
    queue = await approvals.listing()      # pending first
"""

from __future__ import annotations

from typing import Any

from ..clock import rfc3339
from ..errors import ConflictError, ForbiddenError, InvalidArgumentError
from ..ledger.ops import Ops, Record, Refused
from ..model import Caller
from ..process.work import MAX_REASON, Work, require_admin, text_arg
from ..store import Tx
from .approvals import ApprovalRow, approval_row, listing
from .engine import Policy

__all__ = ["Approvals"]

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_id(approval: object) -> str:
    if (
        not isinstance(approval, str)
        or not approval
        or len(approval) > 100
        or not set(approval) <= _ID_CHARS
    ):
        raise InvalidArgumentError(
            "an approval id looks like skills-d1-r1",
            hint="phasegate approvals lists the requests",
            details={"argument": "approval"},
        )
    return approval


def _subject(row: ApprovalRow) -> dict[str, Any]:
    return {"module": row.module, "draft": row.draft, "task": row.task, "approval": row.id}


class Approvals:
    def __init__(self, work: Work, policy: Policy) -> None:
        self.work = work
        self.policy = policy

    async def listing(self, limit: int = 50) -> list[dict[str, Any]]:
        """Requests, open ones first (longest waiting first), then the rest, newest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise InvalidArgumentError("limit must be 1 to 1000", details={"argument": "limit"})
        now_ts = rfc3339(self.work.clock.now())
        rows = await self.work.store.read(lambda tx: listing(tx, now_ts, limit))
        return [r.as_dict(now_ts) for r in rows]

    async def show(self, approval: str) -> dict[str, Any]:
        _check_id(approval)
        now_ts = rfc3339(self.work.clock.now())
        row = await self.work.store.peek(lambda tx: approval_row(tx, approval))
        return row.as_dict(now_ts)

    async def approve(self, caller: Caller, approval: str, note: str) -> dict[str, Any]:
        return await self._decide(caller, approval, note, "approval.approved")

    async def reject(self, caller: Caller, approval: str, note: str) -> dict[str, Any]:
        return await self._decide(caller, approval, note, "approval.rejected")

    async def _decide(self, caller: Caller, approval: str, note: str, kind: str) -> dict[str, Any]:
        require_admin(caller, "decide an approval request")
        _check_id(approval)
        note = text_arg(note, "note", MAX_REASON)
        verb = "approve" if kind == "approval.approved" else "reject"

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            row = approval_row(tx, approval)
            status = row.status_at(ops.ts)
            if status != "PENDING":
                raise ConflictError(
                    f"request {approval} is {status}: only a PENDING request can be decided",
                    hint="the agent's next draft_promote opens a new request if one is needed",
                    details={"approval": approval, "status": status},
                )
            ps, failure = self.policy.source.current()
            notes = self.policy.source.notes(tx, ps, failure)
            if verb == "approve" and row.requested_by == caller.actor:
                error = ForbiddenError(
                    f"{caller.actor} requested {approval} and may not approve it",
                    hint="another admin decides it",
                    details={"approval": approval, "requested_by": row.requested_by},
                )
                data = {"approval": approval, "reason": "self-approval"}
                data["policy_set_hash"] = ps.policy_set_hash
                raise Refused(error, *notes, Record("approval.refused", _subject(row), data))
            for record in notes:
                ops.emit(tx, record)
            data = {
                "approval": approval,
                "note": note,
                "diff_sha256": row.diff_sha256,
                "risk": row.risk,
                "requested_by": row.requested_by,
                "policy_set_hash": ps.policy_set_hash,
            }
            ops.emit(tx, Record(kind, _subject(row), data))
            return approval_row(tx, approval).as_dict(ops.ts)

        return await self.work.transact(caller, run)
