"""The agent tool catalogue: names, argument and result models, and the router table.

Names and argument names are the contract (DESIGN.md, MCP tools). Argument models forbid
unknown keys and coerce nothing, so a wrong type is an INVALID_ARGUMENT, not a guess. Schemas are
kept lean (no per-field titles): an agent pays for `tools/list` in context on every session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, StrictStr

from enforcer.phases import Phase

from .module_catalogue import MODULE_TOOLS
from .tool_models import ALL_PHASES, Args, Handler, Result, ToolSpec
from .tool_models import spec as _spec

__all__ = ["ALL_PHASES", "TOOLS", "Handler", "ToolSpec", "tool_table"]

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


_EARLY = frozenset({Phase.IMPLEMENT, Phase.VERIFY})

PROCESS_TOOLS: tuple[ToolSpec, ...] = (
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


TOOLS: tuple[ToolSpec, ...] = (*PROCESS_TOOLS, *MODULE_TOOLS)


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
