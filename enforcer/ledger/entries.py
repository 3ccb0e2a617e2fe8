"""The append-only, hash-chained ledger: every state change of phasegate is one entry.

An entry is a JSON object canonicalised with RFC 8785; the exact bytes are stored and hashed as
an RFC 6962 leaf, ``leaf_hash = sha256(0x00 || bytes)``. Each entry names the previous leaf hash
(``prev``; 64 zeros at seq 0) and its own contiguous ``seq``. Appends read the chain head inside
the caller's ``BEGIN IMMEDIATE`` transaction, so concurrent writers — threads or processes —
serialise on the database lock and can never fork the chain; the primary key on ``seq`` is a
second line of defence.

    entry = await ledger.append(actor="alice", type="task.started", subject={"task": "T1"})
    await ledger.checkpoint()   # signs the RFC 6962 root into state/checkpoints/
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Clock, rfc3339
from ..errors import InvalidArgumentError, LedgerFaultError
from ..store import Store, Tx
from . import canonical, checkpoint, merkle
from .checkpoint import Checkpoint
from .keys import Signer

__all__ = [
    "ENTRY_VERSION",
    "GENESIS_PREV",
    "MAX_ENTRY_BYTES",
    "CheckpointPolicy",
    "Ledger",
    "LedgerEntry",
    "append_entry",
    "origin_for",
]

logger = logging.getLogger(__name__)

ENTRY_VERSION = 1
GENESIS_PREV = "0" * 64
MAX_ENTRY_BYTES = 64 * 1024
_TYPE = re.compile(r"[a-z][a-z_]*(?:\.[a-z][a-z_]*)+")  # fullmatch: "$" admits a final "\n"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stored entry: its position, hashes, exact bytes and decoded fields."""

    seq: int
    prev: str
    leaf_hash: str
    raw: bytes
    fields: dict[str, Any] = field(repr=False)

    @property
    def type(self) -> str:
        return str(self.fields["type"])

    @property
    def actor(self) -> str:
        return str(self.fields["actor"])

    @property
    def ts(self) -> str:
        return str(self.fields["ts"])

    @property
    def subject(self) -> dict[str, Any]:
        return dict(self.fields["subject"])

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.fields["data"])

    @property
    def refs(self) -> dict[str, Any]:
        return dict(self.fields["refs"])

    def as_dict(self) -> dict[str, Any]:
        """The entry as a reader sees it: the canonical fields plus the leaf hash."""
        return {**self.fields, "leaf_hash": self.leaf_hash}

    @classmethod
    def from_row(cls, seq: int, prev: str, leaf: str, raw: bytes) -> LedgerEntry:
        """Decode a stored row; a row that is not ledger JSON (tampering) is a LedgerFaultError."""
        if not isinstance(raw, bytes):
            raise LedgerFaultError("canonical", "entry is not stored as bytes", seq=seq)
        try:
            fields = canonical.decode(raw)
        except ValueError as e:
            raise LedgerFaultError("canonical", f"entry is not ledger JSON: {e}", seq=seq) from e
        if not isinstance(fields, dict):
            raise LedgerFaultError("schema", "entry is not a JSON object", seq=seq)
        return cls(seq=seq, prev=prev, leaf_hash=leaf, raw=raw, fields=fields)


def _require_label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidArgumentError(f"ledger {name} must be a non-empty string of at most 200")
    return value


def append_entry(
    tx: Tx,
    *,
    ts: str,
    actor: str,
    type: str,
    subject: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    refs: dict[str, Any] | None = None,
) -> LedgerEntry:
    """Append one entry inside the caller's write transaction and return it.

    Raises InvalidArgumentError — before anything is written — for a type that is not a dotted
    label, values outside the canonical subset (floats, integers beyond 2**53, non-JSON types) or
    an entry over MAX_ENTRY_BYTES.
    """
    _require_label(actor, "actor")
    if not isinstance(type, str) or not _TYPE.fullmatch(type):
        raise InvalidArgumentError(f"ledger type {type!r} is not a dotted lowercase label")
    parts = {
        "subject": {} if subject is None else subject,
        "data": {} if data is None else data,
        "refs": {} if refs is None else refs,
    }
    for name, value in parts.items():
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"ledger {name} must be an object")
    head = tx.one("SELECT seq, leaf_hash FROM ledger ORDER BY seq DESC LIMIT 1")
    seq, prev = (0, GENESIS_PREV) if head is None else (int(head[0]) + 1, str(head[1]))
    fields: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "seq": seq,
        "prev": prev,
        "ts": ts,
        "actor": actor,
        "type": type,
        **parts,
    }
    raw = canonical.encode(fields)
    if len(raw) > MAX_ENTRY_BYTES:
        raise InvalidArgumentError(
            f"ledger entry is {len(raw)} bytes; the limit is {MAX_ENTRY_BYTES}"
        )
    leaf = merkle.leaf_hash(raw).hex()
    task = parts["subject"].get("task")
    trace = parts["refs"].get("trace_id")
    tx.execute(
        "INSERT INTO ledger (seq, prev, leaf_hash, entry, ts, type, task, trace_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            prev,
            leaf,
            raw,
            ts,
            type,
            task if isinstance(task, str) else None,
            trace if isinstance(trace, str) else None,
        ),
    )
    return LedgerEntry(seq=seq, prev=prev, leaf_hash=leaf, raw=raw, fields=fields)


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
