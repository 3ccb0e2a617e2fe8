"""The offline ledger verifier: re-checks everything from the bytes on disk, trusting nothing.

It reads the database read-only and the checkpoints with the exported public key, and checks,
per entry: contiguous seq, the bytes are the RFC 8785 form of their JSON, the stored leaf hash,
the ``prev`` link and the required fields; then every checkpoint's signature, that the ledger is
not shorter than any checkpoint, and that each signed root equals the root recomputed over the
entries (a ledger re-chained with recomputed hashes fails here).

    report = verify_state(Path("state"))       # raises LedgerFaultError naming kind and seq
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import canonical, checkpoint
from .checkpoint import CheckpointError
from .errors import LedgerFaultError, StoreError
from .keys import Verifier
from .ledger import GENESIS_PREV
from .merkle import Frontier
from .store import open_readonly

__all__ = ["VerifyReport", "verify_rows", "verify_state"]

_REQUIRED = ("v", "seq", "prev", "ts", "actor", "type", "subject", "data", "refs")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    root: str
    checkpoints: int
    latest_checkpoint_size: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "entries": self.entries,
            "root": self.root,
            "checkpoints": self.checkpoints,
            "latest_checkpoint_size": self.latest_checkpoint_size,
        }


def verify_rows(
    rows: Iterable[tuple[int, str, str, bytes]],
    signed: dict[int, bytes] | None = None,
) -> tuple[int, bytes]:
    """Check a stream of (seq, prev, leaf_hash, entry) rows; returns (count, root).

    `signed` maps checkpoint sizes to their signed roots; each is compared when the stream
    reaches that size. Raises LedgerFaultError at the first fault.
    """
    signed = signed or {}
    frontier = Frontier()
    prev = GENESIS_PREV
    sha = hashlib.sha256
    expected = 0
    for seq, stored_prev, stored_leaf, raw in rows:
        raw = bytes(raw)
        if seq != expected:
            kind = "seq"
            raise LedgerFaultError(
                kind, f"entry at position {expected} has seq {seq} (gap or reorder)", seq=expected
            )
        try:
            fields = canonical.decode(raw)
        except ValueError as e:
            raise LedgerFaultError("canonical", f"entry is not ledger JSON: {e}", seq=seq) from e
        if not isinstance(fields, dict) or any(k not in fields for k in _REQUIRED):
            raise LedgerFaultError("schema", "entry lacks required fields", seq=seq)
        if not canonical.is_canonical(raw, fields):
            raise LedgerFaultError("canonical", "bytes are not RFC 8785 canonical", seq=seq)
        if fields["seq"] != seq:
            raise LedgerFaultError(
                "seq", f"entry says seq {fields['seq']} but sits at {seq} (reordered)", seq=seq
            )
        leaf = sha(b"\x00" + raw).digest()
        if leaf.hex() != stored_leaf:
            raise LedgerFaultError("hash", "stored leaf hash differs from the bytes", seq=seq)
        if fields["prev"] != prev or stored_prev != prev:
            raise LedgerFaultError("link", "prev does not name the previous leaf hash", seq=seq)
        prev = stored_leaf
        frontier.append(leaf)
        expected += 1
        want = signed.get(expected)
        if want is not None and frontier.root() != want:
            raise LedgerFaultError(
                "root",
                f"root over the first {expected} entries differs from the signed checkpoint"
                " (the ledger was rewritten)",
                seq=expected - 1,
            )
    return expected, frontier.root()


def _rows(conn: sqlite3.Connection) -> Iterator[tuple[int, str, str, bytes]]:
    cursor = conn.execute("SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY rowid")
    while batch := cursor.fetchmany(4096):
        yield from batch


def verify_state(state_dir: Path) -> VerifyReport:
    """Verify the ledger and checkpoints of a state directory.

    Raises StoreError when the input cannot be read (no database, no public key) and
    LedgerFaultError when anything does not verify.
    """
    keys_dir = state_dir / "keys"
    try:
        verifier = Verifier.from_dir(keys_dir)
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot read the ledger public key in {keys_dir}: {e}") from e
    signed: dict[int, bytes] = {}
    found = checkpoint.list_checkpoints(state_dir / "checkpoints")
    for size, path in found:
        try:
            cp = checkpoint.Checkpoint.parse(path.read_text(), verifier)
        except CheckpointError as e:
            raise LedgerFaultError("signature", f"checkpoint {path.name}: {e}", seq=size) from e
        except OSError as e:
            raise StoreError(f"cannot read checkpoint {path}: {e}") from e
        if cp.size != size:
            raise LedgerFaultError(
                "signature", f"checkpoint {path.name} signs size {cp.size}", seq=size
            )
        signed[size] = cp.root
    conn = open_readonly(state_dir / "phasegate.db")
    try:
        try:
            conn.execute("BEGIN")
            count, root = verify_rows(_rows(conn), signed)
        except sqlite3.Error as e:
            raise StoreError(f"cannot read the ledger: {e}") from e
    finally:
        conn.close()
    latest = found[-1][0] if found else None
    if latest is not None and count < latest:
        raise LedgerFaultError(
            "truncated",
            f"ledger has {count} entries but checkpoint {latest} was signed",
            seq=count,
        )
    return VerifyReport(
        entries=count, root=root.hex(), checkpoints=len(found), latest_checkpoint_size=latest
    )
