"""The SQLite store, the embedded default: one file in WAL mode.

The store runs a unit of work whole inside one ``BEGIN IMMEDIATE`` transaction (or one read
snapshot), so a domain operation — check the lease, check the gate, append to the ledger, update
the projection — costs one commit, usually inline on the event loop's connection.

    store = await SqliteStore.open(state_dir / "phasegate.db", durability="FULL")
    head = await store.write(lambda tx: tx.one("SELECT count(*) FROM ledger"))
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from ..errors import PhasegateError, StorageFullError, StoreError
from .migrations import MIGRATIONS, MigrationLike, migrate
from .protocol import Row, Tx
from .sqlite_tx import (
    Durability,
    SqliteTx,
    WriterLock,
    _commit_batch,
    _configure,
    _is_busy,
    _run_and_commit,
    open_readonly,
    store_error,
)

__all__ = ["Durability", "SqliteStore", "SqliteTx", "open_readonly"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


_DAMAGED = (
    "check that the file is a phasegate database you may read and write; if it is damaged,"
    " restore the state directory from a backup (`phasegate verify` says what is wrong)"
)

# SQLite checkpoints after 1,000 WAL pages by default; a write adds 4-10 pages, so this is about
# that. At every hundred commits, the write that waits behind a checkpoint showed in the p99.
CHECKPOINT_EVERY_COMMITS = 250


class SqliteStore:
    """The embedded default: one SQLite file in WAL mode.

    Writes take the shortest safe path. When nothing is queued, a unit of work runs inline on the
    event loop's own connection (``busy_timeout = 0``): no thread hop, and the loop blocks only
    for the few hundred microseconds the unit takes. If the database is locked — another
    process, or a batch of ours on the thread — it joins the queue instead, and the queue runs on
    aiosqlite's thread with a real busy timeout, grouping whatever arrived meanwhile into one
    transaction.

    FULL durability, inline: the inline connection commits at ``synchronous = NORMAL`` and the
    store then fdatasyncs the WAL file itself before it returns the caller's result — what FULL
    does inside COMMIT, with two gains. Writers that are already runnable commit before the sync
    starts, so one fdatasync covers them all (group commit without a thread); and while a sync
    that others wait on runs on a worker thread, the loop goes on forming the next group. No
    caller is answered before its commit is on disk, and `read`/`peek` wait for any pending sync,
    so nothing in this process observes a commit that could still be lost. (Another process
    sharing the file can, for the ~0.2 ms of a sync; it cannot be told "committed" either.) If an
    fdatasync fails, the store refuses every later write: after a failed sync the page cache no
    longer says what is on disk, and retrying would hide the loss.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        path: Path,
        durability: Durability,
        lock: WriterLock,
    ) -> None:
        self._conn = conn
        # Writers of every process on this file take it from BEGIN IMMEDIATE to COMMIT, so
        # they queue in the kernel, woken at once, instead of in SQLite's sleeping busy handler.
        self._lock = lock
        self._writer = writer
        # Point lookups run on this second, read-only connection, inline on the event loop's
        # thread: in WAL mode a reader never waits for the writer, and a few indexed reads
        # (~30 µs) cost less than the hop to the writer's thread and back.
        self._reader = reader
        self.path = path
        self.durability = durability
        self._pending: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Future[None] | None = None
        self._committed = 0  # inline commits so far, in order; `_synced` says how many are on disk
        self._synced = 0
        self._syncing: asyncio.Future[None] | None = None
        self._sync_waiters = 0
        self._wal_fd: int | None = None
        self._wal_lock = threading.Lock()  # a cancelled sync may still run while the next starts
        self._failed: OSError | None = None
        self._fdatasync: Callable[[int], None] = os.fdatasync  # tests inject a failing disk here
        self.commits = 0  # write transactions committed (fewer than writes under load)
        self.syncs = 0  # WAL fdatasyncs issued by the store (FULL, inline path)
        self.checkpoints = 0  # WAL checkpoints run on the thread for the inline writer
        self.checkpoint_every = CHECKPOINT_EVERY_COMMITS
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        durability: Durability = "FULL",
        busy_timeout_ms: int = 10_000,
        migrations: Sequence[MigrationLike] | None = None,
    ) -> SqliteStore:
        """Open (creating if needed) and migrate the database at `path`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the database {path}: {e}", hint=_DAMAGED) from e
        opened: list[sqlite3.Connection] = []
        try:
            await conn._execute(  # type: ignore[no-untyped-call]
                _configure, conn._conn, durability, busy_timeout_ms
            )
            await conn._execute(  # type: ignore[no-untyped-call]
                migrate, conn._conn, MIGRATIONS if migrations is None else migrations
            )
            writer = sqlite3.connect(path, isolation_level=None)
            opened.append(writer)
            writer.execute("PRAGMA busy_timeout = 0")  # never wait on the loop: queue instead
            writer.execute("PRAGMA synchronous = NORMAL")  # FULL is done by `_durable`, see above
            writer.execute("PRAGMA foreign_keys = ON")
            # A checkpoint copies the WAL into the database and syncs both: milliseconds. Run
            # inside an inline COMMIT it would stall the loop, so this connection never runs
            # one; `_maybe_checkpoint` hands it to the thread instead.
            writer.execute("PRAGMA wal_autocheckpoint = 0")
            reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            opened.append(reader)
            reader.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            reader.execute("PRAGMA query_only = ON")
        except BaseException as e:
            await conn.close()
            for c in opened:
                c.close()
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot open the database {path}: {e}", hint=_DAMAGED) from e
            raise
        return cls(conn, writer, reader, path, durability, WriterLock(_lock_path(path)))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # aiosqlite runs `fn(conn, ...)` on its own thread: the whole unit of work is one hop.
        def call() -> T:
            return fn(self._conn._conn, *args)

        try:
            result: T = await self._conn._execute(call)  # type: ignore[no-untyped-call]
            return result
        except PhasegateError:
            raise
        except sqlite3.Error as e:
            raise store_error(e) from e

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` in one write transaction and return its result once the commit is durable."""
        if self._failed is not None:
            raise self._refuse_after_failed_sync()
        if (
            not self._pending
            and self._drainer is None
            and self._checkpointing is None
            and self._lock.try_acquire()  # no other process is writing: go inline
        ):
            try:
                outcome = self._inline(fn)
            finally:
                self._lock.release()  # before the sync: the next writer's commit overlaps it
            if outcome is not None:
                ok, value = outcome
                if not ok:
                    raise value
                self.commits += 1
                self._committed += 1
                await self._durable(self._committed)
                self._maybe_checkpoint()
                return cast(T, value)
        return await self._enqueue(fn)

    def _inline(self, fn: Callable[[Tx], Any]) -> tuple[bool, Any] | None:
        """Run `fn` on the loop's connection: (ok, result or error), or None when SQLite's lock
        is taken anyway (a writer that does not take ours): then it queues."""
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if _is_busy(e):
                return None
            raise store_error(e) from e
        try:
            ((ok, value),) = _run_and_commit(self._writer, [fn])
        except sqlite3.Error as e:
            raise store_error(e) from e
        return ok, value

    async def _enqueue(self, fn: Callable[[Tx], T]) -> T:
        """Group commit on the thread: writes that arrive while a batch is committing share the
        next transaction — one fsync for all — each in its own SAVEPOINT, so a unit that raises
        is rolled back alone and the others commit. That connection runs at the configured
        synchronous level, so its COMMIT is durable — and so is every inline commit before it."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        result: T = await future
        return result

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await self._run(_commit_batch, [fn for fn, _ in batch], self._lock)
                    self.commits += 1
                    self._synced = self._committed  # the thread's COMMIT synced the WAL
                except BaseException as e:  # the batch never committed: every unit fails
                    outcomes = [(False, e)] * len(batch)
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._drainer = None

    def _maybe_checkpoint(self) -> None:
        """Every `checkpoint_every` inline commits, checkpoint the WAL on the thread.

        Writes that arrive meanwhile queue behind it on the thread instead of committing
        inline, so the checkpoint completes (a PASSIVE checkpoint racing new commits never
        catches up, and the WAL would grow without end); the next commit then reuses the WAL
        from its start — which also keeps syncs cheaper than appending to a growing file."""
        self._since_checkpoint += 1
        if self._checkpointing is not None or self._since_checkpoint < self.checkpoint_every:
            return
        self._since_checkpoint = 0

        async def checkpoint() -> None:
            try:
                await self._run(
                    lambda conn: conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                )
                self.checkpoints += 1
            except Exception as e:  # the next round tries again; the WAL stays correct
                logger.warning("WAL checkpoint failed: %s", e)
            finally:
                self._checkpointing = None

        self._checkpointing = asyncio.ensure_future(checkpoint())

    async def _durable(self, commit: int) -> None:
        """Return once inline commit number `commit` is on disk (FULL); at once under NORMAL."""
        if self.durability != "FULL":
            return
        while self._synced < commit:
            if self._failed is not None:
                raise self._refuse_after_failed_sync()
            if self._syncing is not None:
                self._sync_waiters += 1
                try:
                    await asyncio.shield(self._syncing)
                finally:
                    self._sync_waiters -= 1
                continue
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            self._syncing = done
            try:
                if _others_runnable(loop):
                    # Let writers that are already runnable commit first: this sync covers them.
                    await asyncio.sleep(0)
                target = self._committed
                if self._sync_waiters:  # others wait: sync off the loop, which forms the next group
                    await loop.run_in_executor(None, self._sync_wal)
                else:  # alone: the cheapest path is to sync right here
                    self._sync_wal()
                self._synced = max(self._synced, target)
            finally:
                self._syncing = None
                done.set_result(None)

    def _sync_wal(self) -> None:
        with self._wal_lock:
            try:
                wal = f"{self.path}-wal"
                if self._wal_fd is not None and not _same_file(self._wal_fd, wal):
                    os.close(self._wal_fd)  # replaced underneath us: sync the file SQLite writes
                    self._wal_fd = None
                if self._wal_fd is None:
                    self._wal_fd = os.open(wal, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                self._fdatasync(self._wal_fd)
                self.syncs += 1
            except OSError as e:
                self._failed = e
                logger.critical(
                    "fdatasync of %s-wal failed; refusing further writes: %s", self.path, e
                )
                raise self._refuse_after_failed_sync() from e

    def _refuse_after_failed_sync(self) -> StoreError:
        if getattr(self._failed, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return StorageFullError(
                f"the disk filled up while syncing the database (fdatasync: {self._failed});"
                " recent commits may be lost, so this server takes no more writes",
                hint="free space on that disk, then restart the server and run `phasegate verify`",
                details={"cause": "storage_full"},
            )
        return StoreError(
            f"the database could not be made durable (fdatasync failed: {self._failed}); recent"
            " commits may be lost, so this server takes no more writes: check the disk, then"
            " restart it and run `phasegate verify`"
        )

    async def _settled(self) -> None:
        """Wait for a pending sync, so a read never shows a commit that is not yet durable.

        After a failed sync nothing read here can be trusted to be on disk: reads fail too."""
        if self._synced < self._committed:
            await self._durable(self._committed)

    async def read(self, fn: Callable[[Tx], T]) -> T:
        def unit(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(SqliteTx(conn))
            finally:
                conn.execute("ROLLBACK")

        await self._settled()
        return await self._run(unit)

    async def peek(self, fn: Callable[[Tx], T]) -> T:
        await self._settled()
        conn = self._reader
        try:
            conn.execute("BEGIN")
            try:
                return fn(SqliteTx(conn))
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            raise store_error(e) from e

    async def peek_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        await self._settled()
        try:
            row = self._reader.execute(sql, params).fetchone()
        except sqlite3.Error as e:
            raise store_error(e) from e
        return None if row is None else tuple(row)

    async def data_version(self) -> object:
        """SQLite's ``data_version`` on the read connection: it changes whenever another
        connection — this process's writer, or another process — commits."""
        row = await self.peek_one("PRAGMA data_version")
        return None if row is None else row[0]

    async def locked(self, name: str, fn: Callable[[Tx], T]) -> T:
        """A read snapshot. SQLite serves one machine, and its processes sign checkpoints each
        on their own, as they always have: a signature is deterministic and a checkpoint file
        is written atomically, so two processes signing one size write the same bytes."""
        return await self.read(fn)

    async def close(self) -> None:
        try:
            if self._checkpointing is not None:
                await asyncio.shield(self._checkpointing)
            if self._failed is None:
                await self._settled()
        finally:
            with self._wal_lock:
                if self._wal_fd is not None:
                    os.close(self._wal_fd)
                    self._wal_fd = None
            self._reader.close()
            self._writer.close()
            await self._conn.close()
            self._lock.close()


def _lock_path(db: Path) -> Path:
    """The writer lock beside the database (SQLite's own files are -wal and -shm)."""
    return db.with_name(db.name + "-writer")


def _others_runnable(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether other callbacks wait to run on `loop` — a writer among them could share a sync.

    Reads asyncio's ready queue (`_ready`, stable across CPython's selector and proactor loops);
    on a loop without one (uvloop), assume yes: yielding once is always correct, only slower.
    Skipping the yield when nothing is runnable saves a loop iteration (~40 µs) per write.
    """
    ready = getattr(loop, "_ready", None)
    return ready is None or len(ready) > 0


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
