"""Evidence artifacts on disk: plain names, content-addressed blobs, atomic named copies.

Every version of every artifact is kept as an immutable blob ``state/blobs/sha256/<aa>/<hex>``,
and its latest version as the readable copy ``state/evidence/<TASK>/<PHASE>/<name>``. Both are
written after the record that names them commits: the bytes of a new blob are made durable by
that commit itself (process/evidence_bytes.py keeps them in the database until their file is
synced). Files are written under a temporary name in ``state/blobs/staging/`` (or beside the
copy) and renamed into place, so a name never shows half a file; `sync` makes them durable
later, in the background. A blob is never deleted, so two writers of the same bytes cannot pull
them from under each other. Temporary files left by a killed process are swept when a server
next starts.

    files = EvidenceFiles(StatePaths(Path("state")))
    files.write_blob(sha, data)                 # after the commit; synced later by files.sync
    files.write_copy("T1", "SPEC", "spec.md", data)

Module blobs keep the older discipline (`stage_blob`, then `publish` inside the transaction, or
`discard`): their bytes are on disk, synced, before the transaction that names them commits.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgumentError, NotFoundError, StorageFullError
from ..names import check_name
from ..paths import StatePaths

__all__ = ["EvidenceFiles", "StagedBlob", "storage_full"]


def _write_temp(directory: Path, data: bytes, *, sync: bool) -> Path:
    """`data` in a new temporary file in `directory` (on disk with `sync`); the caller renames
    or removes it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _sync_dir(directory: Path) -> None:
    """Make renames and new entries in `directory` durable (a no-op where directories cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(tmp: Path, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def storage_full(error: OSError, where: Path) -> StorageFullError | None:
    """The StorageFullError for an OSError that says the disk or quota is full, else None."""
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    full = StorageFullError(
        f"no space left on the disk that holds {where}: nothing was changed",
        hint="free space on that disk (or raise the quota), then retry the call",
        details={"cause": "storage_full"},
    )
    full.__cause__ = error
    return full


@dataclass(slots=True)
class StagedBlob:
    """Bytes on disk under a temporary name (`tmp`), until published under their digest.

    `tmp` is None once published, or from the start when the blob already existed."""

    sha256: str
    path: Path
    tmp: Path | None


class EvidenceFiles:
    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    def blob_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise InvalidArgumentError("not a sha256 hex digest")
        return self.paths.blobs / "sha256" / sha256[:2] / sha256

    @property
    def staging(self) -> Path:
        return self.paths.blobs / "staging"

    # Staging, for writes whose bytes must be on disk before their transaction commits (module
    # blobs): stage now, publish in the transaction once its checks pass, or discard.
    def stage_blob(self, data: bytes) -> StagedBlob:
        """Write `data` durably under a temporary name; nothing names it until `publish`.
        Raises StorageFullError when the disk has no room for it (nothing is left behind)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if path.exists():
            return StagedBlob(sha, path, None)
        try:
            return StagedBlob(sha, path, _write_temp(self.staging, data, sync=True))
        except OSError as e:
            raise (storage_full(e, self.paths.blobs) or e) from e

    def publish(self, staged: StagedBlob) -> None:
        """Give staged bytes their digest's name, durably; idempotent. Raises when the bytes are
        gone, so a record can never name a blob that is not there."""
        if staged.tmp is None:
            if not staged.path.exists():
                raise FileNotFoundError(f"the bytes of blob {staged.sha256} are gone")
            return
        parent = staged.path.parent
        created = not parent.exists()
        parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.tmp, staged.path)
        staged.tmp = None
        _sync_dir(parent)
        if created:
            _sync_dir(parent.parent)

    def discard(self, staged: StagedBlob) -> None:
        """Remove bytes that were staged and never published."""
        if staged.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(staged.tmp)
            staged.tmp = None

    def write_blob(self, sha256: str, data: bytes, *, sync: bool = False) -> Path:
        """Put `data` under its digest's name (replacing whatever is there: a file cut short by
        a crash is made whole again). With `sync`, durably, its directory included."""
        path = self.blob_path(sha256)
        _replace(_write_temp(self.staging, data, sync=sync), path)
        if sync:
            _sync_dir(path.parent)
        return path

    def has_blob(self, sha256: str) -> bool:
        """Whether the blob's file is there. A blob store that cannot be used (a path in it is
        no directory, no permission) raises: better refuse the write than keep its bytes in the
        database with nowhere to put them."""
        try:
            os.stat(self.blob_path(sha256))
        except FileNotFoundError:
            return False
        return True

    def sync(self, paths: list[Path]) -> None:
        """Make files written without `sync` durable, and the renames that named them."""
        for directory in {p.parent for p in paths}:
            for path in paths:
                if path.parent == directory:
                    with contextlib.suppress(FileNotFoundError):
                        _sync_file(path)
            _sync_dir(directory)

    def sweep_staging(self, older_than_s: float = 3600.0) -> int:
        """Remove staged files older than `older_than_s` (left by a killed process); a younger
        one may belong to a write in progress in another process. Returns how many went."""
        cutoff = time.time() - older_than_s
        removed = 0
        try:
            entries = list(os.scandir(self.staging))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.name.startswith(".tmp-") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def read_blob(self, sha256: str) -> bytes:
        """The blob's bytes; NotFoundError when its file is missing or not those bytes (then
        they may still be held in the database: process/evidence_bytes.py)."""
        try:
            data = self.blob_path(sha256).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"no blob {sha256}") from e
        if hashlib.sha256(data).hexdigest() != sha256:
            raise NotFoundError(f"blob {sha256} is corrupt on disk")
        return data

    def named_path(self, task: str, phase: str, name: str) -> Path:
        return self.paths.evidence / task / phase / check_name(name)

    def refresh(
        self, records: list[tuple[str, str, str, str, float]], recent_after: float = float("inf")
    ) -> int:
        """Bring readable copies up to their records (task, phase, name, sha256, recorded at
        as a POSIX time): the ones a server stopped between recording and copying left missing,
        at an earlier version, or (a power loss before their sync) cut short. A copy is hashed
        when its file is older than its record (a copy written for this record is newer) or its
        record is later than `recent_after`, so a start costs a `stat` per artifact and a hash
        of the last few. Returns how many copies were written."""
        written = 0
        for task, phase, name, sha, recorded_at in records:
            path = self.named_path(task, phase, name)
            try:
                if path.stat().st_mtime >= recorded_at and recorded_at < recent_after:
                    continue
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                current = None
            if current == sha:
                continue
            try:
                self.write_copy(task, phase, name, self.read_blob(sha), sync=True)
            except (NotFoundError, OSError):
                continue  # no bytes to copy from: integrity reports the missing blob
            written += 1
        return written

    def write_copy(
        self, task: str, phase: str, name: str, data: bytes, *, sync: bool = False
    ) -> Path:
        """Replace the readable copy of an artifact atomically (durably with `sync`)."""
        path = self.named_path(task, phase, name)
        _replace(_write_temp(path.parent, data, sync=sync), path)
        if sync:
            _sync_dir(path.parent)
        return path
