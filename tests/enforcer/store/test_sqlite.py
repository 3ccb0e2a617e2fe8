"""The SQLite store: WAL with the configured durability, versioned migrations, whole units of
work, append-only triggers, and the read-only connection of the verifier."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from enforcer.errors import InvalidArgumentError, StoreError
from enforcer.store import MIGRATIONS, SqliteStore, Tx, open_readonly
from enforcer.store.sqlite import _configure

KV = "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


def _insert(tx: Tx, seq: int) -> int:
    return tx.execute(
        "INSERT INTO ledger (seq, prev, leaf_hash, entry, ts, type) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, "0" * 64, f"{seq:064x}", b"{}", "2026-01-01T00:00:00.000000Z", "task.started"),
    )


@pytest.mark.parametrize(("durability", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_the_database_runs_in_wal_mode_with_the_configured_durability(
    tmp_path: Path, durability: Any, level: int
) -> None:
    store = await SqliteStore.open(tmp_path / "db", durability=durability)
    try:
        assert await store.read(lambda tx: tx.one("PRAGMA journal_mode")) == ("wal",)
        assert await store.read(lambda tx: tx.one("PRAGMA synchronous")) == (level,)
    finally:
        await store.close()


async def test_migrations_are_recorded_and_applied_once(tmp_path: Path) -> None:
    for _ in range(2):
        store = await SqliteStore.open(tmp_path / "db")
        versions = await store.read(lambda tx: tx.all("SELECT version FROM schema_version"))
        await store.close()
        assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db")
    await store.write(lambda tx: tx.execute("INSERT INTO schema_version VALUES (99)"))
    await store.close()
    with pytest.raises(StoreError):
        await SqliteStore.open(tmp_path / "db")


async def test_a_unit_of_work_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db")
    try:

        def half_then_fail(tx: Tx) -> None:
            _insert(tx, 0)
            raise InvalidArgumentError("refused halfway")

        with pytest.raises(InvalidArgumentError):
            await store.write(half_then_fail)
        assert await store.read(lambda tx: tx.one("SELECT count(*) FROM ledger")) == (0,)
        assert await store.write(lambda tx: _insert(tx, 0)) == 1
    finally:
        await store.close()


async def test_a_database_error_is_translated_to_store_error(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db")
    try:
        await store.write(lambda tx: _insert(tx, 0))
        with pytest.raises(StoreError) as caught:
            await store.write(lambda tx: _insert(tx, 0))  # duplicate seq
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "statement", ["UPDATE ledger SET entry = x'00'", "DELETE FROM ledger WHERE seq = 0"]
)
async def test_the_triggers_refuse_update_and_delete_through_the_store(
    tmp_path: Path, statement: str
) -> None:
    store = await SqliteStore.open(tmp_path / "db")
    try:
        await store.write(lambda tx: _insert(tx, 0))
        with pytest.raises(StoreError) as caught:
            await store.write(lambda tx: tx.execute(statement))
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
        row = await store.read(lambda tx: tx.one("SELECT entry FROM ledger WHERE seq = 0"))
        assert row == (b"{}",)
    finally:
        await store.close()


async def test_the_read_only_connection_cannot_write(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db")
    await store.write(lambda tx: _insert(tx, 0))
    await store.close()
    conn = open_readonly(tmp_path / "db")
    try:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO schema_version VALUES (50)")
    finally:
        conn.close()


def test_opening_a_missing_database_read_only_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        open_readonly(tmp_path / "nothing.db")


def test_opening_a_file_that_is_not_a_database_read_only_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not an SQLite database, not even close" * 100)
    with pytest.raises(StoreError):
        open_readonly(path)


async def test_writes_queued_behind_a_lock_share_a_transaction_and_a_failing_one_rolls_back_alone(
    tmp_path: Path,
) -> None:
    # While another connection holds the write lock, writes queue for the thread; once it is
    # free they commit together, each in its own savepoint.
    store = await SqliteStore.open(tmp_path / "g.db", migrations=[*MIGRATIONS, KV])
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:

        def put(n: int) -> Any:
            def unit(tx: Tx) -> int:
                tx.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (f"k{n}", n))
                if n % 7 == 0:
                    raise InvalidArgumentError(f"unit {n} refuses")
                return n

            return unit

        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
        before = store.commits
        results = await asyncio.gather(
            *(store.write(put(n)) for n in range(1, 50)), return_exceptions=True
        )
        for n, result in zip(range(1, 50), results, strict=True):
            if n % 7 == 0:
                assert isinstance(result, InvalidArgumentError)
            else:
                assert result == n
        rows = await store.read(lambda tx: tx.all("SELECT v FROM kv ORDER BY v"))
        assert [r[0] for r in rows] == [n for n in range(1, 50) if n % 7]
        assert store.commits - before <= 2  # grouped: one transaction (two if one slipped in)
    finally:
        other.close()
        await store.close()


async def test_a_sqlite_error_inside_one_grouped_unit_fails_only_that_unit(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "h.db", migrations=[*MIGRATIONS, KV])
    other = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
        good = store.write(lambda tx: tx.execute("INSERT INTO kv (k, v) VALUES ('a', 1)"))
        bad = store.write(lambda tx: tx.execute("INSERT INTO nowhere VALUES (1)"))
        ok, failed = await asyncio.gather(good, bad, return_exceptions=True)
        assert ok == 1
        assert isinstance(failed, StoreError)
        assert await store.read(lambda tx: tx.one("SELECT v FROM kv WHERE k = 'a'")) == (1,)
    finally:
        other.close()
        await store.close()


def test_switching_a_fresh_file_to_wal_waits_for_another_connections_lock(tmp_path: Path) -> None:
    # While another connection holds a write lock on a fresh file, SQLite answers the switch to
    # WAL with "database is locked" at once (no busy wait): configuring must retry, not fail.
    db = tmp_path / "fresh.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE held (a)")
    released = threading.Event()

    def release_soon() -> None:
        released.wait(timeout=5)
        holder.execute("COMMIT")

    thread = threading.Thread(target=release_soon)
    thread.start()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):  # what the plain PRAGMA does
            conn.execute("PRAGMA journal_mode = WAL")
        timer = threading.Timer(0.2, released.set)
        timer.start()
        _configure(conn, "FULL", 5000)  # retries until the holder commits
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        released.set()
        thread.join(timeout=5)
        conn.close()
        holder.close()


# --- the inline write path and the store's own WAL sync (FULL) ---------------------------------


async def _kv_store(tmp_path: Path, durability: Any = "FULL") -> SqliteStore:
    return await SqliteStore.open(
        tmp_path / "kv.db", durability=durability, migrations=[*MIGRATIONS, KV]
    )


def _put_kv(k: str, v: int) -> Any:
    return lambda tx: tx.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (k, v))


async def test_a_full_write_answers_only_after_the_wal_is_synced(tmp_path: Path) -> None:
    store = await _kv_store(tmp_path)
    events: list[str] = []
    real = store._fdatasync

    def sync(fd: int) -> None:
        events.append("sync")
        real(fd)

    store._fdatasync = sync
    try:
        for n in range(3):
            assert await store.write(_put_kv(f"k{n}", n)) == 1
            events.append("answered")
        assert events == ["sync", "answered"] * 3
        assert store.syncs == 3
    finally:
        await store.close()


async def test_normal_durability_never_syncs_the_wal_itself(tmp_path: Path) -> None:
    store = await _kv_store(tmp_path, "NORMAL")
    try:
        for n in range(3):
            await store.write(_put_kv(f"k{n}", n))
        assert store.syncs == 0 and store.commits == 3
    finally:
        await store.close()


async def test_concurrent_full_writes_share_one_sync(tmp_path: Path) -> None:
    store = await _kv_store(tmp_path)
    try:
        results = await asyncio.gather(*(store.write(_put_kv(f"k{n}", n)) for n in range(20)))
        assert results == [1] * 20
        assert 1 <= store.syncs < 20  # grouped: the writers that were runnable shared a sync
        rows = await store.read(lambda tx: tx.one("SELECT count(*) FROM kv"))
        assert rows == (20,)
    finally:
        await store.close()


async def test_nothing_in_the_process_reads_a_commit_before_it_is_synced(tmp_path: Path) -> None:
    store = await _kv_store(tmp_path)
    syncing, release = threading.Event(), threading.Event()
    real = store._fdatasync

    def slow_disk(fd: int) -> None:
        syncing.set()
        assert release.wait(timeout=30)
        real(fd)

    store._fdatasync = slow_disk
    try:
        writes = asyncio.gather(store.write(_put_kv("a", 1)), store.write(_put_kv("b", 2)))
        reader = asyncio.ensure_future(store.peek(lambda tx: tx.one("SELECT count(*) FROM kv")))
        # The shared sync is stuck on the disk (waited for off the loop, bounded) ...
        assert await asyncio.to_thread(syncing.wait, 30)
        # ... after both writes committed: another connection sees them, this process does not.
        other = sqlite3.connect(tmp_path / "kv.db")
        try:
            assert other.execute("SELECT count(*) FROM kv").fetchone() == (2,)
        finally:
            other.close()
        assert not reader.done() and not writes.done()
        release.set()
        assert await writes == [1, 1]
        assert await reader == (2,)
    finally:
        release.set()
        await store.close()


async def test_a_failed_sync_fails_the_write_and_every_later_call(tmp_path: Path) -> None:
    store = await _kv_store(tmp_path)

    def broken_disk(fd: int) -> None:
        raise OSError(5, "Input/output error")

    store._fdatasync = broken_disk
    try:
        with pytest.raises(StoreError, match="could not be made durable"):
            await store.write(_put_kv("a", 1))
        store._fdatasync = lambda fd: None  # even if the disk seems fine again
        with pytest.raises(StoreError, match="takes no more writes"):
            await store.write(_put_kv("b", 2))
        with pytest.raises(StoreError, match="could not be made durable"):
            await store.peek(lambda tx: tx.one("SELECT count(*) FROM kv"))
    finally:
        await store.close()


async def test_a_write_waits_off_the_loop_while_another_connection_holds_the_lock(
    tmp_path: Path,
) -> None:
    # The inline connection never waits (busy_timeout 0): a locked database sends the write to
    # the thread, whose busy timeout waits for the other writer while the loop keeps running.
    store = await _kv_store(tmp_path)
    other = sqlite3.connect(tmp_path / "kv.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO kv (k, v) VALUES ('other', 0)")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        assert await store.write(_put_kv("mine", 1)) == 1
        beat.cancel()
        assert ticks >= 10  # the loop was free while the write waited for the lock
        rows = await store.read(lambda tx: tx.all("SELECT k FROM kv ORDER BY k"))
        assert rows == [("mine",), ("other",)]
        assert await store.write(_put_kv("again", 2)) == 1  # and back on the inline path
    finally:
        other.close()
        await store.close()


async def test_the_wal_is_checkpointed_off_the_loop_and_then_reused(tmp_path: Path) -> None:
    # The inline writer never checkpoints inside its COMMIT (that would stall the event loop);
    # the store runs a checkpoint on the thread every so many commits, writes queue behind it,
    # and SQLite then writes the WAL from its start again instead of growing it.
    store = await _kv_store(tmp_path, "FULL")
    store.checkpoint_every = 20
    wal = tmp_path / "kv.db-wal"
    try:
        sizes = []
        for n in range(300):
            await store.write(_put_kv(f"k{n}", n))
            sizes.append(wal.stat().st_size)
        assert store.checkpoints >= 10
        assert max(sizes) < 100 * 4096  # reused: about 20 commits' worth, not 300
        assert await store.read(lambda tx: tx.one("SELECT count(*) FROM kv")) == (300,)
    finally:
        await store.close()
