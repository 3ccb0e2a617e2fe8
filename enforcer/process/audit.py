"""Audit: counters, appending a record outside any rule, the records of refusals (the router's
`tool.rejected`), and the check that the projection equals a replay of the ledger.

    await audit.replay_equals_store()   # True unless the projection was changed behind the ledger
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..ledger import projection
from ..ledger.entries import LedgerEntry
from ..ledger.ops import Record
from ..model import Caller
from ..store import MigrationLike, Tx
from .work import Work

__all__ = ["Audit"]


class Audit:
    def __init__(self, work: Work, migrations: Sequence[MigrationLike]) -> None:
        self.work = work
        self.migrations = migrations

    async def counters(self) -> dict[str, int]:
        rows = await self.work.store.peek(lambda tx: tx.all("SELECT name, value FROM counters"))
        return {str(r[0]): int(r[1]) for r in rows}

    async def record(self, caller: Caller, record: Record) -> LedgerEntry:
        """Append one entry outside any rule (used by the router for `tool.rejected`); a freeze
        does not stop it, so refusals made while frozen are on record too."""
        return await self.work.transact(
            caller, lambda tx, ops: ops.emit(tx, record), through_freeze=True
        )

    async def refused(self, caller: Caller, record: Record) -> None:
        """Put a refusal on record (the router's `tool.rejected`); one caller's identical
        repetitions are coalesced (process/refusals.py), and a freeze does not stop it."""
        await self.work.refusals.record(caller, (record,))

    async def flush_refusals(self, *, everything: bool = False) -> None:
        """Write the counts of coalesced refusals that are due (all of them at shutdown)."""
        await self.work.refusals.flush(everything=everything)

    async def replay_equals_store(self) -> bool:
        """Rebuild the projection from the ledger alone and compare it with the store."""

        def both(tx: Tx) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
            return projection.snapshot(tx), tx.all(
                "SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq"
            )

        current, rows = await self.work.store.read(both)
        rebuilt = projection.replay((LedgerEntry.from_row(*r) for r in rows), self.migrations)
        return rebuilt == current
