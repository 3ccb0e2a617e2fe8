"""Module content in the one content-addressed store that evidence uses (``state/blobs/``).

A blob is named by the sha256 of its bytes, fanned out by the first two hex digits
(``blobs/sha256/ab/ab12…``), written under a temporary name and renamed into place, and never
rewritten or deleted: file contents, manifests, validation reports and attestation envelopes
all live here. Single blobs go through the evidence store's stage → publish → discard, so a
refused edit leaves none; a whole imported tree is written with one sync for all of it.

    blobs = BlobStore(StatePaths(Path("state")))
    sha = blobs.put(b"# Review skill\\n")
    blobs.read(sha)              # the bytes, or NotFoundError
    blobs.read_checked(sha)      # the bytes if they still hash to `sha`, else None
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from ..errors import NotFoundError
from ..paths import StatePaths
from ..process.evidence_files import EvidenceFiles, StagedBlob
from .fsutil import TMP_PREFIX, sync_dir, sync_tree, write_file

__all__ = ["BlobStore", "StagedBlob", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_NOFOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


def read_bytes(path: Path | str, size: int | None = None) -> bytes:
    """The bytes of a regular file, refusing to follow a symlink at the last component.

    With the expected `size` (a manifest knows it) the file is read in one call, without a
    stat; more bytes than expected still come back whole, so a digest check sees them."""
    fd = os.open(path, _NOFOLLOW)
    try:
        if size is None:
            size = os.fstat(fd).st_size
        chunks = [os.read(fd, size + 1)]
        while len(chunks[-1]) and sum(map(len, chunks)) > size:
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


class BlobStore:
    """Content-addressed blobs shared by evidence and modules."""

    def __init__(self, paths: StatePaths) -> None:
        self._files = EvidenceFiles(paths)
        self.root = paths.blobs
        self._prefix = str(paths.blobs / "sha256")

    def path(self, sha256: str) -> Path:
        """Where the blob `sha256` lives (InvalidArgumentError for a malformed digest)."""
        return self._files.blob_path(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    # single blobs: stage, then publish inside the recording transaction (or discard)
    def stage(self, data: bytes) -> StagedBlob:
        return self._files.stage_blob(data)

    def publish(self, staged: StagedBlob) -> None:
        self._files.publish(staged)

    def discard(self, staged: StagedBlob) -> None:
        self._files.discard(staged)

    def put(self, data: bytes) -> str:
        """Store `data` durably now (for content no refusal can follow); returns its digest."""
        staged = self.stage(data)
        try:
            self.publish(staged)
        finally:
            self.discard(staged)
        return staged.sha256

    def put_many(self, items: Sequence[bytes]) -> list[str]:
        """Store many blobs with one sync for all (an imported tree); returns their digests.

        Each is written under a temporary name, the file system is synced once, then each is
        renamed into place and the fan-out directories are synced."""
        staging = self._files.staging
        staging.mkdir(parents=True, exist_ok=True)
        digests: list[str] = []
        pending: dict[str, Path] = {}
        try:
            for data in items:
                sha = sha256_hex(data)
                digests.append(sha)
                if sha in pending or self.exists(sha):
                    continue
                tmp = staging / f"{TMP_PREFIX}{secrets.token_hex(8)}"
                write_file(tmp, data, 0o600)
                pending[sha] = tmp
            if not pending:
                return digests
            sync_tree(staging, pending.values())
            parents: set[Path] = set()
            for sha, tmp in pending.items():
                target = self.path(sha)
                if not target.parent.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    parents.add(target.parent.parent)
                os.replace(tmp, target)
                parents.add(target.parent)
            pending.clear()
            for directory in parents:
                sync_dir(directory)
            return digests
        finally:
            for tmp in pending.values():
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def read(self, sha256: str) -> bytes:
        """The stored bytes (unchecked); NotFoundError when there is no such blob."""
        try:
            return read_bytes(self.path(sha256))
        except FileNotFoundError as e:
            raise NotFoundError(f"no blob {sha256}") from e

    def read_checked(self, sha256: str, size: int | None = None) -> bytes | None:
        """The bytes if they still hash to `sha256`; None when missing or altered. `size`, when
        known, saves a stat; the digest is checked either way."""
        path = self.path(sha256) if size is None else self._fast_path(sha256)
        try:
            data = read_bytes(path, size)
        except OSError:
            return None
        return data if sha256_hex(data) == sha256 else None

    def _fast_path(self, sha256: str) -> str:
        """`path` for a digest a parsed manifest holds (already checked to be hex), as a string:
        a thousand pathlib joins cost more than reading the thousand files."""
        return f"{self._prefix}/{sha256[:2]}/{sha256}"
