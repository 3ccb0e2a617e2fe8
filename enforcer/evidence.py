"""Evidence artifacts on disk: plain names, content-addressed blobs, atomic named copies.

Every version of every artifact is kept as an immutable blob ``state/blobs/sha256/<aa>/<hex>``.
Its bytes are written and synced under a temporary name first, and renamed to their digest inside
the transaction that records them, once that write's checks have passed: a recorded hash always
has its bytes, and a refused write leaves none. A blob is never deleted, so two writers of the
same bytes cannot pull them from under each other. The readable copy
``state/evidence/<TASK>/<PHASE>/<name>`` is replaced atomically after the record commits.

    files = EvidenceFiles(StatePaths(Path("state")))
    staged = files.stage_blob(b"# Problem ...")
    try:
        ...  # in the transaction, after its checks: publish(staged), record staged.sha256
    finally:
        files.discard(staged)  # a no-op once published
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgumentError, NotFoundError
from .paths import StatePaths

__all__ = ["MAX_NAME", "EvidenceFiles", "StagedBlob", "check_name"]

MAX_NAME = 128
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(name: object) -> str:
    """A plain file name: no separators, no '..', printable ASCII, at most MAX_NAME characters."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_NAME
        or not _NAME.match(name)
        or ".." in name
    ):
        shown = name[:40] + "…" if isinstance(name, str) and len(name) > 40 else name
        raise InvalidArgumentError(
            f"evidence name {shown!r} is not a plain file name",
            hint="use a name like 'spec.md': letters, digits, '.', '_' or '-', no '/' or '..',"
            f" at most {MAX_NAME} characters",
            details={"argument": "name"},
        )
    return name


def _write_synced(path: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `path`, on disk; the caller renames or removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _write_synced(path, data)
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

    def stage_blob(self, data: bytes) -> StagedBlob:
        """Write `data` durably under a temporary name; nothing names it until `publish`."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if path.exists():
            return StagedBlob(sha, path, None)
        return StagedBlob(sha, path, _write_synced(path, data))

    def publish(self, staged: StagedBlob) -> None:
        """Give staged bytes their digest's name (idempotent: a retried transaction may ask
        twice)."""
        if staged.tmp is not None:
            os.replace(staged.tmp, staged.path)
            staged.tmp = None

    def discard(self, staged: StagedBlob) -> None:
        """Remove bytes that were staged and never published."""
        if staged.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(staged.tmp)
            staged.tmp = None

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

    def materialise(self, task: str, phase: str, name: str, data: bytes) -> Path:
        """Replace the readable copy of an artifact atomically."""
        path = self.named_path(task, phase, name)
        _write_atomic(path, data)
        return path
