"""One read-only snapshot of a store, synchronous, for the offline verifier and the integrity
check: the SQLite file of a state directory, or the PostgreSQL database at a URL.

    with open_snapshot(paths.db, url=None) as snap:
        rows = snap.stream("SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq")
        current = projection.snapshot(snap.tx)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .migrations import Dialect
from .protocol import Row, Tx
from .sqlite_tx import SqliteTx, open_readonly

__all__ = ["Snapshot", "is_postgres_url", "open_snapshot"]

_BATCH = 4096


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.startswith(("postgresql://", "postgres://"))


class _Checked:
    """A `Tx` whose database errors arrive as StoreError, whatever the driver."""

    __slots__ = ("_errors", "_tx")

    def __init__(self, tx: Tx, errors: tuple[type[Exception], ...]) -> None:
        self._tx, self._errors = tx, errors

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._tx.execute(sql, params)
        except self._errors as e:
            raise StoreError(f"cannot read the database: {e}") from e

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._tx.run(sql, params)
        except self._errors as e:
            raise StoreError(f"cannot read the database: {e}") from e

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        try:
            return self._tx.one(sql, params)
        except self._errors as e:
            raise StoreError(f"cannot read the database: {e}") from e

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._tx.all(sql, params)
        except self._errors as e:
            raise StoreError(f"cannot read the database: {e}") from e


@dataclass
class Snapshot:
    """A `Tx` over one read-only snapshot, and a way to stream a long result through it."""

    dialect: Dialect
    tx: Tx
    _conn: Any

    def stream(self, sql: str) -> Iterator[Row]:
        """Rows of `sql` (no parameters) in batches, without holding them all in memory.

        Raises StoreError when the database cannot be read on the way."""
        if self.dialect == "sqlite":
            try:
                cursor = self._conn.execute(sql)
                while batch := cursor.fetchmany(_BATCH):
                    yield from batch
            except sqlite3.Error as e:
                raise StoreError(f"cannot read the ledger: {e}") from e
            return
        import psycopg

        try:
            with self._conn.cursor(name="phasegate_snapshot") as cursor:
                cursor.itersize = _BATCH
                cursor.execute(sql)
                for row in cursor:
                    yield tuple(row)
        except psycopg.Error as e:
            raise StoreError(f"cannot read the ledger: {e}") from e


@contextlib.contextmanager
def open_snapshot(db: Path, url: str | None = None) -> Iterator[Snapshot]:
    """A snapshot of the PostgreSQL database at `url` when given, else of the SQLite file
    `db`. Raises StoreError when it cannot be opened."""
    if not is_postgres_url(url):
        if url is not None:
            raise StoreError("a store URL starts with postgresql:// (absent: SQLite)")
        conn = open_readonly(db)
        try:
            try:
                conn.execute("BEGIN")
            except sqlite3.Error as e:
                raise StoreError(f"cannot read the database {db}: {e}") from e
            yield Snapshot("sqlite", _Checked(SqliteTx(conn), (sqlite3.Error,)), conn)
        finally:
            conn.close()
        return
    assert url is not None
    import psycopg

    from .postgres_tx import PgTx, redact

    try:
        pg = psycopg.connect(url, connect_timeout=10, application_name="phasegate-verify")
        pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        pg.read_only = True
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to PostgreSQL at {redact(url)}: {e}") from e
    try:
        yield Snapshot("postgres", _Checked(PgTx(pg), (psycopg.Error,)), pg)
    finally:
        pg.close()
