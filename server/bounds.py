"""The size of one tool call's arguments, bounded before any validation looks at them.

Argument models forbid unknown keys, and pydantic reports every one of them: a call with a
million extra keys (18.8 MB) built a million error records before ten were kept (6.1 s, a
1.35 GB peak). So the router first checks the arguments against three bounds, walking them
without recursion and stopping as soon as one is exceeded, so the check costs at most what the
bound allows, however large the call:

- `MAX_KEYS` arguments per call (no tool takes more than five);
- `MAX_ITEMS` values in nested objects and arrays together (no tool takes any, but a refusal
  should name the bound, not the first of ten thousand type errors);
- `MAX_CHARS` characters of text, keys and strings at any depth (the largest argument,
  evidence content, may have 2 MiB).

A call past a bound is INVALID_ARGUMENT naming it in ``details.limit`` (``keys``, ``items``,
``size``) with the bound and what was found.

    check_bounds("task_status", {"task": "T1"})          # returns
    check_bounds("task_status", {f"k{i}": i for i in range(100)})   # INVALID_ARGUMENT, keys
"""

from __future__ import annotations

from typing import Any

from enforcer.errors import InvalidArgumentError

__all__ = ["MAX_CHARS", "MAX_ITEMS", "MAX_KEYS", "check_bounds"]

MAX_KEYS = 32
MAX_ITEMS = 1024
MAX_CHARS = 3 * 1024 * 1024


def check_bounds(tool: str, arguments: dict[str, Any]) -> None:
    """Raise InvalidArgumentError when `arguments` exceed a bound; cost O(min(size, bound))."""
    if len(arguments) > MAX_KEYS:
        raise _refused(tool, "keys", MAX_KEYS, len(arguments), f"{len(arguments)} arguments")
    chars = 0
    items = 0
    pending: list[Any] = [arguments]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, dict | list | tuple):
            if value is not arguments:
                items += len(value)
                if items > MAX_ITEMS:
                    raise _refused(tool, "items", MAX_ITEMS, items, "nested values")
            if isinstance(value, dict):
                for key, item in value.items():
                    chars += len(key) if isinstance(key, str) else 0
                    pending.append(item)
            else:
                pending.extend(value)
        if chars > MAX_CHARS:
            raise _refused(tool, "size", MAX_CHARS, chars, "characters of text")


def _refused(tool: str, limit: str, bound: int, found: int, what: str) -> InvalidArgumentError:
    if limit != "keys":
        what = f"more than {bound} {what}"
    return InvalidArgumentError(
        f"{tool}: the call has {what}; the bound is {bound} ({limit})",
        hint=f"send only the arguments {tool} takes (tools/list shows its input schema)",
        details={"limit": limit, "max": bound, "found_at_least": found},
    )
