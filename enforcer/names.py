"""Checks for the names callers choose: evidence names today, module paths and ids later.

A leaf: every layer validates names the same way, so the rule lives once, here.

    check_name("spec.md")      # -> "spec.md"
    check_name("../etc")       # raises InvalidArgumentError
"""

from __future__ import annotations

import re

from .errors import InvalidArgumentError

__all__ = ["MAX_NAME", "check_name"]

MAX_NAME = 128
# Always `fullmatch`: with `match`, "$" also matches before a final newline ("nl.md\n").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
