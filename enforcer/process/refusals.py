"""The records of refusals, with what one caller's identical repetitions add to the ledger bounded.

Every refusal is on record: the router's ``tool.rejected``, and the entries a rule writes when it
refuses (``phase.skip_blocked``, ``evidence.gate_failed``, ``lease.contended`` …). Written one
entry per refusal, a caller repeating a refused call could grow the ledger without bound, so
identical refusals are coalesced. Two refusals are identical when the same caller (actor and
instance) is refused with the same records (type, subject, data; trace ids aside). The first of a
kind is written at once; identical ones within `window_s` after it are counted, not written,
and their count is written as one entry of the same records with ``data.refusals = N`` — by the
next identical refusal after the window, by `flush` once the window has passed (the server's
ticker), or at shutdown. So one caller adds at most two entries per kind of refusal per window,
however fast it repeats, while no refusal goes uncounted: the projection adds ``refusals`` (1
when absent) to the counters, so a replay of the ledger still equals the store. Refusals
counted but not yet written are lost if the process is killed (the call journal still has
every call).

    refusals = Refusals(store, ledger, clock, window_s=60)
    await refusals.record(caller, [Record("tool.rejected", {}, {"tool": "x", "code": "FROZEN"})])
    await refusals.flush(everything=True)   # at shutdown
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ..clock import Clock, rfc3339
from ..errors import WritesRefusedError
from ..ledger.log import Ledger
from ..ledger.ops import Ops, Record
from ..model import Caller, ledger_seq_var, trace_id_var
from ..store import Store
from .instruments import count_committed

__all__ = ["MAX_KINDS", "Refusals"]

logger = logging.getLogger(__name__)

MAX_KINDS = 4096  # kinds of refusal remembered per process (oldest written out first)
_KEY = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


@dataclass(slots=True)
class _Kind:
    caller: Caller
    records: tuple[Record, ...]
    written_at: datetime  # when an entry of this kind was last written
    pending: int = 0  # refusals counted since, not yet written
    trace_id: str | None = None  # of the last of them


class Refusals:
    """Writes refusal records, coalescing one caller's identical repetitions (module docstring)."""

    def __init__(self, store: Store, ledger: Ledger, clock: Clock, window_s: float) -> None:
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.window_s = window_s
        self._kinds: OrderedDict[str, _Kind] = OrderedDict()
        self.written = 0  # entries written (a test and a benchmark read these)
        self.coalesced = 0  # refusals counted into a later entry instead of one of their own

    async def record(self, caller: Caller, records: Sequence[Record]) -> None:
        """Put one refusal on record (now, or counted into a later entry)."""
        if not records:
            return
        now = self.clock.now()
        key = _KEY.encode(
            [caller.actor, caller.instance, [(r.type, r.subject, r.data) for r in records]]
        )
        kind = self._kinds.get(key)
        if kind is not None and (now - kind.written_at).total_seconds() < self.window_s:
            kind.pending += 1
            kind.trace_id = trace_id_var.get()
            self.coalesced += 1
            return
        count = 1 + (kind.pending if kind is not None else 0)
        self._kinds[key] = _Kind(caller, tuple(records), now)
        self._kinds.move_to_end(key)
        await self._write(caller, records, count, trace_id_var.get())
        while len(self._kinds) > MAX_KINDS:
            _, oldest = self._kinds.popitem(last=False)
            if oldest.pending:
                await self._write(oldest.caller, oldest.records, oldest.pending, oldest.trace_id)

    async def flush(self, *, everything: bool = False) -> None:
        """Write the counts whose window has passed (all of them with `everything`), and forget
        kinds that have been quiet for a window."""
        now = self.clock.now()
        for key, kind in list(self._kinds.items()):
            due = everything or (now - kind.written_at).total_seconds() >= self.window_s
            if not due:
                continue
            if kind.pending:
                pending, kind.pending, kind.written_at = kind.pending, 0, now
                await self._write(kind.caller, kind.records, pending, kind.trace_id)
            elif self._kinds.get(key) is kind:
                del self._kinds[key]

    async def _write(
        self, caller: Caller, records: Sequence[Record], count: int, trace_id: str | None
    ) -> None:
        if count > 1:
            records = [replace(r, data={**r.data, "refusals": count}) for r in records]
        try:
            await self.ledger.writable()
        except WritesRefusedError:
            return  # nothing may be written; the refusal itself was answered and journaled
        ops = Ops(ts=rfc3339(self.clock.now()), caller=caller, trace_id=trace_id)
        try:
            await self.store.write(lambda tx: [ops.emit(tx, r) for r in records])
        except Exception as e:  # the refusal stands even when it cannot be put on record
            logger.error("could not put a refusal on record (%s): %s", records[0].type, e)
            return
        self.written += len(ops.entries)
        if ops.last_seq is not None:
            self.ledger.observe(ops.last_seq)
            ledger_seq_var.set(ops.last_seq)
        count_committed(ops.entries)
