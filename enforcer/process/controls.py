"""Controls: the global freeze (every mutating call refused) and the promotion pause.

Both are rows of the `controls` projection, changed only through ledgered entries by an admin.
Both fail closed: a caller that cannot read them must refuse.

    await controls.set(admin, "freeze", True, "incident 42")
    (await controls.status())["frozen"]   # True
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError, StoreError
from ..ledger.ops import Record
from ..model import Caller
from ..phases import Phase
from .work import MAX_REASON, Work, require_admin, text_arg

__all__ = ["Controls"]


class Controls:
    def __init__(self, work: Work) -> None:
        self.work = work

    async def route_facts(self, task: str | None) -> tuple[Phase | None, bool]:
        """(the phase of `task` or None when it does not exist, whether frozen), one snapshot."""

        row = await self.work.store.peek_one(
            "SELECT (SELECT active FROM controls WHERE name = 'freeze'),"
            " (SELECT phase FROM tasks WHERE task = ?)",
            (task,),
        )
        assert row is not None  # a SELECT without FROM always yields its one row
        return (None if row[1] is None else Phase(row[1])), bool(row[0])

    async def status(self) -> dict[str, Any]:
        """Freeze and promotion-pause state. Fails closed: when the controls cannot be read,
        both are reported on (as every mutating call is then refused), with `readable` false
        and the reason, which is also why `phasegate unfreeze` could not lift them."""
        try:
            rows = await self.work.store.peek(
                lambda tx: tx.all("SELECT name, active, reason, actor, ts, seq FROM controls")
            )
        except StoreError as e:
            reason = (
                f"the controls cannot be read ({e.message}); every mutating call is refused"
                " until the database is restored from a backup"
            )
            on = {"active": True, "reason": reason, "actor": None, "since": None, "seq": None}
            return {
                "frozen": True,
                "promotions_paused": True,
                "freeze": on,
                "pause": dict(on),
                "readable": False,
            }
        found = {r[0]: r for r in rows}

        def one(name: str) -> dict[str, Any]:
            r = found.get(name)
            if r is None:
                return {"active": False}
            return {"active": bool(r[1]), "reason": r[2], "actor": r[3], "since": r[4], "seq": r[5]}

        freeze, pause = one("freeze"), one("promotions_paused")
        return {
            "frozen": freeze["active"],
            "promotions_paused": pause["active"],
            "freeze": freeze,
            "pause": pause,
            "readable": True,
        }

    async def set(self, caller: Caller, control: str, active: bool, reason: str) -> dict[str, Any]:
        """Admin: set the global freeze (`freeze`) or the promotion pause (`promotions_paused`)."""
        require_admin(caller, f"change {control}")
        if control not in ("freeze", "promotions_paused"):
            raise InvalidArgumentError(f"unknown control {control!r}")
        reason = text_arg(reason, "reason", MAX_REASON)
        kind = "control.freeze_changed" if control == "freeze" else "control.pause_changed"
        await self.work.transact(
            caller,
            lambda tx, ops: ops.emit(
                tx,
                Record(
                    kind,
                    {"control": control},
                    {"control": control, "active": active, "reason": reason},
                ),
            ),
            through_freeze=True,  # the switch itself must work while frozen
        )
        return await self.status()
