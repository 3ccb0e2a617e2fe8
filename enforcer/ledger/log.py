"""The ledger service: append entries, read them back, and sign checkpoints of the chain.

Checkpoints (C2SP tlog-checkpoint text, Ed25519) are kept outside the database in
``state/checkpoints/`` and returned as receipts; the policy signs after a count of new entries
or an interval with new entries.

    entry = await ledger.append(actor="alice", type="task.started", subject={"task": "T1"})
    await ledger.checkpoint()   # signs the RFC 6962 root into state/checkpoints/
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import Clock, rfc3339
from ..errors import LedgerFaultError
from ..store import Store
from . import checkpoint, merkle
from .checkpoint import Checkpoint
from .entries import GENESIS_PREV, LedgerEntry, append_entry
from .keys import Signer

__all__ = ["CheckpointPolicy", "Ledger", "origin_for"]

logger = logging.getLogger(__name__)


def origin_for(signer: Signer) -> str:
    """The checkpoint origin line: unique per ledger key."""
    return f"phasegate/{signer.verifier.key_id.hex()}"


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """Checkpoint after `every` new entries or `interval_s` seconds with new entries."""

    every: int = 1000
    interval_s: float = 30.0


class Ledger:
    """The ledger service: append, read, and sign checkpoints of what the store holds."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        signer: Signer,
        checkpoints_dir: Path,
        policy: CheckpointPolicy | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.signer = signer
        self.checkpoints_dir = checkpoints_dir
        self.policy = policy or CheckpointPolicy()
        self.origin = origin_for(signer)
        self._frontier = merkle.Frontier()
        self._last_prev = GENESIS_PREV
        self._signed_size = max(
            (s for s, _ in checkpoint.list_checkpoints(checkpoints_dir)), default=0
        )
        self._signed_at = clock.now()  # the injected clock: tests move it, not sleep
        self.size_hint = 0  # largest seq + 1 this process has seen
        self._signing = asyncio.Lock()  # one frontier update at a time

    async def append(
        self,
        *,
        actor: str,
        type: str,
        subject: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        refs: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        """Append one entry in its own transaction."""
        ts = rfc3339(self.clock.now())
        entry = await self.store.write(
            lambda tx: append_entry(
                tx, ts=ts, actor=actor, type=type, subject=subject, data=data, refs=refs
            )
        )
        self.observe(entry.seq)
        return entry

    def observe(self, seq: int) -> None:
        """Note that an entry with `seq` was committed (for the checkpoint policy)."""
        self.size_hint = max(self.size_hint, seq + 1)

    async def size(self) -> int:
        row = await self.store.read(lambda tx: tx.one("SELECT max(seq) FROM ledger"))
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    async def head(self) -> int:
        """The newest seq, or -1 when empty: one step down the primary key, cheap to poll."""
        row = await self.store.peek_one("SELECT max(seq) FROM ledger")
        return -1 if row is None or row[0] is None else int(row[0])

    async def tasks_since(self, seq: int, limit: int = 1000) -> list[str | None]:
        """The tasks (None for entries about no task) of the entries after `seq`."""
        rows = await self.store.peek(
            lambda tx: tx.all(
                "SELECT DISTINCT task FROM"
                " (SELECT task FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?)",
                (seq, limit),
            )
        )
        return [r[0] for r in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest signed checkpoint in ``checkpoints/``, its signature checked."""
        return checkpoint.latest(self.checkpoints_dir, self.signer.verifier)

    async def get(self, seq: int) -> LedgerEntry | None:
        row = await self.store.read(
            lambda tx: tx.one(
                "SELECT seq, prev, leaf_hash, entry FROM ledger WHERE seq = ?", (seq,)
            )
        )
        return None if row is None else LedgerEntry.from_row(*row)

    async def tail(self, limit: int = 20, task: str | None = None) -> list[LedgerEntry]:
        """The newest `limit` entries (of one task when given), oldest first."""
        limit = max(1, min(int(limit), 1000))
        params: tuple[object, ...]
        if task is None:
            sql, params = (
                "SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq DESC LIMIT ?",
                (limit,),
            )
        else:
            sql, params = (
                "SELECT seq, prev, leaf_hash, entry FROM ledger WHERE task = ?"
                " ORDER BY seq DESC LIMIT ?",
                (task, limit),
            )
        rows = await self.store.read(lambda tx: tx.all(sql, params))
        return [LedgerEntry.from_row(*r) for r in reversed(rows)]

    async def by_trace(self, trace_id: str) -> list[LedgerEntry]:
        rows = await self.store.read(
            lambda tx: tx.all(
                "SELECT seq, prev, leaf_hash, entry FROM ledger WHERE trace_id = ? ORDER BY seq",
                (trace_id,),
            )
        )
        return [LedgerEntry.from_row(*r) for r in rows]

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the root over everything committed so far; None when the ledger is empty.

        The frontier is extended with the entries appended since the last call (by any process),
        checking each link on the way: a broken chain is never signed.
        """
        async with self._signing:
            return await self._checkpoint()

    async def _checkpoint(self) -> Checkpoint | None:
        start = self._frontier.size
        rows = await self.store.read(
            lambda tx: tx.all(
                "SELECT seq, prev, leaf_hash FROM ledger WHERE seq >= ? ORDER BY seq", (start,)
            )
        )
        for seq, prev, leaf in rows:
            if seq != self._frontier.size or prev != self._last_prev:
                raise LedgerFaultError("link", "refusing to sign a broken chain", seq=int(seq))
            self._frontier.append(bytes.fromhex(leaf))
            self._last_prev = leaf
        size = self._frontier.size
        self.observe(size - 1)
        self._signed_at = self.clock.now()
        if size == 0:
            return None
        cp = Checkpoint(origin=self.origin, size=size, root=self._frontier.root())
        if size > self._signed_size or not (self.checkpoints_dir / f"{size:012d}.txt").exists():
            checkpoint.write(self.checkpoints_dir, cp, self.signer)
            self._signed_size = max(self._signed_size, size)
        return cp

    def checkpoint_due(self) -> bool:
        """Whether the policy asks for a checkpoint now (cheap; no I/O)."""
        pending = self.size_hint - self._signed_size
        if pending >= self.policy.every:
            return True
        elapsed = (self.clock.now() - self._signed_at).total_seconds()
        return pending > 0 and elapsed >= self.policy.interval_s

    async def maybe_checkpoint(self) -> Checkpoint | None:
        return await self.checkpoint() if self.checkpoint_due() else None
