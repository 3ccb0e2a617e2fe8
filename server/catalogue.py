"""The agent tool catalogue: names, argument and result models, and the router table.

Names and argument names are the contract (DESIGN.md, MCP tools). Argument models forbid
unknown keys and coerce nothing, so a wrong type is an INVALID_ARGUMENT, not a guess. Schemas are
kept lean (no per-field titles): an agent pays for `tools/list` in context on every session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp_types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from enforcer.phases import Phase

from .context import CallContext

__all__ = ["ALL_PHASES", "TOOLS", "ToolSpec", "tool_table"]

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


TaskId = Annotated[
    StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="task id")
]
PhaseName = Literal[
    "STRATEGIZE", "SPEC", "PLAN", "THINK", "IMPLEMENT", "VERIFY", "REVIEW", "PR", "MONITOR", "DONE"
]
ArtifactName = Annotated[StrictStr, Field(min_length=1, max_length=128, description="e.g. spec.md")]


# Optional on every tool that writes to a task: a write that presents the token of a lease that
# is no longer the current one (broken, expired and re-taken, released) is refused as STALE_TOKEN,
# so an agent that lost its lease in between never writes over another agent's work unawares.
FencingToken = Annotated[
    StrictInt, Field(ge=1, description="your lease's token: refused (STALE_TOKEN) once replaced")
]


class NoArgs(Args):
    pass


class TaskStartArgs(Args):
    title: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    task: TaskId | None = None


class TaskArgs(Args):
    task: TaskId


class TaskListArgs(Args):
    phase: PhaseName | None = None


class LeaseAcquireArgs(Args):
    task: TaskId
    ttl_s: Annotated[StrictInt, Field(ge=1, le=86_400)] | None = None


class TaskWriteArgs(Args):
    task: TaskId
    fencing_token: FencingToken | None = None


class EvidencePutArgs(Args):
    task: TaskId
    name: ArtifactName
    content: Annotated[StrictStr, Field(max_length=2 * 1024 * 1024)]
    fencing_token: FencingToken | None = None


class EvidenceListArgs(Args):
    task: TaskId
    phase: PhaseName | None = None


class EvidenceReadArgs(Args):
    task: TaskId
    phase: PhaseName
    name: ArtifactName


class PromptAttestArgs(Args):
    task: TaskId
    prompt: Annotated[StrictStr, Field(max_length=256 * 1024)]
    fencing_token: FencingToken | None = None


class PhaseAdvanceArgs(Args):
    task: TaskId
    to: PhaseName | None = None
    fencing_token: FencingToken | None = None


class PhaseBacktrackArgs(Args):
    task: TaskId
    to: PhaseName
    reason: Annotated[StrictStr, Field(min_length=1, max_length=2000)]
    fencing_token: FencingToken | None = None


class LedgerTailArgs(Args):
    limit: Annotated[StrictInt, Field(ge=1, le=200)] = 20
    task: TaskId | None = None


class TaskStatusResult(Result):
    task: str
    title: str
    phase: str
    epoch: int
    lease: dict[str, Any] | None
    gate: dict[str, Any]
    drift: str | None
    next_phase: str | None
    hints: list[str]
    tools_allowed: list[str]


class TaskListResult(Result):
    tasks: list[dict[str, Any]]


class LeaseResult(Result):
    task: str
    phase: str
    holder: str | None = None
    fencing_token: int | None = None
    expires_at: str | None = None


class EvidenceResult(Result):
    name: str
    phase: str
    sha256: str
    size: int
    valid: bool
    problems: list[str]


class EvidenceListResult(Result):
    evidence: list[dict[str, Any]]


class EvidenceReadResult(Result):
    record: dict[str, Any]
    content: str


class AttestResult(Result):
    status: Literal["baseline", "match", "drift"]
    sha256: str
    severity: str | None
    blocks_advance: bool


class VerifyResult(Result):
    results: dict[str, Any]
    passed: bool
    problems: list[str]


class LedgerTailResult(Result):
    entries: list[dict[str, Any]]


class LedgerVerifyResult(Result):
    ok: bool


class ControlsResult(Result):
    frozen: bool
    promotions_paused: bool


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
_LIVE = ALL_PHASES - {Phase.DONE}


def _spec(
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
        phases = ALL_PHASES if read_only else _LIVE
    return ToolSpec(name, description, args, result, role, phases, read_only, name, **flags)


_EARLY = frozenset({Phase.IMPLEMENT, Phase.VERIFY})

TOOLS: tuple[ToolSpec, ...] = (
    _spec(
        "task_start",
        "Create a task at STRATEGIZE (id generated if absent) and take its lease.",
        TaskStartArgs,
        TaskStatusResult,
        "operator",
        ALL_PHASES,  # it names no existing task, so no phase limits it
        creates_task=True,
    ),
    _spec(
        "task_status",
        "Phase, epoch, lease, gate status with what is missing, tools allowed now, drift.",
        TaskArgs,
        TaskStatusResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    _spec(
        "task_list",
        "Tasks with phase and lease holder.",
        TaskListArgs,
        TaskListResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    _spec(
        "lease_acquire",
        "Take the lease on (task, current phase); returns the fencing token.",
        LeaseAcquireArgs,
        LeaseResult,
        "operator",
        idempotent=True,
    ),
    _spec(
        "lease_renew",
        "Extend your unexpired lease; after expiry call lease_acquire.",
        LeaseAcquireArgs,
        LeaseResult,
        "operator",
        idempotent=True,
    ),
    _spec(
        "lease_release",
        "Release your lease (hands the task to another agent). Idempotent.",
        TaskArgs,
        LeaseResult,
        "operator",
        idempotent=True,
    ),
    _spec(
        "evidence_put",
        "Write an artifact for the current phase; returns sha256 and the content"
        " check. task_status hints say what each gate needs.",
        EvidencePutArgs,
        EvidenceResult,
        "operator",
    ),
    _spec(
        "evidence_list",
        "Artifacts of a task (optionally one phase).",
        EvidenceListArgs,
        EvidenceListResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    _spec(
        "evidence_read",
        "Read one artifact.",
        EvidenceReadArgs,
        EvidenceReadResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    _spec(
        "prompt_attest",
        "Report the prompt/header you work under; returns baseline, match or drift.",
        PromptAttestArgs,
        AttestResult,
        "operator",
    ),
    _spec(
        "phase_advance",
        "Move to the next phase if its gate passes (one step at a time).",
        PhaseAdvanceArgs,
        TaskStatusResult,
        "operator",
    ),
    _spec(
        "phase_backtrack",
        "Move back to an earlier phase with a reason; raises the epoch, so"
        " later gates need fresh evidence.",
        PhaseBacktrackArgs,
        TaskStatusResult,
        "operator",
        destructive=True,
    ),
    _spec(
        "verify_run",
        "Run the configured test command on the current git_diff.patch; writes"
        " server-produced test_results.json and build_output.log.",
        TaskWriteArgs,
        VerifyResult,
        "operator",
        _EARLY,
    ),
    _spec(
        "ledger_tail",
        "Recent ledger entries (of one task).",
        LedgerTailArgs,
        LedgerTailResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    _spec(
        "ledger_verify",
        "Verify the ledger chain and checkpoints.",
        NoArgs,
        LedgerVerifyResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    _spec(
        "controls_status",
        "Promotion pause and global freeze state.",
        NoArgs,
        ControlsResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
)


def tool_table(overrides: Mapping[str, Sequence[str]] | None = None) -> dict[str, ToolSpec]:
    """The router table: DESIGN.md's defaults with per-tool phase overrides from configuration."""
    table = {t.name: t for t in TOOLS}
    for name, phases in (overrides or {}).items():
        if name not in table:
            raise ValueError(f"[tools] names unknown tool {name!r}")
        spec = table[name]
        table[name] = ToolSpec(
            spec.name,
            spec.description,
            spec.args,
            spec.result,
            spec.role,
            frozenset(Phase(p) for p in phases),
            spec.read_only,
            spec.handler_name,
            spec.destructive,
            spec.idempotent,
            spec.creates_task,
        )
    return table
