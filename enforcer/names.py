"""Checks for the names callers choose: evidence names today, module paths and ids later.

A leaf: every layer validates names the same way, so the rule lives once, here.

    check_name("spec.md")      # -> "spec.md"
    check_name("../etc")       # raises InvalidArgumentError
"""

from __future__ import annotations

import re

from .errors import InvalidArgumentError

__all__ = [
    "MAX_NAME",
    "MAX_PATH",
    "check_draft_id",
    "check_module_name",
    "check_module_path",
    "check_name",
]

MAX_NAME = 128
MAX_PATH = 1024  # characters of a path inside a module
# Always `fullmatch`: with `match`, "$" also matches before a final newline ("nl.md\n").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DRAFT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# Control characters (C0, DEL, C1: a C1 CSI drives a terminal like ESC [), the line and
# paragraph separators, the bidi embedding, override and isolate controls (a name that reads
# other than it is: CVE-2021-42574), and backslashes.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]")


def check_name(name: object) -> str:
    """A plain file name: no separators, no '..', no control characters (a final newline
    included), printable ASCII only, at most MAX_NAME characters."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_NAME
        or not _NAME.fullmatch(name)
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


def check_module_name(name: object, argument: str = "module") -> str:
    """A module name: like a task id, ``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``."""
    if not isinstance(name, str) or not _MODULE.fullmatch(name):
        raise InvalidArgumentError(
            "a module name must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
            hint="module_list shows the registered modules",
            details={"argument": argument},
        )
    return name


def check_draft_id(draft: object) -> str:
    """A draft id as draft_create returned it."""
    if not isinstance(draft, str) or not _DRAFT.fullmatch(draft):
        raise InvalidArgumentError(
            "a draft id must match [A-Za-z0-9][A-Za-z0-9._-]{0,79}",
            hint="use the id draft_create returned",
            details={"argument": "draft"},
        )
    return draft


def check_module_path(path: object, argument: str = "path") -> str:
    """A file's path inside a module: relative, '/'-separated, every part a real name.

    Refused: absolute paths, empty parts ('a//b', a trailing '/'), '.' and '..' parts,
    backslashes, control characters (C0 and C1), line separators and bidi controls, parts
    over 255 bytes, more than MAX_PATH characters.
    (Symlinks cannot appear inside a module: its files are regular files only.)

        check_module_path("skills/review.md")   # -> "skills/review.md"
        check_module_path("../etc/passwd")      # raises InvalidArgumentError
    """
    problem = _path_problem(path)
    if problem is not None:
        shown = path[:60] + "…" if isinstance(path, str) and len(path) > 60 else path
        raise InvalidArgumentError(
            f"path {shown!r} {problem}",
            hint="paths are relative to the module root, like 'skills/review.md', with no"
            " '..', no leading '/' and no backslash",
            details={"argument": argument},
        )
    assert isinstance(path, str)
    return path


def _path_problem(path: object) -> str | None:
    if not isinstance(path, str) or not path:
        return "is not a non-empty string"
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if path.startswith("/"):
        return "is absolute"
    if _UNSAFE.search(path):
        return "contains a backslash, a control character or a bidi control"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "has an empty, '.' or '..' part"
        if len(part.encode("utf-8")) > 255:
            return "has a part longer than 255 bytes"
    return None
