"""The records the enforcer hands out: callers, tasks, leases, evidence, reports.

All immutable; `as_dict` gives the JSON shape the MCP tools and the CLI return.
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidArgumentError
from .phases import Phase

__all__ = [
    "TASK_ID",
    "Caller",
    "EvidenceRecord",
    "GateProblem",
    "GateReport",
    "LeaseView",
    "Role",
    "TaskView",
    "check_task_id",
    "lease_token_var",
    "ledger_seq_var",
    "trace_id_var",
]

Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}
# Always `fullmatch`: with `match`, "$" also matches before a final newline ("T1\n").
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# The trace id of the call in progress; the server sets it, ledger entries carry it in refs.
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "phasegate_trace_id", default=None
)
# The fencing token the current call's operation ran under; spans carry it.
lease_token_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "phasegate_lease_token", default=None
)
# The seq of the last ledger entry the current call committed; spans carry it.
ledger_seq_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "phasegate_ledger_seq", default=None
)


def check_task_id(task: object) -> str:
    if not isinstance(task, str) or not TASK_ID.fullmatch(task):
        raise InvalidArgumentError(
            "task id must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
            hint="use the id task_start returned, or task_list to find it",
            details={"argument": "task"},
        )
    return task


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: holder identity is actor + instance, never an MCP session id."""

    actor: str
    role: Role = "operator"
    instance: str = "default"
    pid: int | None = None
    host: str | None = None

    @property
    def holder(self) -> str:
        return f"{self.actor}/{self.instance}"

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


@dataclass(frozen=True, slots=True)
class LeaseView:
    task: str
    phase: str
    holder: str | None
    actor: str | None
    instance: str | None
    lease_id: str | None
    fencing_token: int
    expires_at: str | None
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "phase": self.phase,
            "holder": self.holder,
            "actor": self.actor,
            "instance": self.instance,
            "lease_id": self.lease_id,
            "fencing_token": self.fencing_token,
            "expires_at": self.expires_at,
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    task: str
    phase: str
    name: str
    epoch: int
    sha256: str
    size: int
    producer: Literal["agent", "server"]
    subject_sha256: str | None
    valid: bool
    problems: tuple[str, ...]
    seq: int
    ts: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "phase": self.phase,
            "name": self.name,
            "epoch": self.epoch,
            "sha256": self.sha256,
            "size": self.size,
            "producer": self.producer,
            "subject_sha256": self.subject_sha256,
            "valid": self.valid,
            "problems": list(self.problems),
            "seq": self.seq,
            "ts": self.ts,
        }


@dataclass(frozen=True, slots=True)
class GateProblem:
    artifact: str
    code: Literal["EVIDENCE_MISSING", "EVIDENCE_INVALID"]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "code": self.code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class GateReport:
    phase: str
    epoch: int
    required: tuple[str, ...]
    problems: tuple[GateProblem, ...] = field(default_factory=tuple)
    digests: tuple[str, ...] = field(default_factory=tuple)  # sha256 of each recorded artifact

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "epoch": self.epoch,
            "required": list(self.required),
            "passed": self.passed,
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass(frozen=True, slots=True)
class TaskView:
    task: str
    title: str
    phase: Phase
    epoch: int
    created_at: str
    created_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "title": self.title,
            "phase": self.phase.value,
            "epoch": self.epoch,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }
