"""Evidence bytes and files (process/evidence_bytes.py, evidence_files.py): the bytes of a new
blob are held by the transaction that records them, so a refused write leaves nothing and a
recorded digest always has its bytes — in the database until its file is synced, on disk
after. Files are written once the record commits and synced in the background; a server
stopped before that leaves rows that the next one writes out."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from phasegate_testkit import ALICE, BOB, enforcer_at, files_under

from enforcer.integrity import check_integrity
from enforcer.paths import StatePaths
from enforcer.process.evidence_files import EvidenceFiles

STRATEGY = "# Problem\nx\n\n# Objectives\n- y\n"
SHA = hashlib.sha256(STRATEGY.encode()).hexdigest()


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Bounded polling of a condition (never a fixed sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.005)


def held(state: Path) -> list[str]:
    """Digests whose bytes the database still holds."""
    conn = sqlite3.connect(state / "phasegate.db")
    try:
        return [r[0] for r in conn.execute("SELECT sha256 FROM evidence_bytes ORDER BY sha256")]
    finally:
        conn.close()


def test_a_blob_is_named_by_its_digest_and_written_whole(tmp_path: Path) -> None:
    files = EvidenceFiles(StatePaths(tmp_path))
    sha = hashlib.sha256(b"kept").hexdigest()
    path = files.write_blob(sha, b"kept", sync=True)
    assert path == files.blob_path(sha) and files.read_blob(sha) == b"kept"
    path.write_bytes(b"ke")  # cut short, as a power loss before its sync can leave it
    with pytest.raises(Exception, match="corrupt"):
        files.read_blob(sha)
    files.write_blob(sha, b"kept")  # made whole again from the bytes
    assert files.read_blob(sha) == b"kept"
    assert files_under(tmp_path / "blobs" / "staging") == []


async def test_a_recorded_blob_is_on_disk_at_once_and_its_row_goes_once_synced(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        rec = await e.evidence_put(ALICE, "T1", "strategy.md", STRATEGY)
        assert rec.sha256 == SHA
        assert e.files.read_blob(SHA) == STRATEGY.encode()  # written, not yet synced
        assert held(tmp_path) == [SHA]  # so the database still holds the bytes
        assert await e.flush_evidence() == 1
        assert held(tmp_path) == []
        again = await e.evidence_put(ALICE, "T1", "strategy.md", STRATEGY)
        assert again.sha256 == SHA and held(tmp_path) == []  # on disk already: nothing held
    assert check_integrity(tmp_path).blobs_checked == 2


async def test_a_refused_write_holds_no_bytes_and_writes_no_file(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        with pytest.raises(Exception, match="leased to"):
            await e.evidence_put(BOB, "T1", "strategy.md", STRATEGY)
        assert held(tmp_path) == []
        assert files_under(tmp_path / "blobs") == []
        assert not (tmp_path / "evidence" / "T1" / "STRATEGIZE").exists()


async def test_bytes_left_in_the_database_by_a_stopped_server_are_written_out_at_start(
    tmp_path: Path,
) -> None:
    """A server stopped between the commit and its files: the bytes are read from their row,
    the blob and the readable copy written and synced, and the row deleted."""
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.evidence_put(ALICE, "T1", "strategy.md", STRATEGY)
        os.unlink(e.files.blob_path(SHA))
        os.unlink(e.files.named_path("T1", "STRATEGIZE", "strategy.md"))
        e.evidence.bytes._mine.clear()  # stopped before its flush: it never syncs them
        e.evidence.bytes._copies.clear()
        # Until then, reads and the integrity check find the bytes in the database.
        _, data = await e.evidence_read("T1", "STRATEGIZE", "strategy.md")
        assert data == STRATEGY.encode()
    assert check_integrity(tmp_path).blobs_checked == 1
    async with enforcer_at(tmp_path) as e:
        assert await e.flush_evidence(everything=True) == 1
    assert held(tmp_path) == []
    assert (tmp_path / "evidence" / "T1" / "STRATEGIZE" / "strategy.md").read_text() == STRATEGY
    assert EvidenceFiles(StatePaths(tmp_path)).read_blob(SHA) == STRATEGY.encode()


def test_temporary_files_older_than_an_hour_are_swept_and_younger_ones_kept(
    tmp_path: Path,
) -> None:
    files = EvidenceFiles(StatePaths(tmp_path))
    files.staging.mkdir(parents=True)
    old, young = files.staging / ".tmp-killed", files.staging / ".tmp-in-progress"
    old.write_bytes(b"killed")
    young.write_bytes(b"in progress")
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert files.sweep_staging() == 1
    assert not old.exists() and young.exists()


@pytest.mark.parametrize("outcome", ["recorded", "refused"])
async def test_a_write_cancelled_while_queued_for_commit_ends_tidy_when_its_unit_runs(
    tmp_path: Path, outcome: str
) -> None:
    """Another process holds the write lock, so the write queues for a group commit; its caller
    is cancelled (a client timeout); the unit still runs once the lock is free. Recorded: its
    bytes are in the database, readable, and a running server writes them out. Refused: it
    holds nothing and writes nothing."""
    writer = ALICE if outcome == "recorded" else BOB
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        blocker = sqlite3.connect(tmp_path / "phasegate.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        commits = e.store.commits
        put = asyncio.ensure_future(e.evidence_put(writer, "T1", "strategy.md", STRATEGY))
        # The call hands its unit to the store without waiting for anything first; the inline
        # attempt finds the database locked, so by its first wait the unit is queued.
        await asyncio.sleep(0)
        assert not put.done()
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        blocker.execute("ROLLBACK")
        blocker.close()
        await _until(lambda: e.store.commits > commits, "the queued write to commit")
        records = await e.evidence_list("T1")
        if outcome == "recorded":
            assert [r.name for r in records] == ["strategy.md"]
            _, data = await e.evidence_read("T1", "STRATEGIZE", "strategy.md")
            assert data == STRATEGY.encode()
            assert held(tmp_path) == [SHA]
            await e.flush_evidence(everything=True)  # a running server adopts it in a minute
            assert e.files.read_blob(SHA) == STRATEGY.encode()
        else:
            assert records == []
            assert files_under(tmp_path / "blobs") == []
        assert held(tmp_path) == []
    report = check_integrity(tmp_path)
    assert report.blobs_checked == len(records)
