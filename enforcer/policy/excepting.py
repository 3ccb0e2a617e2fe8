"""Granting and revoking time-bound exceptions (admin only), and listing them.

An exception lifts one rule (`policy_config.RULES`) for one registered module until a moment
at most `MAX_EXCEPTION` ahead, with a reason; ids are X1, X2 … It ends by itself at ``until``
(no entry: the grant holds its end) or when an admin revokes it. Grants and revocations are
ledgered (``exception.granted``, ``exception.revoked``) with the
``policy_set_hash`` in force.

    await exceptions.grant(root, "skills", "install_windows", "+2h", "hotfix for INC-42")
    await exceptions.revoke(root, "X1", "hotfix shipped")
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ..clock import rfc3339
from ..errors import ConflictError, InvalidArgumentError, NotFoundError
from ..ledger.ops import Ops, Record
from ..model import Caller
from ..names import check_module_name
from ..policy_config import RULES
from ..process.work import MAX_REASON, Work, require_admin, text_arg
from ..store import Tx
from .engine import Policy
from .exceptions import exception_row, listing

__all__ = ["MAX_EXCEPTION", "Exceptions", "parse_until"]

MAX_EXCEPTION = timedelta(days=90)
_RELATIVE = re.compile(r"^\+?(\d{1,6})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_until(text: object, now: datetime) -> datetime:
    """``+2h`` / ``90m`` / ``3d`` from now, or an ISO 8601 moment (UTC when it has no offset).

    Raises InvalidArgumentError unless the moment is after `now` and within MAX_EXCEPTION."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError("until must be a time", details={"argument": "until"})
    relative = _RELATIVE.match(text.strip())
    if relative:
        until = now + timedelta(seconds=int(relative[1]) * _UNIT[relative[2]])
    else:
        try:
            until = datetime.fromisoformat(text.strip())
        except ValueError as e:
            raise InvalidArgumentError(
                f"until {text[:40]!r} is neither a duration (+2h, 90m, 3d) nor a time"
                " (2026-01-02T18:00Z)",
                details={"argument": "until"},
            ) from e
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
    if until <= now:
        raise InvalidArgumentError(
            f"until {rfc3339(until)} is not in the future", details={"argument": "until"}
        )
    if until - now > MAX_EXCEPTION:
        raise InvalidArgumentError(
            f"an exception lasts at most {MAX_EXCEPTION.days} days",
            details={"argument": "until"},
        )
    return until


def _check_rule(rule: object) -> str:
    if not isinstance(rule, str) or rule not in RULES:
        raise InvalidArgumentError(
            f"{str(rule)[:40]!r} is not a rule an exception can lift",
            hint="rules: " + " ".join(RULES),
            details={"argument": "rule"},
        )
    return rule


class Exceptions:
    def __init__(self, work: Work, policy: Policy) -> None:
        self.work = work
        self.policy = policy

    async def listing(self, everything: bool = False) -> list[dict[str, Any]]:
        now_ts = rfc3339(self.work.clock.now())
        rows = await self.work.store.read(lambda tx: listing(tx, now_ts, everything=everything))
        return [r.as_dict(now_ts) for r in rows]

    async def grant(
        self, caller: Caller, module: str, rule: str, until: str, reason: str
    ) -> dict[str, Any]:
        require_admin(caller, "grant a policy exception")
        check_module_name(module)
        _check_rule(rule)
        reason = text_arg(reason, "reason", MAX_REASON)
        ends = parse_until(until, self.work.clock.now())

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            if tx.one("SELECT 1 FROM modules WHERE module = ?", (module,)) is None:
                raise NotFoundError(
                    f"no module {module!r}",
                    hint="phasegate module list shows the registered modules",
                    details={"module": module},
                )
            count = tx.one("SELECT count(*) FROM policy_exceptions")
            exception = f"X{int(count[0]) + 1 if count else 1}"
            ps, failure = self.policy.source.current()
            for record in self.policy.source.notes(tx, ps, failure):
                ops.emit(tx, record)
            data = {
                "exception": exception,
                "rule": rule,
                "until": rfc3339(ends),
                "reason": reason,
                "policy_set_hash": ps.policy_set_hash,
            }
            ops.emit(tx, Record("exception.granted", {"module": module}, data))
            return exception_row(tx, exception).as_dict(ops.ts)

        return await self.work.transact(caller, run)

    async def revoke(self, caller: Caller, exception: str, reason: str) -> dict[str, Any]:
        require_admin(caller, "revoke a policy exception")
        if not isinstance(exception, str) or not re.fullmatch(r"X\d{1,9}", exception):
            raise InvalidArgumentError(
                "an exception id looks like X1", details={"argument": "exception"}
            )
        reason = text_arg(reason, "reason", MAX_REASON)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            row = exception_row(tx, exception)
            status = row.status_at(ops.ts)
            if status != "ACTIVE":
                raise ConflictError(
                    f"exception {exception} is {status}: nothing to revoke",
                    details={"exception": exception, "status": status},
                )
            ps, failure = self.policy.source.current()
            for record in self.policy.source.notes(tx, ps, failure):
                ops.emit(tx, record)
            data = {
                "exception": exception,
                "rule": row.rule,
                "reason": reason,
                "policy_set_hash": ps.policy_set_hash,
            }
            ops.emit(tx, Record("exception.revoked", {"module": row.module}, data))
            return exception_row(tx, exception).as_dict(ops.ts)

        return await self.work.transact(caller, run)
