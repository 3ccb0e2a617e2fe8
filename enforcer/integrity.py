"""Whole-state integrity: the ledger and its checkpoints, every evidence blob the ledger names,
the readable evidence copies, the projection tables against a replay of the ledger, and every
governed module's versions (attestation, manifest, blobs) and installed trees.

A readable copy must be what its record says, or an earlier recorded version of the same
artifact: the copy is written after the record commits, so a server killed in between leaves
the previous version (counted as stale, refreshed by the next server to start).

Used by ``scripts/integrity.py`` (CI) and ``phasegate verify``. It reads only; a fault raises
LedgerFaultError naming what is wrong, unreadable input raises StoreError.

    report = check_integrity(Path("state"))
    report = check_integrity(Path("state"), "postgresql://db/phasegate")   # PostgreSQL's ledger
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LedgerFaultError, StoreError
from .ledger import projection
from .ledger.entries import LedgerEntry
from .ledger.keys import Verifier
from .ledger.verify import VerifyReport, verify_state
from .modules.integrity_check import ModulesReport, check_modules, read_modules
from .paths import StatePaths
from .store import open_snapshot

__all__ = ["IntegrityReport", "check_integrity"]


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    ledger: VerifyReport
    blobs_checked: int
    files_checked: int
    projection_rows: int
    modules: ModulesReport
    stale_copies: int = 0  # readable copies still at an earlier recorded version

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.ledger.as_dict(),
            "blobs_checked": self.blobs_checked,
            "evidence_files_checked": self.files_checked,
            "projection_rows": self.projection_rows,
            "stale_evidence_files": self.stale_copies,
            "modules_checked": self.modules.modules,
            "module_versions_checked": self.modules.versions,
            "module_blobs_checked": self.modules.blobs,
            "installed_trees_checked": self.modules.trees,
        }


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def check_integrity(state_dir: Path, store_url: str | None = None) -> IntegrityReport:
    """Check everything; the database is PostgreSQL's at `store_url` when given, else the state
    directory's SQLite file (evidence and blobs are always the state directory's)."""
    from .runtime import MIGRATIONS

    paths = StatePaths(state_dir)
    ledger = verify_state(state_dir, store_url)
    with open_snapshot(paths.db, store_url) as snap:
        rows = snap.stream("SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq")
        entries = [LedgerEntry.from_row(*r) for r in rows]
        current = projection.snapshot(snap.tx)
        module_rows = read_modules(snap.tx)

    blobs = 0
    versions: dict[tuple[str, str, str], set[str]] = {}  # every recorded version of each copy
    for entry in entries:
        if entry.type != "evidence.recorded":
            continue
        sha = str(entry.data["sha256"])
        subject = entry.fields["subject"]
        versions.setdefault((subject["task"], subject["phase"], entry.data["name"]), set()).add(sha)
        found = _sha256_file(paths.blobs / "sha256" / sha[:2] / sha)
        if found != sha:
            raise LedgerFaultError(
                "evidence",
                f"blob {sha} named by the ledger is {'missing' if found is None else 'altered'}",
                seq=entry.seq,
            )
        blobs += 1

    files = stale = 0
    for row in current["evidence"]:
        task, phase, name, sha, seq = row[0], row[1], row[2], row[4], row[10]
        found = _sha256_file(paths.evidence / task / phase / name)
        if found is not None and found != sha:
            # An earlier recorded version: a server was killed between recording an artifact
            # and copying it out (the next server to start refreshes it). Anything else is not
            # what the ledger recorded.
            if found in versions.get((task, phase, name), set()):
                stale += 1
                continue
            raise LedgerFaultError(
                "evidence",
                f"evidence file {task}/{phase}/{name} differs from its record",
                seq=int(seq),
            )
        files += found is not None

    if projection.replay(entries, MIGRATIONS) != current:
        raise LedgerFaultError(
            "projection", "the store's tables differ from a replay of the ledger", seq=None
        )
    try:
        verifier = Verifier.from_dir(paths.keys)
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot read the public key in {paths.keys}: {e}") from e
    modules = check_modules(paths, module_rows, verifier)
    rows_total = sum(len(v) for v in current.values())
    return IntegrityReport(ledger, blobs, files, rows_total, modules, stale)
