"""Unified diffs as the page's diff viewer reads them: files, each with numbered lines.

The parser is forgiving and bounded: a diff is agent-written, so anything it does not recognise
is kept as a context-less note line rather than refused, and nothing in it is ever interpreted
(the viewer sets text, never HTML). Each line is ``[kind, old_no, new_no, text]`` with kind
``" "`` context, ``"+"`` added, ``"-"`` removed, ``"@"`` a hunk header, ``"\\\\"`` a note (e.g.
"No newline at end of file"); numbers are 0 where a side has none.

    view = parse_unified(patch_text)
    view["files"][0]["path"], view["added"], view["removed"]
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_DIFF_LINES", "parse_unified"]

MAX_DIFF_LINES = 200_000  # beyond this the page says the diff is cut and links the raw text
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _path(header: str) -> str:
    """The path of a ``--- a/x`` or ``+++ b/x`` line (``/dev/null`` kept as is)."""
    name = header[4:].split("\t", 1)[0].strip()
    if name.startswith(("a/", "b/")):
        return name[2:]
    return name


def _new_file(git_header: str | None = None) -> dict[str, Any]:
    path = ""
    if git_header is not None:  # "diff --git a/x b/x": the b side, until ---/+++ say better
        path = git_header.rsplit(" b/", 1)[-1] if " b/" in git_header else git_header[11:]
    return {
        "path": path,
        "old": None,
        "new": None,
        "added": 0,
        "removed": 0,
        "meta": [],  # header lines before the first hunk: index, mode, rename, binary
        "lines": [],
    }


def parse_unified(text: str, max_lines: int = MAX_DIFF_LINES) -> dict[str, Any]:
    """The files of the unified diff `text`, with totals; ``cut`` when over `max_lines`."""
    files: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    old_no = new_no = 0
    in_hunk = False
    count = 0
    cut = False
    for raw in text.splitlines():
        if count >= max_lines:
            cut = True
            break
        count += 1
        if raw.startswith("diff --git "):
            current = _new_file(raw)
            files.append(current)
            in_hunk = False
            continue
        if raw.startswith("--- ") and not in_hunk:
            if current is None or current["old"] is not None or current["lines"]:
                current = _new_file()
                files.append(current)
            current["old"] = _path(raw)
            continue
        if raw.startswith("+++ ") and not in_hunk and current is not None:
            current["new"] = _path(raw)
            current["path"] = current["new"] if current["new"] != "/dev/null" else current["old"]
            continue
        if current is None:
            current = _new_file()
            files.append(current)
        m = _HUNK.match(raw)
        if m:
            old_no, new_no = int(m.group(1)), int(m.group(3))
            in_hunk = True
            current["lines"].append(["@", 0, 0, raw])
            continue
        kind = raw[:1]
        if in_hunk and kind == "+":
            current["lines"].append(["+", 0, new_no, raw[1:]])
            current["added"] += 1
            new_no += 1
        elif in_hunk and kind == "-":
            current["lines"].append(["-", old_no, 0, raw[1:]])
            current["removed"] += 1
            old_no += 1
        elif in_hunk and kind == " ":
            current["lines"].append([" ", old_no, new_no, raw[1:]])
            old_no += 1
            new_no += 1
        elif in_hunk and raw == "":  # some tools drop the space of an empty context line
            current["lines"].append([" ", old_no, new_no, ""])
            old_no += 1
            new_no += 1
        elif not current["lines"] and not in_hunk:
            current["meta"].append(raw)
        else:
            in_hunk = in_hunk and kind == "\\"
            current["lines"].append(["\\", 0, 0, raw])
    for f in files:
        f["path"] = f["path"] or f["new"] or f["old"] or "(unnamed)"
    return {
        "files": files,
        "added": sum(f["added"] for f in files),
        "removed": sum(f["removed"] for f in files),
        "lines": count,
        "cut": cut,
    }
