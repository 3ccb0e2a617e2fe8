"""Reading a supervisor's directory into blobs and a manifest (`phasegate module add --from DIR`).

Only regular files become part of a module. A symlink whose target is a file inside DIR is read
as that file (the manifest holds regular files only); a symlink leaving DIR, a symlink to a
directory, a dangling one, a special file (fifo, socket, device) and anything unreadable are
refused with a message naming the path — nothing is stored until the whole tree has been read.
Empty directories are not kept.

    files = read_tree(Path("skills"))              # [(path, bytes, mode)], sorted by path
    manifest = store_tree(blobs, files)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from ..errors import InvalidArgumentError, PhasegateError
from ..names import check_module_path
from .blobs import BlobStore, read_bytes
from .manifest import FileEntry, Manifest, normal_mode

__all__ = ["MAX_IMPORT_FILES", "read_tree", "store_tree"]

MAX_IMPORT_FILES = 100_000


def _refuse(root: Path, rel: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{root / rel}: {why}",
        hint="a module holds regular files only: remove or replace it, then run the command again",
        details={"path": rel},
    )


def read_tree(root: Path) -> list[tuple[str, bytes, int]]:
    """Every file under `root` as (relative path, bytes, normal mode), sorted by path."""
    try:
        real_root = root.resolve(strict=True)
    except OSError as e:
        raise InvalidArgumentError(f"cannot read {root}: {e.strerror or e}") from e
    if not real_root.is_dir():
        raise InvalidArgumentError(f"{root} is not a directory")
    out: list[tuple[str, bytes, int]] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        directory = real_root / rel_dir if rel_dir else real_root
        try:
            names = sorted(os.listdir(directory))
        except OSError as e:
            raise _refuse(real_root, rel_dir or ".", f"unreadable directory ({e.strerror})") from e
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                check_module_path(rel)
            except PhasegateError as e:
                raise _refuse(real_root, rel, f"not a usable path: {e.message}") from None
            full = real_root / rel
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                full, st = _follow(real_root, rel)
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                try:
                    data = read_bytes(full)
                except OSError as e:
                    raise _refuse(real_root, rel, f"unreadable file ({e.strerror})") from e
                out.append((rel, data, normal_mode(st.st_mode)))
                if len(out) > MAX_IMPORT_FILES:
                    raise InvalidArgumentError(f"{root} has more than {MAX_IMPORT_FILES} files")
            else:
                raise _refuse(real_root, rel, "a special file (fifo, socket or device)")
    if not out:
        raise InvalidArgumentError(f"{root} holds no files")
    out.sort(key=lambda item: item[0])
    return out


def _follow(root: Path, rel: str) -> tuple[Path, os.stat_result]:
    """The file a symlink inside `root` names, if it is a regular file inside `root`."""
    link = root / rel
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise _refuse(root, rel, "a dangling or looping symlink") from e
    if target != root and root not in target.parents:
        raise _refuse(root, rel, f"a symlink leaving the directory (to {target})")
    st = os.stat(target)
    if stat.S_ISDIR(st.st_mode):
        raise _refuse(root, rel, "a symlink to a directory (copy the directory instead)")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(root, rel, "a symlink to a special file")
    return target, st


def store_tree(blobs: BlobStore, files: Sequence[tuple[str, bytes, int]]) -> Manifest:
    """Store every file's bytes (one sync for all) and the manifest; returns the manifest."""
    digests = blobs.put_many([data for _, data, _ in files])
    manifest = Manifest(
        {
            path: FileEntry(sha, mode, len(data))
            for (path, data, mode), sha in zip(files, digests, strict=True)
        }
    )
    for path in manifest.files:
        problem = manifest.collision(path)
        if problem is not None:  # pragma: no cover - a directory listing cannot collide
            raise InvalidArgumentError(problem)
    blobs.put(manifest.canonical())
    return manifest
