"""Approval requests: PENDING → APPROVED | REJECTED | EXPIRED, then EXECUTED; or STALE.

A promotion the policy will not let through alone opens a request bound to the draft's
``diff_sha256`` and to its risk class. The states:

    PENDING   waiting for an admin; EXPIRED once ``expires_at`` has passed (read as such)
    APPROVED  an admin said yes (with a note); the same draft_promote call now succeeds
    REJECTED  an admin said no (with a note); promoting the same diff is denied
    EXPIRED   nobody decided in time; the next draft_promote opens a new request
    STALE     the draft changed after the request (any edit, or a new diff or a higher risk
              at promotion); the next draft_promote opens a new request
    EXECUTED  the promotion it approved happened (the version it became is kept)

`approval_step` is the approval part of a promotion decision; `approval_view` is what the
agent sees in ``draft_show``. Ids name the draft: ``skills-d1-r1``, ``skills-d1-r2`` …

    row = latest_for_draft(tx, "skills-d1")
    row.status_at(now_ts)      # "PENDING" or "EXPIRED" …
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError
from ..ledger.policy_projection import OPEN
from ..store import Tx

__all__ = ["ApprovalRow", "approval_row", "latest_for_draft", "listing", "requests_for_draft"]

_COLS = (
    "id, module, draft, task, diff_sha256, risk, rules, files, added, removed, requested_by,"
    " requested_at, expires_at, policy_set_hash, status, decided_by, decided_at, note, version,"
    " seq"
)


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: str
    module: str
    draft: str
    task: str | None
    diff_sha256: str
    risk: str
    rules: tuple[str, ...]
    files: int
    added: int
    removed: int
    requested_by: str
    requested_at: str
    expires_at: str
    policy_set_hash: str
    status: str
    decided_by: str | None
    decided_at: str | None
    note: str | None
    version: int | None
    seq: int

    def status_at(self, now_ts: str) -> str:
        """The state at `now_ts` (RFC 3339): a PENDING request past its expiry is EXPIRED."""
        if self.status == "PENDING" and now_ts >= self.expires_at:
            return "EXPIRED"
        return self.status

    def open_at(self, now_ts: str) -> bool:
        return self.status_at(now_ts) in OPEN

    def as_dict(self, now_ts: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status_at(now_ts),
            "module": self.module,
            "draft": self.draft,
            "task": self.task,
            "diff_sha256": self.diff_sha256,
            "risk": self.risk,
            "rules": list(self.rules),
            "files": self.files,
            "added": self.added,
            "removed": self.removed,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "note": self.note,
            "version": self.version,
        }


def _row(found: tuple[Any, ...]) -> ApprovalRow:
    values = list(found)
    values[6] = tuple(json.loads(values[6]))
    return ApprovalRow(*values)


def approval_row(tx: Tx, approval: str) -> ApprovalRow:
    found = tx.one(f"SELECT {_COLS} FROM approvals WHERE id = ?", (approval,))
    if found is None:
        raise NotFoundError(
            f"no approval request {approval!r}",
            hint="phasegate approvals lists the requests",
            details={"approval": approval},
        )
    return _row(found)


def latest_for_draft(tx: Tx, draft: str) -> ApprovalRow | None:
    found = tx.one(
        f"SELECT {_COLS} FROM approvals WHERE draft = ? ORDER BY requested_at DESC, seq DESC"
        " LIMIT 1",
        (draft,),
    )
    return None if found is None else _row(found)


def requests_for_draft(tx: Tx, draft: str) -> int:
    found = tx.one("SELECT count(*) FROM approvals WHERE draft = ?", (draft,))
    return int(found[0]) if found else 0


def listing(tx: Tx, now_ts: str, limit: int) -> list[ApprovalRow]:
    """Open requests first (oldest first: the longest waiting), then the rest, newest first."""
    pending = tx.all(
        f"SELECT {_COLS} FROM approvals WHERE status = 'PENDING' AND expires_at > ?"
        " ORDER BY requested_at, id LIMIT ?",
        (now_ts, limit),
    )
    rest = tx.all(
        f"SELECT {_COLS} FROM approvals WHERE NOT (status = 'PENDING' AND expires_at > ?)"
        " ORDER BY requested_at DESC, id DESC LIMIT ?",
        (now_ts, max(0, limit - len(pending))),
    )
    return [_row(r) for r in pending + rest]
