"""What only the PostgreSQL store does: SQL translation, the advisory locks that serialise
writes and checkpoint signing across servers, migrations from servers starting together, and
reconnecting after a lost connection. The behaviour both stores share is in test_contract.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from enforcer.errors import InvalidArgumentError, StoreError
from enforcer.ledger.entries import append_entry
from enforcer.runtime import MIGRATIONS
from enforcer.store import Migration, Tx
from enforcer.store.migrations import statements
from enforcer.store.postgres import PostgresStore
from enforcer.store.postgres_tx import redact, translate


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll `predicate` (off the loop's thread) until it holds, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def advisory_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return int(row[0]) if row else 0


def test_the_domain_sql_is_translated_and_sqlite_only_forms_are_refused() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c = '?%'") == (
        "SELECT a FROM t WHERE b = %s AND c = '?%%'"
    )
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?);") == (
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    )
    for sql in ("PRAGMA data_version", "INSERT OR REPLACE INTO t VALUES (?)"):
        with pytest.raises(StoreError):
            translate(sql)


def test_portable_ddl_gets_postgres_types_and_a_portable_trigger_is_refused() -> None:
    ddl = statements("CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB, c TEXT);", "postgres")
    assert ddl == ["CREATE TABLE t (a BIGINT PRIMARY KEY, b BYTEA, c TEXT);"]
    assert statements(Migration("CREATE TABLE t (a INTEGER);", postgres=("X",)), "sqlite") == [
        "CREATE TABLE t (a INTEGER);"
    ]
    with pytest.raises(StoreError):
        statements("CREATE TRIGGER x BEFORE DELETE ON t BEGIN SELECT 1; END;", "postgres")


def test_a_password_never_appears_in_a_message() -> None:
    assert redact("postgresql://pg:s3cret@db:5432/x") == "postgresql://pg:***@db:5432/x"
    assert redact("postgresql://pg@db/x") == "postgresql://pg@db/x"


async def test_servers_starting_together_on_a_fresh_database_migrate_it_once(pg_url: str) -> None:
    stores = await asyncio.gather(
        *(PostgresStore.open(pg_url, migrations=MIGRATIONS) for _ in range(4))
    )
    try:
        rows = await stores[0].read(lambda tx: tx.all("SELECT version FROM schema_version"))
        assert [v for (v,) in rows] == list(range(1, len(MIGRATIONS) + 1))
        with pytest.raises(StoreError):
            await stores[1].write(lambda tx: tx.execute("TRUNCATE ledger"))
    finally:
        for store in stores:
            await store.close()


Hold = Callable[[PostgresStore, Callable[[Tx], str]], Awaitable[str]]


async def _exclusion(url: str, hold: Hold) -> None:
    """Store A holds a lock inside a unit; store B's unit must wait in PostgreSQL until A ends."""
    a = await PostgresStore.open(url, migrations=MIGRATIONS)
    b = await PostgresStore.open(url, migrations=MIGRATIONS)
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def first(tx: Tx) -> str:
        order.append("a in")
        inside.set()
        assert release.wait(10)
        order.append("a out")
        return "a"

    def second(tx: Tx) -> str:
        order.append("b in")
        return "b"

    try:
        task_a = asyncio.ensure_future(hold(a, first))
        await wait_for(inside.is_set, "store A inside its unit")
        task_b = asyncio.ensure_future(hold(b, second))
        await wait_for(lambda: advisory_waiters(url) == 1, "store B waiting for the lock")
        assert order == ["a in"]
        release.set()
        assert await asyncio.gather(task_a, task_b) == ["a", "b"]
        assert order == ["a in", "a out", "b in"]
    finally:
        release.set()
        await a.close()
        await b.close()


async def test_writes_from_two_servers_are_serialised_on_the_chain_lock(pg_url: str) -> None:
    await _exclusion(pg_url, lambda store, fn: store.write(fn))


async def test_one_server_at_a_time_holds_the_checkpoint_lock(pg_url: str) -> None:
    await _exclusion(pg_url, lambda store, fn: store.locked("checkpoint", fn))


async def test_the_writer_reconnects_after_its_connection_is_lost(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url, migrations=MIGRATIONS)
    try:
        pid = store._writer.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The write that finds the connection gone fails (its outcome is known: nothing ran)...
        with pytest.raises(StoreError):
            await store.write(lambda tx: tx.one("SELECT 1"))
        # ...and the next one reconnects.
        assert await store.write(lambda tx: tx.one("SELECT 1")) == (1,)
        assert store._writer.info.backend_pid != pid
    finally:
        await store.close()


def test_an_unreachable_server_is_a_store_error_naming_no_password(tmp_path: Path) -> None:
    url = f"postgresql://pg:s3cret@/x?host={tmp_path}&port=1"

    async def open_it() -> None:
        await PostgresStore.open(url, migrations=MIGRATIONS)

    with pytest.raises(StoreError) as caught:
        asyncio.run(open_it())
    assert "s3cret" not in caught.value.message


async def test_appends_batched_in_one_transaction_follow_the_head_past_a_failed_unit(
    pg_url: str,
) -> None:
    """The store reads the chain head with its lock and follows the batch's appends; a unit
    rolled back to its savepoint takes its append with it, and the next one links to the last
    that stayed."""
    store = await PostgresStore.open(pg_url, migrations=MIGRATIONS)
    ts = "2026-01-01T00:00:00.000000Z"

    def ok(tx: Tx) -> int:
        return append_entry(tx, ts=ts, actor="a", type="test.kept").seq

    def bad(tx: Tx) -> int:
        append_entry(tx, ts=ts, actor="a", type="test.undone")
        raise InvalidArgumentError("refused after its append")

    try:
        for _ in range(2):
            outcomes = await asyncio.gather(
                store.write(ok), store.write(bad), store.write(ok), return_exceptions=True
            )
            assert [type(o) for o in outcomes] == [int, InvalidArgumentError, int]
        assert store.commits == 2  # each round was one transaction
        rows = await store.read(
            lambda tx: tx.all("SELECT seq, prev, leaf_hash, type FROM ledger ORDER BY seq")
        )
        assert [r[0] for r in rows] == [0, 1, 2, 3] and {r[3] for r in rows} == {"test.kept"}
        assert all(b[1] == a[2] for a, b in zip(rows, rows[1:], strict=False))
    finally:
        await store.close()


async def test_a_pipelined_statement_that_fails_fails_its_own_unit_only(pg_url: str) -> None:
    """`Tx.run` statements travel with the next one; a failing one still fails the unit that
    sent it — alone or in a batch — and nothing of that unit commits."""
    store = await PostgresStore.open(pg_url, migrations=MIGRATIONS)
    ts = "2026-01-01T00:00:00.000000Z"

    def kept(tx: Tx) -> int:
        return append_entry(tx, ts=ts, actor="a", type="test.kept").seq

    def clash(tx: Tx) -> str:
        append_entry(tx, ts=ts, actor="a", type="test.undone")
        tx.run("INSERT INTO counters (name, value) VALUES ('c', 1)")
        tx.run("INSERT INTO counters (name, value) VALUES ('c', 1)")  # a duplicate key
        return "answered, though its write failed"

    try:
        with pytest.raises(StoreError):
            await store.write(clash)  # alone: the error surfaces when it commits
        outcomes = await asyncio.gather(
            store.write(kept), store.write(clash), store.write(kept), return_exceptions=True
        )
        assert [type(o) for o in outcomes] == [int, StoreError, int]
        rows = await store.read(lambda tx: tx.all("SELECT seq, type FROM ledger ORDER BY seq"))
        assert rows == [(0, "test.kept"), (1, "test.kept")]
        assert await store.peek_one("SELECT count(*) FROM counters") == (0,)
    finally:
        await store.close()
