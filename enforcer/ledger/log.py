"""The ledger service: append entries, read them back, and sign checkpoints of the chain.

Checkpoints (C2SP tlog-checkpoint text, Ed25519) are kept outside the database in
``state/checkpoints/`` and returned as receipts; the policy signs after a count of new entries
or an interval with new entries.

    entry = await ledger.append(actor="alice", type="task.started", subject={"task": "T1"})
    await ledger.checkpoint()   # signs the RFC 6962 root into state/checkpoints/
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ..clock import Clock, rfc3339
from ..errors import StorageFullError, WritesRefusedError
from ..store import Row, Store, Tx
from . import checkpoint, merkle
from .checkpoint import Checkpoint
from .entries import GENESIS_PREV, LedgerEntry, append_entry
from .keys import Signer

__all__ = ["CheckpointPolicy", "Ledger", "origin_for"]

logger = logging.getLogger(__name__)

_BATCH = 10_000  # rows read per hop while the frontier catches up


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
        self._signed_size = checkpoint.newest_size(checkpoints_dir) or 0
        self._signed_at = clock.now()  # the injected clock: tests move it, not sleep
        self.size_hint = 0  # largest seq + 1 this process has seen
        self._signing = asyncio.Lock()  # one frontier update at a time
        self._checked = False  # the head has been compared with the newest checkpoint
        self._known_roots: dict[int, bytes] = {}  # size -> root this process signed
        # Set once the ledger failed its check: every write is refused with it from then on.
        self.refusal: WritesRefusedError | None = None

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
        await self.writable()
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

        Checks first (`check`): a ledger that does not extend what was signed is never signed
        again; that raises WritesRefusedError, and so does every write from then on. Signing
        runs under the store's ``checkpoint`` lock, so of several servers over one database one
        signs at a time, each over the whole chain it can see once the lock is its own.

        Raises StorageFullError when the disk has no room for the checkpoint's file (nothing
        is signed; the next checkpoint covers these entries too)."""
        async with self._signing:
            try:
                return await self.store.locked("checkpoint", lambda tx: self._sign_in(tx, True))
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise StorageFullError(
                    f"no space left on the disk that holds {self.checkpoints_dir}:"
                    " no checkpoint was signed",
                    hint="free space on that disk; the next checkpoint covers these entries",
                    details={"cause": "storage_full"},
                ) from e

    async def check(self) -> None:
        """Compare the ledger's head with the newest signed checkpoint, without signing.

        The frontier is extended with the entries appended since the last look (by any process),
        checking each link, after checking that the entry it ended on is still there. The ledger
        must then be at least as long as the newest checkpoint on disk (signed by any process),
        and its root over that prefix must be the signed one. On a fault, one line is logged,
        writes are refused from then on (`writable`), and WritesRefusedError is raised; reads and
        the offline verifier go on working."""
        async with self._signing:
            await self.store.read(self._check)

    async def writable(self) -> None:
        """Return when writes may go on; raise WritesRefusedError once the ledger failed its
        check. The first call in a process checks the whole ledger (what its first checkpoint
        would read anyway); later ones cost two attribute reads."""
        if self.refusal is None and not self._checked:
            await self.check()
        if self.refusal is not None:
            raise self.refusal

    def _check(self, tx: Tx) -> None:
        """The check of `check`, inside one read of the store (on its thread)."""
        if self.refusal is not None:
            raise self.refusal
        newest = self._newest_signed()
        tip = self._frontier.size - 1  # re-read: it must still be the entry we hashed last
        while True:
            rows = _rows_from(tip if tip >= 0 else self._frontier.size)(tx)
            fetched = len(rows)
            if tip >= 0:
                if not rows or rows[0][0] != tip:
                    self._refuse(
                        "truncated",
                        f"the ledger no longer holds entry {tip}, which this server checked",
                        tip,
                    )
                if rows[0][2] != self._last_prev:
                    self._refuse("link", f"entry {tip} changed after it was checked", tip)
                rows, tip = rows[1:], -1
            for seq, prev, leaf in rows:
                if seq != self._frontier.size or prev != self._last_prev:
                    self._refuse("link", f"entry {seq} does not link to entry {seq - 1}", seq)
                self._frontier.append(bytes.fromhex(leaf))
                self._last_prev = leaf
                if (
                    newest is not None
                    and self._frontier.size == newest.size
                    and self._frontier.root() != newest.root
                ):
                    self._refuse(
                        "root",
                        f"the root over the first {newest.size} entries differs from the"
                        f" signed checkpoint {newest.size} (the ledger diverged)",
                        newest.size - 1,
                    )
            if fetched < _BATCH:
                break
        size = self._frontier.size
        if newest is not None and size < newest.size:
            self._refuse(
                "truncated", f"{size} entries but checkpoint {newest.size} was signed", size
            )
        self._checked = True
        self.observe(size - 1)

    def _newest_signed(self) -> Checkpoint | None:
        """The newest checkpoint on disk, signature checked; a bad one is a fault."""
        size = checkpoint.newest_size(self.checkpoints_dir)
        if size is None:
            return None
        known = self._known_roots.get(size)
        if known is not None:
            return Checkpoint(origin=self.origin, size=size, root=known)
        path = checkpoint.path_of(self.checkpoints_dir, size)
        try:
            cp = checkpoint.read(path, self.signer.verifier)
        except (checkpoint.CheckpointError, OSError) as e:
            self._refuse("signature", f"checkpoint {path.name} does not verify: {e}", size)
        if cp.size != size:
            self._refuse("signature", f"checkpoint {path.name} signs size {cp.size}", size)
        return cp

    def _refuse(self, fault: str, what: str, seq: int) -> NoReturn:
        self.refusal = WritesRefusedError(
            "ledger",
            f"writes are refused: the ledger does not extend what was signed ({fault}: {what})",
            hint="read-only tools still work; this is no freeze that `phasegate unfreeze`"
            " lifts: a supervisor runs `phasegate verify` and restores the state directory"
            " from a backup",
            fault=fault,
            seq=seq,
        )
        logger.critical(
            "%s; recovery: run `phasegate verify --state-dir %s`, then restore the state"
            " directory from a backup (reads and verify still work)",
            self.refusal.message,
            self.checkpoints_dir.parent,
        )
        raise self.refusal

    def _sign_in(self, tx: Tx, force: bool) -> Checkpoint | None:
        """Check, then sign (in the store's lock, on its thread). Unless `force`, sign only if
        still due once the checkpoints other servers signed meanwhile are counted."""
        self._check(tx)
        newest = checkpoint.newest_size(self.checkpoints_dir) or 0
        if newest > self._signed_size:  # another process signed since: that counts as ours
            self._signed_size = newest
            self._signed_at = self.clock.now()
        if not force and not self.checkpoint_due():
            return None
        return self._sign()

    def _sign(self) -> Checkpoint | None:
        size = self._frontier.size
        self._signed_at = self.clock.now()
        if size == 0:
            return None
        cp = Checkpoint(origin=self.origin, size=size, root=self._frontier.root())
        if size > self._signed_size or not checkpoint.path_of(self.checkpoints_dir, size).exists():
            checkpoint.write(self.checkpoints_dir, cp, self.signer)
            self._signed_size = max(self._signed_size, size)
        self._known_roots = {size: cp.root}  # our own newest: no need to read it back
        return cp

    def checkpoint_due(self) -> bool:
        """Whether the policy asks for a checkpoint now (cheap; no I/O)."""
        pending = self.size_hint - self._signed_size
        if pending >= self.policy.every:
            return True
        elapsed = (self.clock.now() - self._signed_at).total_seconds()
        return pending > 0 and elapsed >= self.policy.interval_s

    async def maybe_checkpoint(self) -> Checkpoint | None:
        """Sign when the policy asks for it (and still asks once the lock is ours)."""
        if not self.checkpoint_due():
            return None
        async with self._signing:
            return await self.store.locked("checkpoint", lambda tx: self._sign_in(tx, False))


def _rows_from(first: int) -> Callable[[Tx], list[Row]]:
    """A read of (seq, prev, leaf_hash) from seq `first` on, one batch."""

    def read(tx: Tx) -> list[Row]:
        return tx.all(
            "SELECT seq, prev, leaf_hash FROM ledger WHERE seq >= ? ORDER BY seq LIMIT ?",
            (first, _BATCH),
        )

    return read
