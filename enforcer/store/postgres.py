"""The PostgreSQL store: several phasegate servers over one database.

Driver: psycopg 3, its synchronous API on worker threads. The domain's units of work are
synchronous functions of a `Tx`, run whole inside one transaction; a thread with a blocking
connection runs such a unit unchanged, in one hop from the event loop, where an async driver
would need every statement of every unit awaited (and the `Tx` interface made async).

Writes: one writer connection per server, on its own thread. Writes that arrive while a batch
commits form the next batch — one transaction, each unit in a savepoint, one WAL flush for all
(group commit, as the SQLite store does). Every write transaction first takes one advisory
transaction lock, the chain lock, before it reads anything: writes from all servers are
serialised, so the lease a unit checks, the controls it reads and the chain head it appends
after are what it commits over; ``seq`` (primary key) and ``prev`` (unique) make the database
itself refuse a fork. PostgreSQL releases the lock at COMMIT or ROLLBACK, also when a server
dies mid-transaction.

Reads: a pool of connections (psycopg_pool) on a thread pool; `read` and `peek` run in one
REPEATABLE READ, READ ONLY snapshot, `peek_one` is one statement.

Durability: FULL is PostgreSQL's ``synchronous_commit = on`` (a commit is flushed before it is
visible or answered); NORMAL sets it ``off`` on the writer (a database crash may lose the last
moments of commits, never their order).

    store = await PostgresStore.open("postgresql://phasegate@db/phasegate")
    await store.write(lambda tx: tx.one("SELECT count(*) FROM ledger"))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import PhasegateError, StoreError
from .migrations import MIGRATIONS, MigrationLike
from .postgres_tx import (
    PgTx,
    commit_batch,
    connect,
    current_schema,
    lock_key,
    migrate_postgres,
    redact,
)
from .protocol import Row, Tx
from .sqlite_tx import Durability

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A batch holds the chain lock, which every server waits for: keep it short.
MAX_BATCH = 64
READERS = 6


class PostgresStore:
    """The `Store` on PostgreSQL; see the module docstring."""

    def __init__(
        self,
        url: str,
        writer: psycopg.Connection[Any],
        pool: ConnectionPool,
        schema: str,
        durability: Durability,
        write_thread: ThreadPoolExecutor,
        read_threads: ThreadPoolExecutor,
    ) -> None:
        self.url = url
        self.schema = schema
        self.durability = durability
        self._writer = writer
        self._pool = pool
        self._write_thread = write_thread
        self._read_threads = read_threads
        self._chain_lock = lock_key(schema, "chain")
        self._pending: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Future[None] | None = None
        self._closed = False
        self.commits = 0  # write transactions committed (fewer than writes under load)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        durability: Durability = "FULL",
        migrations: Sequence[MigrationLike] | None = None,
        readers: int = READERS,
    ) -> PostgresStore:
        """Connect, and migrate the database at `url` (under an advisory lock)."""
        loop = asyncio.get_running_loop()
        write_thread = ThreadPoolExecutor(1, thread_name_prefix="phasegate-pg-writer")
        read_threads = ThreadPoolExecutor(readers, thread_name_prefix="phasegate-pg-reader")

        def prepare() -> tuple[psycopg.Connection[Any], str]:
            conn = connect(url, synchronous_commit=durability == "FULL")
            try:
                schema = current_schema(conn)
                migrate_postgres(
                    conn,
                    MIGRATIONS if migrations is None else migrations,
                    lock_key(schema, "migrate"),
                )
            except BaseException:
                conn.close()
                raise
            return conn, schema

        pool: ConnectionPool | None = None
        writer: psycopg.Connection[Any] | None = None
        try:
            writer, schema = await loop.run_in_executor(write_thread, _translated(prepare))
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=readers,
                kwargs={"autocommit": True, "application_name": "phasegate", "connect_timeout": 10},
                open=False,
                name="phasegate-readers",
            )
            opening = pool
            await loop.run_in_executor(read_threads, lambda: opening.open(wait=True, timeout=30))
        except BaseException as e:
            if pool is not None:
                pool.close()
            if writer is not None:
                writer.close()
            write_thread.shutdown(wait=False)
            read_threads.shutdown(wait=False)
            if isinstance(e, PoolTimeout):
                raise StoreError(f"cannot connect to PostgreSQL at {redact(url)}: {e}") from e
            raise
        assert writer is not None  # set, or the except above raised
        return cls(url, writer, pool, schema, durability, write_thread, read_threads)

    # ---------------------------------------------------------------- writes

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` in one write transaction under the chain lock; returns once committed."""
        if self._closed:
            raise StoreError("the store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        result: T = await future
        return result

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                units = [fn for fn, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(self._write_thread, self._commit, units)
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

    def _commit(self, units: list[Callable[[Tx], Any]]) -> list[tuple[bool, Any]]:
        """On the writer thread: reconnect after a lost connection, then commit the batch."""
        if self._writer.closed or self._writer.broken:
            logger.warning("the PostgreSQL writer connection was lost; reconnecting")
            self._writer = connect(self.url, synchronous_commit=self.durability == "FULL")
        try:
            outcomes = commit_batch(self._writer, self._chain_lock, units)
        except psycopg.Error as e:
            raise StoreError(f"database error: {e}") from e
        if any(ok for ok, _ in outcomes) or len(units) > 1:
            self.commits += 1
        return outcomes

    # ---------------------------------------------------------------- reads

    async def _on_reader(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")

        def run() -> T:
            with self._pool.connection(timeout=30) as conn:
                return fn(conn)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_threads, _translated(run))

    async def read(self, fn: Callable[[Tx], T]) -> T:
        def unit(conn: psycopg.Connection[Any]) -> T:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return fn(PgTx(conn))
            finally:
                conn.execute("ROLLBACK")

        return await self._on_reader(unit)

    async def peek(self, fn: Callable[[Tx], T]) -> T:
        return await self.read(fn)

    async def peek_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._on_reader(lambda conn: PgTx(conn).one(sql, params))

    async def data_version(self) -> object:
        """The ledger's head: every state change is a ledger entry, committed with it."""
        row = await self.peek_one("SELECT max(seq) FROM ledger")
        return None if row is None else row[0]

    async def locked(self, name: str, fn: Callable[[Tx], T]) -> T:
        """`fn` under the advisory transaction lock `name`, taken before its first read."""
        key = lock_key(self.schema, name)

        def unit(conn: psycopg.Connection[Any]) -> T:
            conn.execute(f"BEGIN READ ONLY; SELECT pg_advisory_xact_lock({int(key)})")
            try:
                return fn(PgTx(conn))
            finally:
                conn.execute("ROLLBACK")

        return await self._on_reader(unit)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._drainer is not None:
                await asyncio.shield(self._drainer)
        finally:
            loop = asyncio.get_running_loop()
            writer = self._writer
            await loop.run_in_executor(self._write_thread, writer.close)
            await loop.run_in_executor(self._read_threads, self._pool.close)
            self._write_thread.shutdown(wait=True)
            self._read_threads.shutdown(wait=True)


def _translated(fn: Callable[[], T]) -> Callable[[], T]:
    """`fn` with psycopg's errors raised as StoreError (the domain's own errors pass)."""

    def run() -> T:
        try:
            return fn()
        except PhasegateError:
            raise
        except psycopg.Error as e:
            raise StoreError(f"database error: {e}") from e
        except PoolTimeout as e:
            raise StoreError(f"no PostgreSQL connection available: {e}") from e

    return run
