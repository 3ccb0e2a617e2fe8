"""Evidence artifacts on disk: plain names, content-addressed blobs, atomic named copies.

Every version of every artifact is kept as an immutable blob ``state/blobs/sha256/<aa>/<hex>``.
Its bytes are first written and synced under a temporary name in ``state/blobs/staging/``; the
transaction that records them renames them to their digest (and syncs the directory) once its
checks have passed, so a recorded hash always has its bytes, and a write refused by its checks
leaves none. The recording unit itself cleans up after a refusal, so a write whose caller went
away (a cancelled call queued for a group commit) still ends tidy. A blob is never deleted, so two
writers of the same bytes cannot pull them from under each other. Staged files left by a killed
process are swept when a server next starts. The readable copy
``state/evidence/<TASK>/<PHASE>/<name>`` is replaced atomically after the record commits.

    files = EvidenceFiles(StatePaths(Path("state")))
    staged = files.stage_blob(b"# Problem ...")
    ...  # in the transaction, after its checks: publish(staged), then record staged.sha256;
    ...  # on a refusal: discard(staged)
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

__all__ = ["EvidenceFiles", "StagedBlob"]


def _write_synced(directory: Path, data: bytes) -> Path:
    """`data` in a new temporary file in `directory`, on disk; the caller renames or removes it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _write_synced(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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

    def stage_blob(self, data: bytes) -> StagedBlob:
        """Write `data` durably under a temporary name; nothing names it until `publish`.
        Raises StorageFullError when the disk has no room for it (nothing is left behind)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if path.exists():
            return StagedBlob(sha, path, None)
        try:
            return StagedBlob(sha, path, _write_synced(self.staging, data))
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(
                    f"no space left on the disk that holds {self.paths.blobs}: nothing was changed",
                    hint="free space on that disk (or raise the quota), then retry the call",
                    details={"cause": "storage_full"},
                ) from e
            raise

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
        try:
            data = self.blob_path(sha256).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"no blob {sha256}") from e
        if hashlib.sha256(data).hexdigest() != sha256:
            raise NotFoundError(f"blob {sha256} is corrupt on disk")
        return data

    def named_path(self, task: str, phase: str, name: str) -> Path:
        return self.paths.evidence / task / phase / check_name(name)

    def refresh(self, records: list[tuple[str, str, str, str, float]]) -> int:
        """Bring readable copies up to their records (task, phase, name, sha256, recorded at
        as a POSIX time): the ones a server killed between recording and copying left missing
        or at an earlier version. A copy is only hashed when its file is older than its record
        (a copy written for this record is newer), so a start costs a `stat` per artifact.
        Returns how many copies were written."""
        written = 0
        for task, phase, name, sha, recorded_at in records:
            path = self.named_path(task, phase, name)
            try:
                if path.stat().st_mtime >= recorded_at:
                    continue
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                current = None
            if current == sha:
                continue
            try:
                self.materialise(task, phase, name, self.read_blob(sha))
            except (NotFoundError, OSError):
                continue  # no bytes to copy from: integrity reports the missing blob
            written += 1
        return written

    def materialise(self, task: str, phase: str, name: str, data: bytes) -> Path:
        """Replace the readable copy of an artifact atomically."""
        path = self.named_path(task, phase, name)
        _write_atomic(path, data)
        return path
