"""The append-only, hash-chained ledger: every state change of phasegate is one entry.

An entry is a JSON object canonicalised with RFC 8785; the exact bytes are stored and hashed as
an RFC 6962 leaf, ``leaf_hash = sha256(0x00 || bytes)``. Each entry names the previous leaf hash
(``prev``; 64 zeros at seq 0) and its own contiguous ``seq``. Appends read the chain head inside
the caller's ``BEGIN IMMEDIATE`` transaction, so concurrent writers — threads or processes —
serialise on the database lock and can never fork the chain; the primary key on ``seq`` is a
second line of defence.

    entry = append_entry(tx, ts=now, actor="alice", type="task.started", subject={"task": "T1"})
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError, LedgerFaultError
from ..store import CHAIN_APPEND_SQL, CHAIN_HEAD_SQL, Tx
from . import canonical, merkle

__all__ = [
    "ENTRY_VERSION",
    "GENESIS_PREV",
    "MAX_ENTRY_BYTES",
    "LedgerEntry",
    "append_entry",
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
    head = tx.one(CHAIN_HEAD_SQL)
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
    tx.run(
        CHAIN_APPEND_SQL,
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
