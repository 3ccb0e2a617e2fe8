"""The versioned schema migrations and the function that applies them.

Each migration is applied once, in order, in its own transaction, and recorded in
``schema_version``; a database newer than this code is refused. The ledger's table is the first
migration; the projection's schema (``ledger.projection.SCHEMA``) is appended by the runtime.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..errors import StoreError

__all__ = ["MIGRATIONS", "migrate"]


# Versioned migrations: applied in order, each in its own transaction, recorded in
# schema_version. Never edit a released migration; add a new one.
MIGRATIONS: list[str] = [
    # 1: the ledger. Hashes are lowercase hex; `entry` holds the exact RFC 8785 bytes hashed.
    """
    CREATE TABLE ledger (
        seq       INTEGER PRIMARY KEY,
        prev      TEXT NOT NULL,
        leaf_hash TEXT NOT NULL,
        entry     BLOB NOT NULL,
        ts        TEXT NOT NULL,
        type      TEXT NOT NULL,
        task      TEXT,
        trace_id  TEXT
    );
    CREATE INDEX ledger_task ON ledger(task, seq);
    CREATE INDEX ledger_trace ON ledger(trace_id) WHERE trace_id IS NOT NULL;
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
    """,
]


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Apply pending migrations; safe when several processes open a fresh file at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int(row[0] or 0)
        if current > len(migrations):
            raise StoreError(
                f"database schema version {current} is newer than this phasegate "
                f"({len(migrations)}); upgrade phasegate"
            )
        for version in range(current + 1, len(migrations) + 1):
            for statement in _statements(migrations[version - 1]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
        return len(migrations)
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
