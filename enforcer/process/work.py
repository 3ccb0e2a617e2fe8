"""The unit of work every process service runs on: one store transaction per domain call.

A mutating call is a plain function of `(Tx, Ops)`. `Work.transact` runs it whole in one write
transaction — lease check, rule checks, ledger appends and projection updates commit together —
so a refused call changes nothing; when the refusal itself must be on record (`Refused`), its
entries are appended in a second transaction after the first has rolled back (through
`Refusals`, which coalesces one caller's identical repetitions).

    work = Work(store, ledger, clock, config)
    status = await work.transact(caller, lambda tx, ops: ...)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..clock import Clock, rfc3339
from ..config import Config
from ..errors import ForbiddenError, InvalidArgumentError, NotFoundError, WritesRefusedError
from ..ledger.log import Ledger
from ..ledger.ops import Ops, Refused
from ..model import Caller, TaskView, check_task_id, lease_token_var, ledger_seq_var
from ..phases import Phase
from ..store import Store, Tx
from .control_rows import require_unfrozen
from .instruments import count_committed
from .refusals import Refusals

__all__ = [
    "MAX_REASON",
    "MAX_TITLE",
    "Work",
    "no_task",
    "phase_arg",
    "require_admin",
    "task_row",
    "task_view",
    "text_arg",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_TITLE = 200
MAX_REASON = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text_arg(value: object, name: str, limit: int) -> str:
    """A non-empty human text (title, reason, note) of at most `limit` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string", details={"argument": name})
    if len(value) > limit:
        raise InvalidArgumentError(
            f"{name} is longer than {limit} characters", details={"argument": name}
        )
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise InvalidArgumentError(
            f"{name} contains control characters", details={"argument": name}
        )
    return value


def phase_arg(value: object, name: str = "to") -> Phase:
    try:
        return Phase(value.upper()) if isinstance(value, str) else Phase(str(value))
    except ValueError as e:
        raise InvalidArgumentError(
            f"{value!r} is not a phase",
            hint="phases: " + " ".join(p.value for p in Phase),
            details={"argument": name},
        ) from e


def require_admin(caller: Caller, what: str) -> None:
    if not caller.at_least("admin"):
        raise ForbiddenError(
            f"only an admin may {what}",
            hint="ask a supervisor to run the phasegate CLI command",
        )


def no_task(task: str) -> NotFoundError:
    return NotFoundError(
        f"no task {task!r}",
        hint="task_list shows the tasks; task_start creates one",
        details={"task": task},
    )


def task_view(row: tuple[Any, ...]) -> TaskView:
    """A task from the columns task, title, phase, epoch, created_at, created_by (first six)."""
    return TaskView(row[0], row[1], Phase(row[2]), int(row[3]), row[4], row[5])


def task_row(tx: Tx, task: str) -> TaskView:
    """The task `task` as the projection holds it, or NOT_FOUND."""
    row = tx.one(
        "SELECT task, title, phase, epoch, created_at, created_by FROM tasks WHERE task = ?",
        (check_task_id(task),),
    )
    if row is None:
        raise no_task(task)
    return task_view(row)


class Work:
    """The store, ledger, clock and configuration the services share, and `transact`."""

    def __init__(self, store: Store, ledger: Ledger, clock: Clock, config: Config) -> None:
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.config = config
        # Refusal records go through here: one caller's identical repetitions are coalesced.
        self.refusals = Refusals(store, ledger, clock, config.ledger.refusal_window_s)

    async def transact(
        self, caller: Caller, fn: Callable[[Tx, Ops], T], *, through_freeze: bool = False
    ) -> T:
        """Run `fn` in one write transaction; on Refused, record the refusal and raise it.

        The freeze is checked first inside that transaction (fail closed), so a freeze that
        commits before this write begins refuses it whoever called. `through_freeze` is for the
        few writes a freeze must not stop: changing the controls themselves, and the records of
        refusals (the audit trail of what was refused while frozen)."""
        await self.ledger.writable()  # a ledger that does not extend what was signed: no writes
        ops = Ops(ts=rfc3339(self.clock.now()), caller=caller)

        def unit(tx: Tx) -> T:
            if not through_freeze:
                require_unfrozen(tx)
            return fn(tx, ops)

        try:
            result = await self.store.write(unit)
        except Refused as refused:
            await self.refusals.record(caller, refused.records)
            raise refused.error from None
        self._committed(ops)
        await self._checkpoint()
        return result

    async def _checkpoint(self) -> None:
        """Sign a checkpoint if one is due. The call has committed: a failure to sign is logged
        (and, for a ledger fault, refuses later writes), never reported as this call's."""
        try:
            await self.ledger.maybe_checkpoint()
        except WritesRefusedError:
            pass  # the ledger logged it; every later write is refused with it
        except OSError as e:
            logger.error("could not write a checkpoint (the next commit tries again): %s", e)

    def _committed(self, ops: Ops) -> None:
        if ops.lease_token is not None:
            lease_token_var.set(ops.lease_token)
        if ops.last_seq is not None:
            self.ledger.observe(ops.last_seq)
            ledger_seq_var.set(ops.last_seq)
            count_committed(ops.entries)
