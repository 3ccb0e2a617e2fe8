"""Leases with fencing tokens: one holder per (task, phase), checked inside every write.

A holder is actor + instance. The fencing token is monotonic per (task, phase) and never reused:
it survives release in the lease row. Every check runs inside the caller's write transaction, so
the check and the mutation it guards commit together or not at all. Expiry compares RFC 3339
strings from the injected clock (fixed width, UTC, so string order is time order).

    token = leases.guard(tx, ops, task="T1", phase="SPEC")   # raises Refused(LEASE_HELD, ...)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..clock import rfc3339
from ..errors import (
    LeaseExpiredError,
    LeaseHeldError,
    LeaseRequiredError,
    StaleTokenError,
)
from ..ledger.ops import Ops, Record, Refused
from ..model import Caller, LeaseView
from ..store import Tx

__all__ = ["LeaseRow", "Leases", "pid_alive"]

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class LeaseRow:
    task: str
    phase: str
    actor: str | None
    instance: str | None
    pid: int | None
    host: str | None
    lease_id: str | None
    token: int
    expires_at: str | None

    @classmethod
    def granted(cls, task: str, phase: str, data: dict[str, Any]) -> LeaseRow:
        """The row a `lease.acquired` entry's data puts in the projection."""
        return cls(
            task,
            phase,
            data["holder_actor"],
            data["instance"],
            data["pid"],
            data["host"],
            data["lease_id"],
            data["token"],
            data["expires_at"],
        )

    def held_by(self, caller: Caller) -> bool:
        return self.actor == caller.actor and self.instance == caller.instance

    def active(self, now: str) -> bool:
        return self.actor is not None and self.expires_at is not None and self.expires_at > now

    def holder_gone(self) -> bool:
        """Held by a process on this host that no longer exists: safe to take over at once."""
        return (
            self.host == HOST
            and self.pid is not None
            and self.pid != os.getpid()
            and not pid_alive(self.pid)
        )

    def view(self, now: str) -> LeaseView:
        active = self.active(now)
        return LeaseView(
            task=self.task,
            phase=self.phase,
            holder=f"{self.actor}/{self.instance}" if self.actor else None,
            actor=self.actor,
            instance=self.instance,
            lease_id=self.lease_id,
            fencing_token=self.token,
            expires_at=self.expires_at,
            active=active,
        )


class Leases:
    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s

    @staticmethod
    def row(tx: Tx, task: str, phase: str) -> LeaseRow | None:
        found = tx.one(
            "SELECT task, phase, actor, instance, pid, host, lease_id, token, expires_at"
            " FROM leases WHERE task = ? AND phase = ?",
            (task, phase),
        )
        return None if found is None else LeaseRow(*found)

    def _grant_data(
        self,
        ops: Ops,
        task: str,
        phase: str,
        prev: LeaseRow | None,
        *,
        implicit: bool,
        ttl_s: int | None = None,
        takeover: str | None = None,
    ) -> dict[str, Any]:
        token = (prev.token if prev else 0) + 1
        caller = ops.caller
        data: dict[str, Any] = {
            "holder_actor": caller.actor,
            "instance": caller.instance,
            "pid": caller.pid,
            "host": caller.host,
            "lease_id": f"{task}:{phase}:{token}",
            "token": token,
            "expires_at": _add_seconds(ops.ts, ttl_s or self.ttl_s),
            "implicit": implicit,
        }
        if takeover:
            data["takeover"] = takeover
        return data

    def _grant(
        self,
        tx: Tx,
        ops: Ops,
        task: str,
        phase: str,
        prev: LeaseRow | None,
        *,
        implicit: bool,
        ttl_s: int | None = None,
        takeover: str | None = None,
    ) -> LeaseRow:
        data = self._grant_data(
            ops, task, phase, prev, implicit=implicit, ttl_s=ttl_s, takeover=takeover
        )
        ops.emit(tx, Record("lease.acquired", {"task": task, "phase": phase}, data))
        ops.lease_token = data["token"]
        return LeaseRow.granted(task, phase, data)

    def _refuse_held(self, ops: Ops, row: LeaseRow) -> Refused:
        subject = {"task": row.task, "phase": row.phase}
        holder = f"{row.actor}/{row.instance}"
        return Refused(
            LeaseHeldError(
                f"{row.task} {row.phase} is leased to {holder} until {row.expires_at}",
                hint="wait for the lease to expire or be released, or work on another task;"
                " a supervisor can break it (phasegate lease break)",
                details={"holder": holder, "expires_at": row.expires_at, "phase": row.phase},
            ),
            Record("lease.contended", subject, {"holder": holder, "wanted_by": ops.caller.holder}),
        )

    def _refuse_expired(self, ops: Ops, row: LeaseRow) -> Refused:
        return Refused(
            LeaseExpiredError(
                f"your lease on {row.task} {row.phase} expired at {row.expires_at}",
                hint="call lease_acquire for a new lease (and a new fencing token), then retry",
                details={"expired_at": row.expires_at, "fencing_token": row.token},
            ),
            Record(
                "lease.expired",
                {"task": row.task, "phase": row.phase},
                {"holder": ops.caller.holder, "token": row.token},
            ),
        )

    def guard(self, tx: Tx, ops: Ops, task: str, phase: str, token: int | None = None) -> int:
        """The caller's current token on (task, phase), taking a free lease implicitly.

        Raises Refused(LEASE_HELD | LEASE_EXPIRED) or StaleTokenError.
        """
        return self.hold(tx, ops, task, phase, token).token

    def hold(self, tx: Tx, ops: Ops, task: str, phase: str, token: int | None = None) -> LeaseRow:
        """Like `guard`, returning the caller's lease row itself."""
        row = self.row(tx, task, phase)
        caller = ops.caller
        # A presented token must name a lease that is still held: after a break (or a release)
        # the row keeps its token, but the lease it named is over and must fence the write.
        if token is not None and (row is None or row.token != token or row.actor is None):
            raise StaleTokenError(
                f"fencing token {token} is not the current one for {task} {phase}",
                hint="your lease was replaced; call lease_acquire and retry with the new token",
                details={"current": None if row is None else row.token},
            )
        if row is not None and row.actor is not None:
            if row.held_by(caller):
                if row.active(ops.ts):
                    ops.lease_token = row.token
                    return row
                raise self._refuse_expired(ops, row)
            if row.active(ops.ts) and not row.holder_gone():
                raise self._refuse_held(ops, row)
        takeover = None
        if row is not None and row.actor is not None:
            takeover = "holder_gone" if row.active(ops.ts) else "expired"
        return self._grant(tx, ops, task, phase, row, implicit=True, takeover=takeover)

    def acquire(self, tx: Tx, ops: Ops, task: str, phase: str, ttl_s: int | None) -> LeaseRow:
        row = self.row(tx, task, phase)
        if row is not None and row.actor is not None:
            if row.held_by(ops.caller) and row.active(ops.ts):
                return row
            if not row.held_by(ops.caller) and row.active(ops.ts) and not row.holder_gone():
                raise self._refuse_held(ops, row)
        takeover = None
        if row is not None and row.actor is not None and not row.held_by(ops.caller):
            takeover = "holder_gone" if row.active(ops.ts) else "expired"
        return self._grant(
            tx, ops, task, phase, row, implicit=False, ttl_s=ttl_s, takeover=takeover
        )

    def renew(self, tx: Tx, ops: Ops, task: str, phase: str, ttl_s: int | None) -> LeaseRow:
        row = self.row(tx, task, phase)
        if row is None or row.actor is None:
            raise LeaseRequiredError(
                f"no lease on {task} {phase} to renew",
                hint="call lease_acquire",
            )
        if not row.held_by(ops.caller):
            if row.active(ops.ts):
                raise self._refuse_held(ops, row)
            raise LeaseRequiredError(
                f"the lease on {task} {phase} is not yours", hint="call lease_acquire"
            )
        if not row.active(ops.ts):
            raise self._refuse_expired(ops, row)
        expires_at = _add_seconds(ops.ts, ttl_s or self.ttl_s)
        ops.emit(
            tx,
            Record(
                "lease.renewed",
                {"task": task, "phase": phase},
                {"token": row.token, "expires_at": expires_at},
            ),
        )
        return replace(row, expires_at=expires_at)

    def extend_to(self, tx: Tx, ops: Ops, row: LeaseRow, seconds: float) -> LeaseRow:
        """Renew the caller's active lease so it lasts at least `seconds` more."""
        wanted = _add_seconds(ops.ts, int(seconds) + 1)
        if row.expires_at is not None and row.expires_at >= wanted:
            return row
        ops.emit(
            tx,
            Record(
                "lease.renewed",
                {"task": row.task, "phase": row.phase},
                {"token": row.token, "expires_at": wanted},
            ),
        )
        return replace(row, expires_at=wanted)

    def release(self, tx: Tx, ops: Ops, task: str, phase: str) -> bool:
        """Release the caller's lease; idempotent (False when there was nothing of theirs)."""
        row = self.row(tx, task, phase)
        if row is None or row.actor is None or not row.held_by(ops.caller):
            return False
        ops.emit(tx, Record("lease.released", {"task": task, "phase": phase}, {"token": row.token}))
        return True

    def break_(self, tx: Tx, ops: Ops, task: str, phase: str, reason: str) -> LeaseRow | None:
        """A supervisor ends whatever lease is on (task, phase)."""
        row = self.row(tx, task, phase)
        if row is None or row.actor is None:
            return None
        ops.emit(
            tx,
            Record(
                "lease.broken",
                {"task": task, "phase": phase},
                {"token": row.token, "holder": f"{row.actor}/{row.instance}", "reason": reason},
            ),
        )
        return row

    def hand_over(
        self, tx: Tx, ops: Ops, held: LeaseRow, new: str | None
    ) -> tuple[dict[str, Any], LeaseRow | None]:
        """The lease part of a phase move, carried inside the phase entry itself: release the
        caller's lease `held` (from `hold`) and grant them `new` when it is free (one entry per
        move). Returns the entry's lease data and the lease on `new` once the entry applies."""
        released = held.token if held.actor and held.held_by(ops.caller) else None
        lease, after = None, None
        if new is not None:
            after = self.row(tx, held.task, new)
            busy = after is not None and after.actor is not None and after.active(ops.ts)
            if not busy:
                lease = self._grant_data(ops, held.task, new, after, implicit=True)
                after = LeaseRow.granted(held.task, new, lease)
        return {"released_token": released, "lease": lease}, after


def _add_seconds(ts: str, seconds: int) -> str:
    return rfc3339(datetime.fromisoformat(ts) + timedelta(seconds=seconds))
