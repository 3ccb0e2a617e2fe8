"""What every tool of the catalogue is made of: the lean argument and result bases, the
row of the router table (`ToolSpec`) and `spec`, which builds one with the default phases.

Shared by the process tools (`catalogue.py`) and the module lifecycle tools
(`module_catalogue.py`), so both follow one schema rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from mcp_types import CallToolResult
from pydantic import BaseModel, ConfigDict

from enforcer.phases import Phase

from .context import CallContext

__all__ = [
    "ALL_PHASES",
    "LIVE",
    "Args",
    "Handler",
    "Result",
    "Role",
    "ToolSpec",
    "input_schema",
    "spec",
]

ALL_PHASES: frozenset[Phase] = frozenset(Phase)


def _lean(schema: dict[str, Any]) -> None:
    """Smaller schemas that validate faster: no titles, no `additionalProperties: true` (the
    default). `X | None` stays pydantic's `anyOf` of two single-type branches: a `type` array
    is less portable (clients that map schemas onto a single-type dialect reject it)."""
    schema.pop("title", None)
    if schema.get("additionalProperties") is True:
        del schema["additionalProperties"]
    for key in ("properties", "$defs"):
        for sub in schema.get(key, {}).values():
            _lean(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _lean(schema[key])
    for sub in schema.get("anyOf", []):
        _lean(sub)


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_lean)


def _lean_result(schema: dict[str, Any]) -> None:
    """Result schemas also drop per-item schemas of lists of plain values: clients validate
    every result against the output schema, and each item costs a validator descent (about
    0.2 ms per task_status call for its two lists of names), for no safety the type gives."""
    _lean(schema)
    for prop in schema.get("properties", {}).values():
        items = prop.get("items")
        if isinstance(items, dict) and set(items) == {"type"} and items["type"] != "object":
            del prop["items"]


class Result(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_lean_result)


# A handler returns its payload, or a finished result it rendered earlier (Router.rendered).
Handler = Callable[[CallContext, Any], Awaitable[dict[str, Any] | CallToolResult]]
Role = Literal["viewer", "operator", "admin"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One row of the router table."""

    name: str
    description: str
    args: type[Args]
    result: type[Result]
    role: Role
    phases: frozenset[Phase]
    read_only: bool
    handler_name: str
    destructive: bool = False
    idempotent: bool = False
    creates_task: bool = False  # task_start: the one mutating call that names no existing task

    @property
    def names_task(self) -> bool:
        return "task" in self.args.model_fields


# DONE is terminal: a tool that changes a task has nothing to do there.
LIVE = ALL_PHASES - {Phase.DONE}


def spec(
    name: str,
    description: str,
    args: type[Args],
    result: type[Result],
    role: Role,
    phases: frozenset[Phase] | None = None,
    *,
    read_only: bool = False,
    **flags: bool,
) -> ToolSpec:
    """Default phases: every phase for read-only tools, every phase but DONE otherwise."""
    if phases is None:
        phases = ALL_PHASES if read_only else LIVE
    return ToolSpec(name, description, args, result, role, phases, read_only, name, **flags)


def input_schema(args: type[Args]) -> dict[str, Any]:
    """The arguments' schema as `tools/list` advertises it: the lean model schema without
    `additionalProperties`, and with an
    optional argument shown as its one type (omitting it is how a client leaves it out) rather
    than pydantic's anyOf with null and a null default — the same arguments, fewer bytes in every
    agent's context. The router still validates with the model itself."""
    schema = args.model_json_schema()
    # Unknown arguments are refused by the router (INVALID_ARGUMENT, naming them) whatever the
    # schema says; advertising it on every tool costs 28 bytes each.
    schema.pop("additionalProperties", None)
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if (
            isinstance(options, list)
            and len(options) == 2
            and {"type": "null"} in options
            and prop.get("default", "") is None
        ):
            other = options[0] if options[1] == {"type": "null"} else options[1]
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            schema["properties"][name] = {**other, **rest}
    return schema
