"""Leasing: the lease calls agents and supervisors make on a task's current phase.

The rules (fencing tokens, expiry, take-over of a dead holder, hand-over) live in `leases`;
this service runs each call as one unit of work. Breaking a lease is for admins.

    lease = await leasing.acquire(caller, "T1", ttl_s=600)
    await leasing.release(caller, "T1")
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError
from ..ledger.ops import Ops
from ..model import Caller, LeaseView
from ..store import Tx
from .leases import Leases
from .work import MAX_REASON, Work, phase_arg, require_admin, task_row, text_arg

__all__ = ["Leasing"]


class Leasing:
    def __init__(self, work: Work, leases: Leases) -> None:
        self.work = work
        self.leases = leases

    @staticmethod
    def _ttl_arg(ttl_s: int | None) -> None:
        if ttl_s is not None and (
            isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= 86_400
        ):
            raise InvalidArgumentError(
                "ttl_s must be an integer from 1 to 86400", details={"argument": "ttl_s"}
            )

    async def acquire(self, caller: Caller, task: str, ttl_s: int | None = None) -> LeaseView:
        self._ttl_arg(ttl_s)

        def run(tx: Tx, ops: Ops) -> LeaseView:
            view = task_row(tx, task)
            return self.leases.acquire(tx, ops, task, view.phase.value, ttl_s).view(ops.ts)

        return await self.work.transact(caller, run)

    async def renew(self, caller: Caller, task: str, ttl_s: int | None = None) -> LeaseView:
        self._ttl_arg(ttl_s)

        def run(tx: Tx, ops: Ops) -> LeaseView:
            view = task_row(tx, task)
            return self.leases.renew(tx, ops, task, view.phase.value, ttl_s).view(ops.ts)

        return await self.work.transact(caller, run)

    async def release(self, caller: Caller, task: str) -> dict[str, Any]:
        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            view = task_row(tx, task)
            released = self.leases.release(tx, ops, task, view.phase.value)
            return {"task": task, "phase": view.phase.value, "released": released}

        return await self.work.transact(caller, run)

    async def break_(
        self, caller: Caller, task: str, reason: str, phase: str | None = None
    ) -> dict[str, Any]:
        require_admin(caller, "break a lease")
        reason = text_arg(reason, "reason", MAX_REASON)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            view = task_row(tx, task)
            ph = view.phase.value if phase is None else phase_arg(phase, "phase").value
            broken = self.leases.break_(tx, ops, task, ph, reason)
            return {
                "task": task,
                "phase": ph,
                "broken": broken is not None,
                "holder": None if broken is None else f"{broken.actor}/{broken.instance}",
            }

        return await self.work.transact(caller, run)
