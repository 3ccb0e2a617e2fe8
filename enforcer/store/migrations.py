"""The versioned schema migrations, one list for every store, and SQLite's applier.

Each migration is applied once, in order, in its own transaction, and recorded in
``schema_version``; a database newer than this code is refused. The ledger's table is the first
migration; the projection's schema (``ledger.projection.SCHEMA``) is appended by the runtime.

A migration is either a string of DDL in the portable subset — ``CREATE TABLE`` / ``CREATE
INDEX`` with the types ``TEXT``, ``INTEGER`` and ``BLOB``, no triggers — which every store
applies (PostgreSQL reads ``INTEGER`` as ``BIGINT``, SQLite's 64-bit integer, and ``BLOB`` as
``BYTEA``), or a `Migration` that adds statements for one dialect only (triggers, PostgreSQL's
functions). SQLite runs the statements exactly as written, so its schema is the one it always had.

    Migration(
        portable="CREATE TABLE t (k TEXT PRIMARY KEY);",
        sqlite=("CREATE TRIGGER ...",),
        postgres=("CREATE FUNCTION ...", "CREATE TRIGGER ..."),
    )
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import StoreError

__all__ = [
    "MIGRATIONS",
    "Dialect",
    "Migration",
    "MigrationLike",
    "migrate",
    "pending",
    "statements",
]

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class Migration:
    """Portable DDL plus statements for one dialect only, run after it (in the order given)."""

    portable: str
    sqlite: tuple[str, ...] = ()
    postgres: tuple[str, ...] = ()


MigrationLike = str | Migration


# Versioned migrations: applied in order, each in its own transaction, recorded in
# schema_version. Never edit a released migration; add a new one.
MIGRATIONS: list[MigrationLike] = [
    # 1: the ledger. Hashes are lowercase hex; `entry` holds the exact RFC 8785 bytes hashed.
    Migration(
        portable="""
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
    """,
        sqlite=(
            """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;""",
            """CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;""",
        ),
        postgres=(
            # Appends from several servers serialise on the chain head; `prev` unique is the
            # database's own refusal of a fork, as the primary key on `seq` is of a gap filled
            # twice.
            "CREATE UNIQUE INDEX ledger_prev ON ledger(prev)",
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'ledger is append-only'; END $$",
            "CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger"
            " FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
            "CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger"
            " FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()",
        ),
    ),
]


def statements(migration: MigrationLike, dialect: Dialect) -> list[str]:
    """The statements that apply `migration` on `dialect`, in order."""
    if isinstance(migration, str):
        migration = Migration(portable=migration)
    portable = _statements(migration.portable)
    if dialect == "sqlite":
        return [*portable, *migration.sqlite]
    return [*(_postgres_ddl(s) for s in portable), *migration.postgres]


_PG_TYPES = {"INTEGER": "BIGINT", "BLOB": "BYTEA"}
_PG_TYPE = re.compile(r"\b(INTEGER|BLOB)\b")


def _postgres_ddl(statement: str) -> str:
    """Portable DDL in PostgreSQL's words: SQLite's 64-bit INTEGER is BIGINT, BLOB is BYTEA."""
    if re.search(r"\bCREATE\s+TRIGGER\b", statement, re.IGNORECASE):
        raise StoreError("a trigger is not portable DDL: give each dialect its own (Migration)")
    return _PG_TYPE.sub(lambda m: _PG_TYPES[m.group(1)], statement)


def pending(
    current: int, migrations: Sequence[MigrationLike], dialect: Dialect
) -> list[tuple[int, list[str]]]:
    """The migrations after schema version `current`, each as (version, its statements in
    `dialect`); a database newer than this code is refused. Each store applies them in its own
    locked transaction."""
    if current > len(migrations):
        raise StoreError(
            f"database schema version {current} is newer than this phasegate "
            f"({len(migrations)}); upgrade phasegate"
        )
    return [
        (version, statements(migrations[version - 1], dialect))
        for version in range(current + 1, len(migrations) + 1)
    ]


def migrate(conn: sqlite3.Connection, migrations: Sequence[MigrationLike]) -> int:
    """Apply pending migrations; safe when several processes open a fresh file at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        for version, sql in pending(int(row[0] or 0), migrations, "sqlite"):
            for statement in sql:
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
