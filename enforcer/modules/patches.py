"""Strict unified-diff application (`draft_apply_patch`, and `draft_rebase`'s replay).

Strict means: every hunk's context and removed lines must match the file exactly — no fuzz, no
whitespace leniency. A hunk is placed at the line it names, or, if the file moved under it, at
the one other place its lines match (two or more such places is a conflict). A new file must
not exist yet; a deleted file must match the diff whole. All of it applies, or none: the new
contents are computed first and returned together, and any mismatch raises ConflictError
before the caller changes anything. Renames, copies, binary patches and symlinks are refused as
INVALID_ARGUMENT, as is any path that `names.check_module_path` refuses.

    changes = apply_patch(text, current=lambda path: draft_bytes.get(path))
    # {path: (new bytes, mode or None)} — None bytes for a deleted file
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from unidiff.constants import (
    LINE_TYPE_ADDED,
    LINE_TYPE_CONTEXT,
    LINE_TYPE_NO_NEWLINE,
    LINE_TYPE_REMOVED,
)
from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchSet

from ..errors import ConflictError, InvalidArgumentError
from ..names import check_module_path
from .diffs import split_lines, text_of

__all__ = ["Change", "apply_hunks", "apply_patch"]

_MODE = re.compile(r"^(new file mode|new mode|deleted file mode|old mode) (\d{6})$", re.M)


@dataclass(frozen=True, slots=True)
class Change:
    """What a patch does to one path: its new bytes (None: deleted) and mode (None: kept)."""

    data: bytes | None
    mode: int | None


def _path(name: str, other: str) -> str:
    raw = other if name == "/dev/null" else name
    if raw.startswith(("a/", "b/")):
        raw = raw[2:]
    return check_module_path(raw)


def _conflict(path: str, why: str) -> ConflictError:
    return ConflictError(
        f"the patch does not apply to {path}: {why}",
        hint="draft_diff and draft_show(path) show the draft as it is; nothing was changed",
        details={"path": path},
    )


def apply_hunks(path: str, old: str, hunks: list[Hunk]) -> str:
    """`old` with `hunks` applied strictly; raises ConflictError naming `path`."""
    lines = split_lines(old)
    out: list[str] = []
    pos = 0
    for hunk in hunks:
        src: list[str] = []
        dst: list[str] = []
        last: list[str] | None = None
        for line in hunk:
            if line.line_type == LINE_TYPE_NO_NEWLINE:
                for side in (src, dst) if last is None else (last,):
                    if side and side[-1].endswith("\n"):
                        side[-1] = side[-1][:-1]
                continue
            value = line.value
            if line.line_type == LINE_TYPE_CONTEXT:
                src.append(value)
                dst.append(value)
                last = None  # a marker after context applies to both sides
            elif line.line_type == LINE_TYPE_REMOVED:
                src.append(value)
                last = src
            elif line.line_type == LINE_TYPE_ADDED:
                dst.append(value)
                last = dst
        at = _place(path, lines, src, pos, hunk.source_start, hunk.source_length)
        out += lines[pos:at] + dst
        pos = at + len(src)
    out += lines[pos:]
    return "".join(out)


def _place(path: str, lines: list[str], src: list[str], pos: int, start: int, length: int) -> int:
    """Where `src` goes: its stated line, else its one other exact match after `pos`."""
    want = start if length == 0 else start - 1
    if not src:  # pure insertion: only its stated place means anything
        if pos <= want <= len(lines):
            return want
        raise _conflict(path, f"line {start} is past the end of the file")
    n = len(src)
    if want >= pos and lines[want : want + n] == src:
        return want
    found = [i for i in range(pos, len(lines) - n + 1) if lines[i : i + n] == src]
    if len(found) == 1:
        return found[0]
    if not found:
        raise _conflict(path, f"the hunk at line {start} does not match its context")
    raise _conflict(path, f"the hunk at line {start} matches {len(found)} places")


def apply_patch(text: str, current: Callable[[str], bytes | None]) -> dict[str, Change]:
    """The new content of every path `text` changes, given `current(path)` (None: absent)."""
    try:
        patch = PatchSet(text)
    except (UnidiffParseError, ValueError) as e:
        raise InvalidArgumentError(f"not a unified diff: {e}", details={"argument": "patch"}) from e
    if len(patch) == 0:
        raise InvalidArgumentError(
            "the patch changes no file", details={"argument": "patch"}, hint="send a unified diff"
        )
    changes: dict[str, Change] = {}
    for pf in patch:
        path = _path(pf.source_file, pf.target_file)
        if pf.is_binary_file or getattr(pf, "is_rename", False) or path in changes:
            raise InvalidArgumentError(
                f"{path}: binary, renamed or repeated files cannot be patched",
                hint="write the file with draft_write, or delete it with draft_delete_file",
                details={"argument": "patch", "path": path},
            )
        both = "/dev/null" not in (pf.source_file, pf.target_file)
        if both and _path(pf.target_file, pf.source_file) != path:
            raise InvalidArgumentError(
                f"{path}: renames are not supported", details={"argument": "patch"}
            )
        mode = _mode(path, str(pf.patch_info))
        old = current(path)
        if pf.is_added_file:
            if old is not None:
                raise _conflict(path, "it is added by the patch but exists already")
            new = apply_hunks(path, "", list(pf))
            changes[path] = Change(new.encode("utf-8"), mode or 0o644)
            continue
        if old is None:
            raise _conflict(path, "the file does not exist in the draft")
        old_text = text_of(old)
        if old_text is None:
            raise InvalidArgumentError(
                f"{path} is binary: it cannot be patched",
                hint="replace it with draft_write",
                details={"argument": "patch", "path": path},
            )
        new = apply_hunks(path, old_text, list(pf))
        if pf.is_removed_file:
            if new != "":
                raise _conflict(path, "the deletion does not match the whole file")
            changes[path] = Change(None, None)
        else:
            changes[path] = Change(new.encode("utf-8"), mode)
    return changes


def _mode(path: str, header: str) -> int | None:
    """The mode the git header gives the new file, if any; symlinks and submodules refused."""
    mode = None
    for kind, value in _MODE.findall(header):
        if value not in ("100644", "100755"):
            raise InvalidArgumentError(
                f"{path}: mode {value} (a symlink or submodule) is not allowed in a module",
                details={"argument": "patch", "path": path},
            )
        if kind in ("new file mode", "new mode"):
            mode = int(value[3:], 8)
    return mode
