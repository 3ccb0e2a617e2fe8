"""Transitions: a task moves forward one phase at a time through its gate, or back with a reason.

A forward move checks, in one transaction: not DONE, not a skip (refused and ledgered as
`phase.skip_blocked`), the lease, the phase's evidence gate (`evidence.gate_failed`), and the
prompt attestation (drift of ERROR severity blocks). A backtrack raises the epoch, so evidence of
the older epoch no longer satisfies a gate. Both hand the caller the lease of the phase moved to.

    report = await transitions.advance(caller, "T1")           # to the next phase
    report = await transitions.backtrack(caller, "T1", "SPEC", "the spec missed a case")
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import (
    EvidenceInvalidError,
    EvidenceMissingError,
    InvalidArgumentError,
    OutOfPhaseError,
    PhaseSkipError,
    PromptDriftError,
)
from ..ledger.ops import Ops, Record, Refused
from ..model import Caller
from ..phases import Move, Phase, classify
from ..store import Tx
from .attestation import Attestations
from .gates import RESERVED_SERVER_ARTIFACTS, shape_hint
from .instruments import tracer
from .leases import Leases
from .phase_gate import PhaseGate
from .tasks import StatusReport, Tasks
from .work import MAX_REASON, Work, phase_arg, task_row, text_arg

__all__ = ["Transitions"]


class Transitions:
    def __init__(
        self,
        work: Work,
        gate: PhaseGate,
        leases: Leases,
        attestations: Attestations,
        tasks: Tasks,
    ) -> None:
        self.work = work
        self.gate = gate
        self.leases = leases
        self.attestations = attestations
        self.tasks = tasks

    async def advance(
        self, caller: Caller, task: str, to: str | None = None, token: int | None = None
    ) -> StatusReport:
        with tracer.start_as_current_span(
            "agent.state.transition",
            attributes={"phasegate.task.id": task, "phasegate.move": "advance"},
        ) as span:
            report = await self._advance(caller, task, to, token)
            span.set_attribute("phasegate.phase", report.task.phase.value)
            return report

    async def _advance(
        self, caller: Caller, task: str, to: str | None, token: int | None
    ) -> StatusReport:
        def run(tx: Tx, ops: Ops) -> StatusReport:
            view = task_row(tx, task)
            if view.phase is Phase.DONE:
                raise OutOfPhaseError(
                    f"{task} is DONE; nothing moves out of DONE",
                    hint="start a new task with task_start",
                )
            target = view.phase.next if to is None else phase_arg(to)
            assert target is not None
            move = classify(view.phase, target)
            if move is Move.BACKTRACK or move is Move.STAY:
                raise InvalidArgumentError(
                    f"{target.value} is not ahead of {view.phase.value}",
                    hint="use phase_backtrack with a reason to go back",
                    details={"argument": "to", "phase": view.phase.value},
                )
            held = self.leases.hold(tx, ops, task, view.phase.value, token)
            if move is Move.SKIP:
                nxt = view.phase.next
                assert nxt is not None
                raise Refused(
                    PhaseSkipError(
                        f"{view.phase.value} -> {target.value} skips"
                        f" {target.position - view.phase.position - 1} phase(s)",
                        hint=f"advance one step at a time: the next phase is {nxt.value}",
                        details={"phase": view.phase.value, "to": target.value, "next": nxt.value},
                    ),
                    Record(
                        "phase.skip_blocked",
                        {"task": task, "phase": view.phase.value},
                        {"from": view.phase.value, "to": target.value},
                    ),
                )
            gate = self.gate.check(tx, view)
            if not gate.passed:
                missing = any(p.code == "EVIDENCE_MISSING" for p in gate.problems)
                first = gate.problems[0]
                cls = EvidenceMissingError if missing else EvidenceInvalidError
                raise Refused(
                    cls(
                        f"the {view.phase.value} gate does not pass: "
                        + "; ".join(f"{p.artifact}: {p.reason}" for p in gate.problems),
                        hint=f"{first.artifact}: expected {shape_hint(first.artifact)}"
                        + (
                            " (call verify_run)"
                            if first.artifact in RESERVED_SERVER_ARTIFACTS
                            else " (write it with evidence_put)"
                        ),
                        details={"gate": gate.as_dict()},
                    ),
                    Record(
                        "evidence.gate_failed",
                        {"task": task, "phase": view.phase.value},
                        {"epoch": view.epoch, "problems": [p.as_dict() for p in gate.problems]},
                    ),
                )
            severity = self.attestations.drift(tx, task, view.phase.value)
            if severity == "ERROR":
                raise Refused(
                    PromptDriftError(
                        f"prompt drift in {view.phase.value} blocks the advance",
                        hint="attest under the baseline prompt is not enough: a supervisor must"
                        " re-baseline (phasegate attest rebaseline) with a reason",
                        details={"phase": view.phase.value},
                    ),
                    Record(
                        "phase.advance_blocked",
                        {"task": task, "phase": view.phase.value},
                        {"reason": "prompt_drift"},
                    ),
                )
            handed, lease = self.leases.hand_over(
                tx, ops, held, None if target is Phase.DONE else target.value
            )
            ops.emit(
                tx,
                Record(
                    "phase.advanced",
                    {"task": task, "phase": view.phase.value},
                    {"from": view.phase.value, "to": target.value, "epoch": view.epoch, **handed},
                    {"evidence": list(gate.digests)},
                ),
            )
            # The projection now holds exactly this: no need to read it back.
            drift = self.attestations.drift(tx, task, target.value)
            return self.tasks.report(tx, ops.ts, replace(view, phase=target), lease, drift)

        return await self.work.transact(caller, run)

    async def backtrack(
        self, caller: Caller, task: str, to: str, reason: str, token: int | None = None
    ) -> StatusReport:
        with tracer.start_as_current_span(
            "agent.state.transition",
            attributes={"phasegate.task.id": task, "phasegate.move": "backtrack"},
        ) as span:
            report = await self._backtrack(caller, task, to, reason, token)
            span.set_attribute("phasegate.phase", report.task.phase.value)
            return report

    async def _backtrack(
        self, caller: Caller, task: str, to: str, reason: str, token: int | None
    ) -> StatusReport:
        target = phase_arg(to)
        reason = text_arg(reason, "reason", MAX_REASON)

        def run(tx: Tx, ops: Ops) -> StatusReport:
            view = task_row(tx, task)
            if classify(view.phase, target) is not Move.BACKTRACK:
                raise InvalidArgumentError(
                    f"{target.value} is not before {view.phase.value}"
                    + (" (DONE is terminal)" if view.phase is Phase.DONE else ""),
                    hint="phase_backtrack goes to an earlier phase; phase_advance goes on",
                    details={"argument": "to", "phase": view.phase.value},
                )
            held = self.leases.hold(tx, ops, task, view.phase.value, token)
            handed, lease = self.leases.hand_over(tx, ops, held, target.value)
            ops.emit(
                tx,
                Record(
                    "phase.backtracked",
                    {"task": task, "phase": view.phase.value},
                    {
                        "from": view.phase.value,
                        "to": target.value,
                        "epoch": view.epoch + 1,
                        "reason": reason,
                        **handed,
                    },
                ),
            )
            moved = replace(view, phase=target, epoch=view.epoch + 1)
            drift = self.attestations.drift(tx, task, target.value)
            return self.tasks.report(tx, ops.ts, moved, lease, drift)

        return await self.work.transact(caller, run)
