"""The store's tables are a projection of the ledger: `apply` is the only code that changes them.

Every domain operation appends ledger entries and applies each one here inside the same
transaction; `replay` applies the whole ledger to an empty database and must produce exactly the
same tables (`snapshot`). So what the store says is never more than what the ledger can prove.

    snapshot_of_store = await store.read(snapshot)
    assert replay(ledger_rows) == snapshot_of_store
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..store import MigrationLike, SqliteTx, Tx, migrate
from . import module_projection, policy_projection
from .entries import LedgerEntry

__all__ = ["COUNTERS", "SCHEMA", "TABLES", "apply", "refusals_of", "replay", "snapshot"]

# Migration 2: the projection.
SCHEMA = """
CREATE TABLE tasks (
    task       TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    phase      TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE leases (
    task       TEXT NOT NULL,
    phase      TEXT NOT NULL,
    actor      TEXT,
    instance   TEXT,
    pid        INTEGER,
    host       TEXT,
    lease_id   TEXT,
    token      INTEGER NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (task, phase)
);
CREATE TABLE evidence (
    task           TEXT NOT NULL,
    phase          TEXT NOT NULL,
    name           TEXT NOT NULL,
    epoch          INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL,
    producer       TEXT NOT NULL,
    subject_sha256 TEXT,
    valid          INTEGER NOT NULL,
    problems       TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    ts             TEXT NOT NULL,
    PRIMARY KEY (task, phase, name)
);
CREATE TABLE baselines (
    task    TEXT NOT NULL,
    phase   TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    reason  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (task, phase, version)
);
CREATE TABLE attestations (
    task        TEXT NOT NULL,
    phase       TEXT NOT NULL,
    last_sha256 TEXT NOT NULL,
    drift       INTEGER NOT NULL,
    severity    TEXT,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (task, phase)
);
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE controls (
    name   TEXT PRIMARY KEY,
    active INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor  TEXT NOT NULL,
    ts     TEXT NOT NULL,
    seq    INTEGER NOT NULL
);
"""

TABLES: dict[str, str] = {
    "tasks": "task",
    "leases": "task, phase",
    "evidence": "task, phase, name",
    "baselines": "task, phase, version",
    "attestations": "task, phase",
    "counters": "name",
    "controls": "name",
    **module_projection.TABLES,
    **policy_projection.TABLES,
}

# Ledger entry type -> the process counters it increments (DESIGN.md, Telemetry).
COUNTERS: dict[str, tuple[str, ...]] = {
    "phase.skip_blocked": ("phase_skips_attempted",),
    "phase.backtracked": ("phase_backtracks",),
    "prompt.drift": ("prompt_drift_detected",),
    "evidence.gate_failed": ("evidence_gate_failed", "phase_validations_failed"),
    "phase.advance_blocked": ("phase_validations_failed",),
    "tool.rejected": ("tool_calls_rejected",),
    "lease.contended": ("lease_contention",),
}


def _bump(tx: Tx, name: str, by: int) -> None:
    tx.run(
        "INSERT INTO counters (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
        (name, by),
    )


def refusals_of(entry: LedgerEntry) -> int:
    """How many refusals an entry stands for: identical ones coalesced into one entry carry
    their number as ``data.refusals`` (process/refusals.py); any other entry is one."""
    count = entry.fields["data"].get("refusals", 1)
    return count if type(count) is int and count >= 1 else 1


def _task_started(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    tx.run(
        "INSERT INTO tasks (task, title, phase, epoch, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (s["task"], d["title"], d["to"], d["epoch"], e.ts, e.actor),
    )


def _phase_moved(tx: Tx, e: LedgerEntry) -> None:
    """A move also hands the mover's lease from the old phase to the new one."""
    d = e.fields["data"]
    task = e.fields["subject"]["task"]
    tx.run("UPDATE tasks SET phase = ?, epoch = ? WHERE task = ?", (d["to"], d["epoch"], task))
    if d.get("released_token") is not None:
        _clear_lease(tx, task, d["from"], d["released_token"])
    if d.get("lease") is not None:
        _upsert_lease(tx, task, d["to"], d["lease"])


def _evidence(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    tx.run(
        "INSERT INTO evidence (task, phase, name, epoch, sha256, size, producer,"
        " subject_sha256, valid, problems, seq, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (task, phase, name) DO UPDATE SET epoch = excluded.epoch,"
        " sha256 = excluded.sha256, size = excluded.size, producer = excluded.producer,"
        " subject_sha256 = excluded.subject_sha256, valid = excluded.valid,"
        " problems = excluded.problems, seq = excluded.seq, ts = excluded.ts",
        (
            s["task"],
            s["phase"],
            d["name"],
            d["epoch"],
            d["sha256"],
            d["size"],
            d["producer"],
            d.get("subject_sha256"),
            1 if d["valid"] else 0,
            json.dumps(d["problems"]),
            e.seq,
            e.ts,
        ),
    )


def _lease_acquired(tx: Tx, e: LedgerEntry) -> None:
    s = e.fields["subject"]
    _upsert_lease(tx, s["task"], s["phase"], e.fields["data"])


def _upsert_lease(tx: Tx, task: str, phase: str, d: dict[str, Any]) -> None:
    tx.run(
        "INSERT INTO leases (task, phase, actor, instance, pid, host, lease_id, token,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (task, phase) DO UPDATE SET actor = excluded.actor,"
        " instance = excluded.instance, pid = excluded.pid, host = excluded.host,"
        " lease_id = excluded.lease_id, token = excluded.token,"
        " expires_at = excluded.expires_at",
        (
            task,
            phase,
            d["holder_actor"],
            d["instance"],
            d.get("pid"),
            d.get("host"),
            d["lease_id"],
            d["token"],
            d["expires_at"],
        ),
    )


def _lease_renewed(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    tx.run(
        "UPDATE leases SET expires_at = ? WHERE task = ? AND phase = ? AND token = ?",
        (d["expires_at"], s["task"], s["phase"], d["token"]),
    )


def _lease_ended(tx: Tx, e: LedgerEntry) -> None:
    s = e.fields["subject"]
    _clear_lease(tx, s["task"], s["phase"], e.fields["data"]["token"])


def _clear_lease(tx: Tx, task: str, phase: str, token: int) -> None:
    tx.run(
        "UPDATE leases SET actor = NULL, instance = NULL, pid = NULL, host = NULL,"
        " lease_id = NULL, expires_at = NULL WHERE task = ? AND phase = ? AND token = ?",
        (task, phase, token),
    )


def _baseline(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    tx.run(
        "INSERT INTO baselines (task, phase, version, sha256, actor, reason, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (s["task"], s["phase"], d["version"], d["sha256"], e.actor, d.get("reason", ""), e.seq),
    )
    _attested(tx, s["task"], s["phase"], d["sha256"], drift=False, severity=None, seq=e.seq)


def _drift(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    _attested(tx, s["task"], s["phase"], d["sha256"], drift=True, severity=d["severity"], seq=e.seq)


def _attested(
    tx: Tx, task: str, phase: str, sha: str, *, drift: bool, severity: str | None, seq: int
) -> None:
    tx.run(
        "INSERT INTO attestations (task, phase, last_sha256, drift, severity, seq)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task, phase) DO UPDATE SET"
        " last_sha256 = excluded.last_sha256, drift = excluded.drift,"
        " severity = excluded.severity, seq = excluded.seq",
        (task, phase, sha, 1 if drift else 0, severity, seq),
    )


def _control(tx: Tx, e: LedgerEntry) -> None:
    d = e.fields["data"]
    tx.run(
        "INSERT INTO controls (name, active, reason, actor, ts, seq) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET active = excluded.active, reason = excluded.reason,"
        " actor = excluded.actor, ts = excluded.ts, seq = excluded.seq",
        (d["control"], 1 if d["active"] else 0, d["reason"], e.actor, e.ts, e.seq),
    )


_APPLY: dict[str, Callable[[Tx, LedgerEntry], None]] = {
    "control.freeze_changed": _control,
    "control.pause_changed": _control,
    "task.started": _task_started,
    "phase.advanced": _phase_moved,
    "phase.backtracked": _phase_moved,
    "evidence.recorded": _evidence,
    "lease.acquired": _lease_acquired,
    "lease.renewed": _lease_renewed,
    "lease.released": _lease_ended,
    "lease.broken": _lease_ended,
    "prompt.baseline_set": _baseline,
    "prompt.rebaselined": _baseline,
    "prompt.drift": _drift,
    **module_projection.APPLY,
}


def apply(tx: Tx, entry: LedgerEntry) -> None:
    """Apply one ledger entry to the projection tables (types with no state change are no-ops)."""
    handler = _APPLY.get(entry.type)
    if handler is not None:
        handler(tx, entry)
    also = policy_projection.APPLY.get(entry.type)  # approvals, exceptions, limits
    if also is not None:
        also(tx, entry)
    counters = COUNTERS.get(entry.type, ())
    if counters:
        by = refusals_of(entry)
        for counter in counters:
            _bump(tx, counter, by)


def snapshot(tx: Tx) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection row, ordered by primary key.

    Ordered here rather than by the database, whose text collation is its own (PostgreSQL's
    follows the database's locale): the key columns lead each row, and Python orders strings
    by code point, as SQLite's BINARY collation does."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, key in TABLES.items():
        width = key.count(",") + 1
        rows = tx.all(f"SELECT * FROM {table}")
        out[table] = sorted(rows, key=operator.itemgetter(*range(width)))
    return out


def replay(entries: Iterable[LedgerEntry], migrations: Sequence[MigrationLike]) -> dict[str, Any]:
    """Rebuild the projection from ledger entries alone, in a scratch in-memory database."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn, migrations)
        tx = SqliteTx(conn)
        conn.execute("BEGIN")
        for entry in entries:
            apply(tx, entry)
        result = snapshot(tx)
        conn.execute("COMMIT")
        return result
    finally:
        conn.close()
