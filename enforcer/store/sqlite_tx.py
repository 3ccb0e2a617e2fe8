"""The synchronous SQLite pieces under the store: a `Tx` over one connection, connection set-up
(WAL, durability), running a batch of units in one transaction, and read-only opening for the
offline verifier and the CLI."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import StorageFullError, StoreError
from .protocol import Row, Tx

if sys.platform != "win32":  # Windows has no flock: SQLite's own lock serialises writers
    import fcntl

__all__ = ["SqliteTx", "WriterLock", "open_readonly", "store_error"]

Durability = Literal["FULL", "NORMAL"]


class SqliteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


def store_error(error: sqlite3.Error) -> StoreError:
    """The StoreError for a sqlite3 error: StorageFullError when the disk or quota is full
    (SQLITE_FULL: SQLite rolled the statement back, nothing was written), else a plain one."""
    if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        full = StorageFullError(
            "no space left on the disk that holds the database: nothing was changed",
            hint="free space on that disk (or raise the quota), then retry the call",
            details={"cause": "storage_full"},
        )
        full.__cause__ = error
        return full
    wrapped = StoreError(f"database error: {error}")
    wrapped.__cause__ = error
    return wrapped


def _configure(conn: sqlite3.Connection, durability: Durability, busy_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    # Switching a fresh file to WAL needs a moment of exclusive access. When another process
    # holds a lock, SQLite answers at once — "database is locked", or the old mode — without
    # using the busy timeout. The mode is persistent, so retry until this or the other process
    # has switched it, within the busy timeout.
    deadline = time.monotonic() + max(busy_ms, 1000) / 1000
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode == "wal":
                break
            why = f"it stays {mode}"
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            why = str(e)
        if time.monotonic() >= deadline:
            raise StoreError(f"cannot switch the database to WAL ({why})")
        time.sleep(0.005)
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")


class WriterLock:
    """One writer at a time among the processes on a database: an `flock` on a file beside it,
    held from BEGIN IMMEDIATE to COMMIT.

    SQLite's own write lock makes a writer that finds it taken sleep and retry (its busy handler
    waits 1, 2, 5, 10 … 100 ms between tries), so eight agents' servers on one file queued
    behind each other's sleeps: p99 66–134 ms. A process waiting here is woken by the kernel
    the moment the holder lets go. The lock is released by the kernel when its holder dies, so a
    killed process never leaves it taken; where `fcntl` is missing (Windows) it does nothing and
    SQLite's lock alone serialises writers, as before.

        lock = WriterLock(Path("state/phasegate.db-writer"))
        if lock.try_acquire(): ...            # the loop: never blocks
        lock.acquire(); ...; lock.release()   # a worker thread: waits its turn
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)

    def try_acquire(self) -> bool:
        if sys.platform == "win32":
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self) -> None:
        if sys.platform != "win32":
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if sys.platform != "win32":
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def _commit_batch(
    conn: sqlite3.Connection, units: list[Callable[[Tx], Any]], lock: WriterLock | None = None
) -> list[tuple[bool, Any]]:
    """Run units in one transaction, each in a savepoint; (True, result) or (False, error).
    With `lock`, waits for it first (on the store's thread) and holds it until COMMIT."""
    if lock is not None:
        lock.acquire()
    try:
        conn.execute("BEGIN IMMEDIATE")
        return _run_and_commit(conn, units)
    finally:
        if lock is not None:
            lock.release()


def _run_and_commit(
    conn: sqlite3.Connection, units: list[Callable[[Tx], Any]]
) -> list[tuple[bool, Any]]:
    """The body of `_commit_batch`, once BEGIN IMMEDIATE has succeeded.

    A batch of one needs no savepoint: its failure rolls the whole transaction back."""
    outcomes: list[tuple[bool, Any]] = []
    tx = SqliteTx(conn)
    alone = len(units) == 1
    try:
        for unit in units:
            if not alone:
                conn.execute("SAVEPOINT unit")
            try:
                outcomes.append((True, unit(tx)))
            except Exception as e:
                conn.execute("ROLLBACK" if alone else "ROLLBACK TO unit")
                if isinstance(e, sqlite3.Error):
                    e = store_error(e)
                outcomes.append((False, e))
            if not alone:
                conn.execute("RELEASE unit")
        if conn.in_transaction:
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


def open_readonly(path: Path) -> sqlite3.Connection:
    """A synchronous read-only connection for the offline verifier and the CLI."""
    if not path.is_file():
        raise StoreError(f"no database at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise StoreError(f"cannot read the database {path}: {e}") from e
    return conn
