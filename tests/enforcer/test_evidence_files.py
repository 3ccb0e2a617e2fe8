"""Blobs are staged, then published inside the recording transaction: a refused write leaves
nothing, a published blob is never taken away."""

from __future__ import annotations

import hashlib
from pathlib import Path

from phasegate_testkit import files_under

from enforcer.evidence import EvidenceFiles
from enforcer.paths import StatePaths


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
    files.publish(staged)  # a retried transaction publishes again
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
