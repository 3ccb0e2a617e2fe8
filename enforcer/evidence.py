"""Evidence artifacts on disk: plain names, content-addressed blobs, atomic named copies.

Every version of every artifact is kept as an immutable blob ``state/blobs/sha256/<aa>/<hex>``
(written before the ledger records it, so a recorded hash always has its bytes); the readable
copy ``state/evidence/<TASK>/<PHASE>/<name>`` is replaced atomically after the record commits.

    store = EvidenceFiles(StatePaths(Path("state")))
    sha = store.put_blob(b"# Problem ...")
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from .errors import InvalidArgumentError, NotFoundError
from .paths import StatePaths

__all__ = ["MAX_NAME", "EvidenceFiles", "check_name"]

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


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EvidenceFiles:
    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    def blob_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise InvalidArgumentError("not a sha256 hex digest")
        return self.paths.blobs / "sha256" / sha256[:2] / sha256

    def put_blob(self, data: bytes) -> str:
        """Store `data` content-addressed (idempotent) and return its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            _write_atomic(path, data)
        return sha

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
