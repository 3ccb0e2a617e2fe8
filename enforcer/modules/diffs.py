"""The unified diff between two manifests (a draft against its base version), git-style.

Paths in order; each changed file gets a ``diff --git a/P b/P`` header, mode lines when its mode
changed or it was added or deleted, then difflib's unified hunks with three lines of context
and ``\\ No newline at end of file`` where a side ends without one. Files that are not UTF-8
text are reported as ``Binary files a/P and b/P differ``. The text parses with `unidiff` and
applies with ``git apply`` and with this package's own strict patcher, which `draft_rebase`
uses to replay it. Stats count changed files and added and removed lines; ``diff_sha256`` is
the sha256 of the UTF-8 text.

    d = manifest_diff(base, draft, blobs.read)
    d.text, d.files, d.added, d.removed, d.sha256
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .manifest import FileEntry, Manifest

__all__ = ["Diff", "changed_paths", "file_diff", "manifest_diff", "split_lines", "text_of"]


@dataclass(frozen=True, slots=True)
class Diff:
    text: str
    files: int
    added: int
    removed: int
    changes: list[dict[str, Any]] = field(default_factory=list)  # [{path, status}]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "diff": self.text,
            "diff_sha256": self.sha256,
            "files": self.files,
            "added": self.added,
            "removed": self.removed,
            "changes": self.changes,
        }


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n" kept; only "\\n" ends a line (str.splitlines also splits on
    \\r, \\f, \\u2028 and others, which a unified diff does not)."""
    if not text:
        return []
    lines = [line + "\n" for line in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    else:
        lines[-1] = lines[-1][:-1]
    return lines


def text_of(data: bytes) -> str | None:
    """The UTF-8 text of `data`, or None for binary content (invalid UTF-8 or a NUL byte)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def changed_paths(old: Manifest, new: Manifest) -> list[tuple[str, str]]:
    """(path, added|deleted|modified|mode) for every path whose entry differs, in path order."""
    out = []
    for path in sorted(set(old.files) | set(new.files)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        if a is None:
            out.append((path, "added"))
        elif b is None:
            out.append((path, "deleted"))
        elif a.sha256 == b.sha256:
            out.append((path, "mode"))
        else:
            out.append((path, "modified"))
    return out


def _range(start: int, stop: int) -> str:
    """A unified hunk range, 1-based (difflib's `_format_range_unified`)."""
    length = stop - start
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def _hunks(
    old_text: str, new_text: str, path: str, added: bool, deleted: bool
) -> tuple[list[str], int, int]:
    """The hunks of a unified diff in git's form, and the lines they add and remove.

    difflib's `unified_diff`, with one change: its matcher's "autojunk" heuristic is off. That
    heuristic treats a line repeated in more than 1% of a file of 200+ lines as noise, and a
    long file of similar lines (a table, a generated list) then diffs as wholly replaced — a
    one-line change reported as hundreds, which the policy would take for a big one."""
    a, b = split_lines(old_text), split_lines(new_text)
    out: list[str] = []
    plus = minus = 0
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(3):
        if not out:
            out.append("--- /dev/null\n" if added else f"--- a/{path}\n")
            out.append("+++ /dev/null\n" if deleted else f"+++ b/{path}\n")
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[i1:i2]]
                continue
            if tag in ("replace", "delete"):
                out += ["-" + line for line in a[i1:i2]]
                minus += i2 - i1
            if tag in ("replace", "insert"):
                out += ["+" + line for line in b[j1:j2]]
                plus += j2 - j1
    return (
        [x if x.endswith("\n") else x + "\n\\ No newline at end of file\n" for x in out],
        plus,
        minus,
    )


def file_diff(
    path: str, a: FileEntry | None, b: FileEntry | None, read: Callable[[str], bytes]
) -> tuple[str, int, int]:
    """The git-style diff of one path from `a` to `b`: (text, lines added, lines removed)."""
    head = [f"diff --git a/{path} b/{path}\n"]
    if a is None and b is not None:
        head.append(f"new file mode 100{b.mode:o}\n")
    elif b is None and a is not None:
        head.append(f"deleted file mode 100{a.mode:o}\n")
    elif a is not None and b is not None and a.mode != b.mode:
        head += [f"old mode 100{a.mode:o}\n", f"new mode 100{b.mode:o}\n"]
    if a is not None and b is not None and a.sha256 == b.sha256:
        return "".join(head), 0, 0
    old = b"" if a is None else read(a.sha256)
    new = b"" if b is None else read(b.sha256)
    old_text, new_text = text_of(old), text_of(new)
    if old_text is None or new_text is None:
        src = "/dev/null" if a is None else f"a/{path}"
        dst = "/dev/null" if b is None else f"b/{path}"
        head.append(f"Binary files {src} and {dst} differ\n")
        return "".join(head), 0, 0
    lines, added, removed = _hunks(old_text, new_text, path, a is None, b is None)
    return "".join(head + lines), added, removed


def manifest_diff(old: Manifest, new: Manifest, read: Callable[[str], bytes]) -> Diff:
    """The unified diff from `old` to `new`; `read(sha256)` gives a blob's bytes."""
    parts: list[str] = []
    added = removed = 0
    changes = []
    for path, status in changed_paths(old, new):
        text, plus, minus = file_diff(path, old.get(path), new.get(path), read)
        parts.append(text)
        added += plus
        removed += minus
        changes.append({"path": path, "status": status})
    return Diff("".join(parts), len(changes), added, removed, changes)
