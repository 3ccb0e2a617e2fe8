"""The writer lock beside the database (store/sqlite_tx.py, WriterLock): the writers of every
process take it from BEGIN IMMEDIATE to COMMIT, so a writer that finds it held waits in the
kernel and is woken the moment it is let go — never in SQLite's sleeping busy handler — and a
holder that is killed lets it go with its death. Real processes, a real file."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

from ledger_kit import children, python

from enforcer.store import SqliteStore

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()  # until told to let go (or killed)
fcntl.flock(fd, fcntl.LOCK_UN)
print("released", flush=True)
"""

CREATE = "CREATE TABLE t (n INTEGER NOT NULL)"


async def test_the_lock_file_sits_beside_the_database_for_its_owner_only(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "phasegate.db", migrations=[CREATE])
    try:
        lock = tmp_path / "phasegate.db-writer"
        assert lock.is_file() and stat.S_IMODE(lock.stat().st_mode) == 0o600
    finally:
        await store.close()


async def test_a_write_waits_for_another_processs_lock_and_goes_as_soon_as_it_is_released(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "phasegate.db", migrations=[CREATE])
    try:
        with children() as started:
            holder = python(HOLDER, str(tmp_path / "phasegate.db-writer"), cwd=tmp_path)
            started.append(holder)
            assert holder.line() == "held"
            write = asyncio.ensure_future(
                store.write(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))
            )
            done, _ = await asyncio.wait([write], timeout=0.5)
            assert not done, "the write went ahead while another process held the lock"
            released_at = time.monotonic()
            holder.release()
            assert holder.line() == "released"
            await asyncio.wait_for(write, timeout=10)
            # Woken by the kernel: no busy handler's back-off (10-100 ms steps) in between.
            assert time.monotonic() - released_at < 5
        row = await store.read(lambda tx: tx.one("SELECT count(*) FROM t"))
        assert row == (1,)
    finally:
        await store.close()


async def test_a_holder_that_is_killed_lets_the_lock_go(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "phasegate.db", migrations=[CREATE])
    try:
        with children() as started:
            holder = python(HOLDER, str(tmp_path / "phasegate.db-writer"), cwd=tmp_path)
            started.append(holder)
            assert holder.line() == "held"
            write = asyncio.ensure_future(
                store.write(lambda tx: tx.execute("INSERT INTO t VALUES (2)"))
            )
            done, _ = await asyncio.wait([write], timeout=0.3)
            assert not done
            os.kill(holder.proc.pid, 9)
            await asyncio.wait_for(write, timeout=10)
        assert await store.read(lambda tx: tx.one("SELECT n FROM t")) == (2,)
    finally:
        await store.close()
