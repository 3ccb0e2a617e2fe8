"""Version trees on disk and the install path that points at one of them.

Each version a module has installed is materialised once, whole, at
``state/installed/<module>/v<N>-<bundle[:16]>/``: built under a temporary name beside it, every
file's blob checked against its digest as it is copied, synced (one ``syncfs``), then renamed
into place — so a tree under its final name is always complete. The module's install path is a
symlink to the active version's tree, moved with one rename (`fsutil.swap_symlink`): a reader
of the install path sees the old version or the new one, never a mix, and a crash at any point
leaves one of them. Trees are kept after the pointer leaves them, which is what makes rollback
a pointer move; a kept tree is re-checked byte for byte before the pointer returns to it, and
rebuilt from the blobs if anything in it changed (the changed tree is moved aside, not deleted).

    trees = Trees(StatePaths(Path("state")), blobs)
    tree = trees.prepare(record, manifest)     # verified; raises AttestationInvalidError
    trees.point(Path("/opt/skills"), tree)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..paths import StatePaths
from .blobs import BlobStore, read_bytes
from .fsutil import TMP_PREFIX, swap_symlink, sync_dir, sync_tree, write_file
from .guard import guard_error
from .halt_points import halt_if_asked
from .manifest import FileEntry, Manifest, normal_mode
from .records import VersionRecord

__all__ = ["Trees"]

logger = logging.getLogger(__name__)


class Trees:
    def __init__(self, paths: StatePaths, blobs: BlobStore) -> None:
        self.root = (paths.root / "installed").absolute()  # install paths link to it
        self.blobs = blobs

    def version_dir(self, module: str, version: int, bundle_sha256: str) -> Path:
        return self.root / module / f"v{version}-{bundle_sha256[:16]}"

    def prepare(self, record: VersionRecord, manifest: Manifest) -> Path:
        """The version's verified tree: the kept one if it still matches the manifest exactly,
        else a new one. Every file blob's digest is checked either way (fault ``blob``)."""
        dest = self.version_dir(record.module, record.version, record.bundle_sha256)
        if dest.is_dir() and not dest.is_symlink():
            if self._matches(dest, record, manifest):
                return dest
            aside = dest.with_name(f"{TMP_PREFIX}altered-{dest.name}-{secrets.token_hex(4)}")
            logger.warning("the kept tree %s was altered: moved to %s, rebuilding", dest, aside)
            os.rename(dest, aside)
        return self._build(record, manifest, dest)

    def _build(self, record: VersionRecord, manifest: Manifest, dest: Path) -> Path:
        parent = dest.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f"{TMP_PREFIX}{dest.name}-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o755)
        try:
            for directory in sorted(manifest.directories):
                (tmp / directory).mkdir(mode=0o755)
            root = str(tmp)
            entries = list(manifest.files.items())
            half = len(entries) // 2

            def write(chunk: list[tuple[str, FileEntry]]) -> None:
                for path, entry in chunk:
                    data = self.blobs.read_checked(entry.sha256, entry.size)
                    if data is None:
                        raise guard_error(
                            record, "blob", f"the bytes of {path} are missing or altered", path
                        )
                    write_file(f"{root}/{path}", data, entry.mode)

            _in_parallel(entries[:half], write)
            halt_if_asked("install:materialising")
            _in_parallel(entries[half:], write)
            sync_tree(tmp, (tmp / path for path, _ in entries))  # listed only without syncfs
            try:
                os.rename(tmp, dest)
            except OSError:
                # Another process built the same tree meanwhile: use it if it is whole.
                if dest.is_dir() and self._matches(dest, record, manifest):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return dest
                raise
            sync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def _matches(self, dest: Path, record: VersionRecord, manifest: Manifest) -> bool:
        """Whether `dest` holds exactly the manifest's files; raises for a bad blob (every
        blob is checked, whatever the tree holds)."""
        root = str(dest)

        def check(chunk: list[tuple[str, FileEntry]]) -> bool:
            same = True
            for path, entry in chunk:
                data = self.blobs.read_checked(entry.sha256, entry.size)
                if data is None:
                    raise guard_error(
                        record, "blob", f"the bytes of {path} are missing or altered", path
                    )
                same = same and _file_is(f"{root}/{path}", data, entry.mode)
            return same

        same = all(_in_parallel(list(manifest.files.items()), check))
        return same and not _extra(dest, manifest)

    def problems(self, dest: Path, manifest: Manifest) -> list[str]:
        """What differs between the tree at `dest` and the manifest (for integrity checks)."""
        if not dest.is_dir() or dest.is_symlink():
            return [f"{dest} is missing"]
        found = []
        for path, entry in manifest.files.items():
            data = self.blobs.read_checked(entry.sha256, entry.size)
            if data is not None and not _file_is(f"{dest}/{path}", data, entry.mode):
                found.append(f"{path} differs")
        found += [f"{p} is not in the version" for p in _extra(dest, manifest)]
        return found

    @staticmethod
    def target(install_path: Path) -> Path | None:
        """Where the install path points now (None when it is not a symlink)."""
        try:
            return Path(os.readlink(install_path))
        except OSError:
            return None

    @staticmethod
    def point(install_path: Path, tree: Path) -> None:
        """Move the install path to `tree` in one rename."""
        install_path.parent.mkdir(parents=True, exist_ok=True)
        swap_symlink(install_path, tree)

    @staticmethod
    def unpoint(install_path: Path, previous: Path | None) -> None:
        """Undo `point` (after a failed commit): back to `previous`, or no link at all."""
        if previous is not None:
            swap_symlink(install_path, previous)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(install_path)

    def sweep(self, module: str, install_path: Path) -> int:
        """Remove half-built trees and temporary links a killed process left; returns how many.
        (Trees moved aside as altered are kept for inspection.)"""
        removed = 0
        places = (
            (self.root / module, f"{TMP_PREFIX}v"),
            (install_path.parent, f"{TMP_PREFIX}{install_path.name}-"),
        )
        for directory, prefix in places:
            try:
                entries = [e for e in os.scandir(directory) if e.name.startswith(prefix)]
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                removed += 1
        return removed


_WORKERS = max(1, min(4, os.cpu_count() or 1))
_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_T = TypeVar("_T")


def _in_parallel(
    items: list[tuple[str, FileEntry]], fn: Callable[[list[tuple[str, FileEntry]]], _T]
) -> list[_T]:
    """`fn` over `items` split into one chunk per worker. Reading, hashing (OpenSSL releases
    the GIL) and writing files overlap across cores; every chunk runs to its end, and the first
    chunk's error (in path order) is raised."""
    global _POOL
    if len(items) < 64 or _WORKERS == 1:
        return [fn(items)]
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(_WORKERS, "phasegate-trees")
    size = -(-len(items) // _WORKERS)
    futures = [_POOL.submit(fn, items[i : i + size]) for i in range(0, len(items), size)]
    concurrent.futures.wait(futures)
    return [f.result() for f in futures]


def _file_is(path: str, data: bytes, mode: int) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return False
        if normal_mode(st.st_mode) != mode:
            return False
        return read_bytes(path, len(data)) == data
    except OSError:
        return False


def _extra(dest: Path, manifest: Manifest) -> list[str]:
    """Paths under `dest` that the manifest does not hold (files, links, stray directories)."""
    extra: list[str] = []
    root = str(dest)
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(f"{root}/{rel}" if rel else root))
        except OSError:
            return [rel or "."]
        for entry in entries:
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False) and sub in manifest.directories:
                stack.append(sub)
            elif not (entry.is_file(follow_symlinks=False) and sub in manifest.files):
                extra.append(sub)
    return extra
