"""Time-bound exceptions: an admin lifts one rule for one module until a moment, with a reason.

An exception is ACTIVE from its grant until ``until`` (then EXPIRED, with no entry needed: the
grant holds its own end) or until an admin revokes it (REVOKED). While active, the rule it
names does not apply to that module's decisions, and every decision it changed names it.

    lifted = active(tx, "skills", now_ts)   # {"install_windows": ExceptionRow(...)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError
from ..store import Tx

__all__ = ["ExceptionRow", "active", "exception_row", "listing"]

_COLS = (
    "id, module, rule, until, reason, granted_by, granted_at, revoked_by, revoked_at,"
    " revoke_reason, seq"
)


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    id: str
    module: str
    rule: str
    until: str
    reason: str
    granted_by: str
    granted_at: str
    revoked_by: str | None
    revoked_at: str | None
    revoke_reason: str | None
    seq: int

    def status_at(self, now_ts: str) -> str:
        if self.revoked_at is not None:
            return "REVOKED"
        return "ACTIVE" if now_ts < self.until else "EXPIRED"

    def brief(self) -> dict[str, Any]:
        """How a decision names the exception that changed it."""
        return {
            "id": self.id,
            "rule": self.rule,
            "until": self.until,
            "reason": self.reason,
            "granted_by": self.granted_by,
        }

    def as_dict(self, now_ts: str) -> dict[str, Any]:
        return {
            **self.brief(),
            "module": self.module,
            "status": self.status_at(now_ts),
            "granted_at": self.granted_at,
            "revoked_by": self.revoked_by,
            "revoked_at": self.revoked_at,
            "revoke_reason": self.revoke_reason,
        }


def active(tx: Tx, module: str, now_ts: str) -> dict[str, ExceptionRow]:
    """The exceptions in force for `module` at `now_ts`, by rule (the latest-ending wins)."""
    rows = tx.all(
        f"SELECT {_COLS} FROM policy_exceptions WHERE module = ? AND until > ?"
        " AND revoked_at IS NULL ORDER BY until",
        (module, now_ts),
    )
    return {r.rule: r for r in (ExceptionRow(*row) for row in rows)}


def exception_row(tx: Tx, exception: str) -> ExceptionRow:
    found = tx.one(f"SELECT {_COLS} FROM policy_exceptions WHERE id = ?", (exception,))
    if found is None:
        raise NotFoundError(
            f"no exception {exception!r}",
            hint="phasegate exception list shows them",
            details={"exception": exception},
        )
    return ExceptionRow(*found)


def listing(tx: Tx, now_ts: str, *, everything: bool) -> list[ExceptionRow]:
    """Active exceptions (soonest end first); with `everything`, the ended ones after them."""
    rows = [ExceptionRow(*r) for r in tx.all(f"SELECT {_COLS} FROM policy_exceptions")]
    live = sorted((r for r in rows if r.status_at(now_ts) == "ACTIVE"), key=lambda r: r.until)
    if not everything:
        return live
    ended = sorted(
        (r for r in rows if r.status_at(now_ts) != "ACTIVE"), key=lambda r: r.seq, reverse=True
    )
    return live + ended
