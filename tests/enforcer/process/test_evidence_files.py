"""Blobs are staged, then published inside the recording transaction: a refused write leaves
nothing, a published blob is never taken away."""

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


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Bounded polling of a condition (never a fixed sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.005)


def _files(tmp_path: Path) -> EvidenceFiles:
    return EvidenceFiles(StatePaths(tmp_path))


def test_a_staged_blob_that_is_discarded_leaves_no_file(tmp_path: Path) -> None:
    files = _files(tmp_path)
    staged = files.stage_blob(b"refused")
    assert staged.tmp is not None and staged.tmp.read_bytes() == b"refused"
    assert not staged.path.exists()
    files.discard(staged)
    files.discard(staged)  # twice is harmless
    assert files_under(tmp_path / "blobs") == []


def test_a_published_blob_is_named_by_its_digest_and_publishing_twice_is_harmless(
    tmp_path: Path,
) -> None:
    files = _files(tmp_path)
    staged = files.stage_blob(b"kept")
    files.publish(staged)
    files.publish(staged)  # idempotent
    files.discard(staged)  # the caller's cleanup after a commit: a no-op
    sha = hashlib.sha256(b"kept").hexdigest()
    assert staged.sha256 == sha
    assert files_under(tmp_path / "blobs") == [f"sha256/{sha[:2]}/{sha}"]
    assert files.read_blob(sha) == b"kept"


def test_two_writers_of_the_same_bytes_one_refused_keep_the_blob(tmp_path: Path) -> None:
    files = _files(tmp_path)
    accepted, refused = files.stage_blob(b"same"), files.stage_blob(b"same")
    assert accepted.tmp != refused.tmp
    files.publish(accepted)
    files.discard(refused)  # the refused writer cleans up after the other one published
    assert files.read_blob(accepted.sha256) == b"same"
    assert files_under(tmp_path / "blobs") == [f"sha256/{accepted.sha256[:2]}/{accepted.sha256}"]


def test_staging_bytes_that_are_already_stored_writes_nothing(tmp_path: Path) -> None:
    files = _files(tmp_path)
    first = files.stage_blob(b"old")
    files.publish(first)
    again = files.stage_blob(b"old")
    assert again.tmp is None and again.path == first.path
    files.discard(again)
    assert files.read_blob(first.sha256) == b"old"


def test_publishing_bytes_that_are_gone_raises_so_nothing_can_name_them(tmp_path: Path) -> None:
    files = _files(tmp_path)
    staged = files.stage_blob(b"lost")
    files.discard(staged)
    with pytest.raises(FileNotFoundError):
        files.publish(staged)
    assert files_under(tmp_path / "blobs") == []


def test_staged_files_older_than_an_hour_are_swept_and_younger_ones_kept(tmp_path: Path) -> None:
    files = _files(tmp_path)
    old, young = files.stage_blob(b"killed"), files.stage_blob(b"in progress")
    assert old.tmp is not None and young.tmp is not None
    an_hour_ago = time.time() - 3700
    os.utime(old.tmp, (an_hour_ago, an_hour_ago))
    assert files.sweep_staging() == 1
    assert not old.tmp.exists() and young.tmp.exists()


@pytest.mark.parametrize("outcome", ["recorded", "refused"])
async def test_a_write_cancelled_while_queued_for_commit_ends_tidy_when_its_unit_runs(
    tmp_path: Path, outcome: str
) -> None:
    """Another process holds the write lock, so the write queues for a group commit; its caller
    is cancelled (a client timeout); the unit still runs once the lock is free. Recorded: its
    bytes are there and integrity holds. Refused: it leaves no blob and nothing staged."""
    writer = ALICE if outcome == "recorded" else BOB
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        blocker = sqlite3.connect(tmp_path / "phasegate.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        commits = e.store.commits
        put = asyncio.ensure_future(e.evidence_put(writer, "T1", "strategy.md", STRATEGY))
        # The call stages its bytes and hands its unit to the store without awaiting anything
        # else first; the inline attempt finds the database locked, so the unit is queued for
        # the store's thread before the call first waits. Once the bytes are staged, it is.
        await _until(lambda: files_under(e.files.staging) != [], "the write to stage its bytes")
        assert not put.done()
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        blocker.execute("ROLLBACK")
        blocker.close()
        # The queued unit runs once the lock is free and its batch commits (a refused unit is
        # rolled back alone inside it): wait for that commit, not for the staging to empty,
        # which happens inside the unit before its transaction commits.
        await _until(lambda: e.store.commits > commits, "the queued write to commit")
        assert files_under(e.files.staging) == []
        records = await e.evidence_list("T1")
    if outcome == "recorded":
        assert [r.name for r in records] == ["strategy.md"]
        assert e.files.read_blob(records[0].sha256) == STRATEGY.encode()
    else:
        assert records == []
        assert files_under(tmp_path / "blobs") == []
    report = check_integrity(tmp_path)
    assert report.blobs_checked == len(records)
