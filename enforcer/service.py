"""The enforcer: the one facade `server/` holds, composing the process services.

Each service serves one noun (tasks, transitions, evidence, verification runs, leases,
attestation, controls, audit; the governed modules behind their own facade, `.modules`; the
policy's approval queue and exceptions, `.approvals` and `.exceptions`) over
one shared unit of work (`process.work.Work`): every mutating
call is one store transaction, so a refused call changes nothing. The MCP server, the CLI and
the web page all call this facade; none re-implements its rules.

    enforcer = Enforcer(runtime)
    me = Caller(actor="claude", instance="pid-42")
    task = await enforcer.task_start(me, "Fix the parser")
    await enforcer.evidence_put(me, task.task.task, "strategy.md", STRATEGY_MARKDOWN)
    await enforcer.phase_advance(me, task.task.task)
"""

from __future__ import annotations

from typing import Any

from .ledger.entries import LedgerEntry
from .ledger.ops import Record
from .model import Caller, EvidenceRecord, LeaseView
from .modules.policy_hook import PolicyHook
from .modules.service import Modules
from .phases import Phase
from .policy import Approvals, Exceptions, Policy, PolicySource
from .process.attestation import Attestations, AttestResult
from .process.attesting import Attesting
from .process.audit import Audit
from .process.controls import Controls
from .process.evidence import Evidence
from .process.evidence_files import EvidenceFiles
from .process.leases import Leases
from .process.leasing import Leasing
from .process.phase_gate import PhaseGate
from .process.tasks import StatusReport, Tasks
from .process.transitions import Transitions
from .process.verify_runs import VerifyRuns
from .process.work import Work
from .runtime import MIGRATIONS, Runtime

__all__ = ["Enforcer", "StatusReport"]


class Enforcer:
    """Every verb of the domain, by name; each delegates to the service of its noun."""

    def __init__(self, runtime: Runtime, policy: PolicyHook | None = None) -> None:
        self.rt = runtime
        self.store = runtime.store
        self.ledger = runtime.ledger
        self.clock = runtime.clock
        self.config = runtime.config
        self.files = EvidenceFiles(runtime.paths)
        self.files.sweep_staging()
        self.leases = Leases(runtime.config.leases.ttl_s)
        self.attestations = Attestations(runtime.config.error_phases())
        work = Work(runtime.store, runtime.ledger, runtime.clock, runtime.config)
        self.gate = PhaseGate(runtime.config)
        self.tasks = Tasks(work, self.gate, self.leases)
        self.transitions = Transitions(work, self.gate, self.leases, self.attestations, self.tasks)
        self.evidence = Evidence(work, self.files, self.leases)
        self.verify_runs = VerifyRuns(work, self.evidence, self.leases)
        self.leasing = Leasing(work, self.leases)
        self.attesting = Attesting(work, self.leases, self.attestations)
        self.control = Controls(work)
        self.audit = Audit(work, MIGRATIONS)
        # The policy over phasegate.toml's [policy], re-read from its file on each decision.
        self.policy = Policy(PolicySource(runtime.config.policy, runtime.config_file), self.clock)
        # The governed modules' lifecycle has its own facade (enforcer/modules/service.py).
        self.modules = Modules(
            work, runtime.paths, self.leases, runtime.signer, policy or self.policy
        )
        self.approvals = Approvals(work, self.policy)
        self.exceptions = Exceptions(work, self.policy)

    def required(self, phase: Phase) -> tuple[str, ...]:
        """The artifacts the gate of `phase` requires."""
        return self.gate.required(phase)

    # tasks and transitions
    async def task_start(self, caller: Caller, title: str, task: str | None = None) -> StatusReport:
        return await self.tasks.start(caller, title, task)

    async def task_status(self, task: str) -> StatusReport:
        return await self.tasks.status(task)

    async def task_list(self, phase: str | None = None) -> list[dict[str, Any]]:
        return await self.tasks.all(phase)

    async def task_board(self) -> list[dict[str, Any]]:
        """Every task with holder, lease expiry, drift and last activity (for the board)."""
        return await self.tasks.board()

    async def phase_advance(
        self, caller: Caller, task: str, to: str | None = None, token: int | None = None
    ) -> StatusReport:
        return await self.transitions.advance(caller, task, to, token)

    async def phase_backtrack(
        self, caller: Caller, task: str, to: str, reason: str, token: int | None = None
    ) -> StatusReport:
        return await self.transitions.backtrack(caller, task, to, reason, token)

    # evidence and verification
    async def evidence_put(
        self, caller: Caller, task: str, name: str, content: str, token: int | None = None
    ) -> EvidenceRecord:
        return await self.evidence.put(caller, task, name, content, token)

    async def evidence_list(self, task: str, phase: str | None = None) -> list[EvidenceRecord]:
        return await self.evidence.list_for(task, phase)

    async def evidence_read(self, task: str, phase: str, name: str) -> tuple[EvidenceRecord, bytes]:
        return await self.evidence.read(task, phase, name)

    async def refresh_evidence_copies(self) -> int:
        return await self.evidence.refresh_copies()

    async def verify_run(
        self, caller: Caller, task: str, token: int | None = None
    ) -> dict[str, Any]:
        return await self.verify_runs.run(caller, task, token)

    # leases
    async def lease_acquire(self, caller: Caller, task: str, ttl_s: int | None = None) -> LeaseView:
        return await self.leasing.acquire(caller, task, ttl_s)

    async def lease_renew(self, caller: Caller, task: str, ttl_s: int | None = None) -> LeaseView:
        return await self.leasing.renew(caller, task, ttl_s)

    async def lease_release(self, caller: Caller, task: str) -> dict[str, Any]:
        return await self.leasing.release(caller, task)

    async def lease_break(
        self, caller: Caller, task: str, reason: str, phase: str | None = None
    ) -> dict[str, Any]:
        return await self.leasing.break_(caller, task, reason, phase)

    # attestation
    async def prompt_attest(
        self, caller: Caller, task: str, prompt: str, token: int | None = None
    ) -> AttestResult:
        return await self.attesting.attest(caller, task, prompt, token)

    async def prompt_rebaseline(
        self,
        caller: Caller,
        task: str,
        reason: str,
        prompt: str | None = None,
        phase: str | None = None,
    ) -> dict[str, Any]:
        return await self.attesting.rebaseline(caller, task, reason, prompt, phase)

    # controls
    async def route_facts(self, task: str | None) -> tuple[Phase | None, bool]:
        return await self.control.route_facts(task)

    async def controls(self) -> dict[str, Any]:
        return await self.control.status()

    async def set_control(
        self, caller: Caller, control: str, active: bool, reason: str
    ) -> dict[str, Any]:
        return await self.control.set(caller, control, active, reason)

    # audit
    async def counters(self) -> dict[str, int]:
        return await self.audit.counters()

    async def record(self, caller: Caller, record: Record) -> LedgerEntry:
        return await self.audit.record(caller, record)

    async def record_refusal(self, caller: Caller, record: Record) -> None:
        await self.audit.refused(caller, record)

    async def flush_refusals(self, *, everything: bool = False) -> None:
        await self.audit.flush_refusals(everything=everything)

    async def replay_equals_store(self) -> bool:
        return await self.audit.replay_equals_store()
