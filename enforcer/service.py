"""The enforcer: one async API over tasks, phases, evidence, leases and attestation.

Each mutating method runs as one store transaction — lease check, rule checks, ledger appends
and projection updates commit together — so a refused call changes nothing (only the record of
the refusal, where the process asks for one, is appended afterwards). The MCP server and the CLI
both call this class; neither re-implements its rules.

    enforcer = Enforcer(runtime)
    me = Caller(actor="claude", instance="pid-42")
    task = await enforcer.task_start(me, "Fix the parser")
    await enforcer.evidence_put(me, task.task, "strategy.md", STRATEGY_MARKDOWN)
    await enforcer.phase_advance(me, task.task)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from . import projection
from .attestation import Attestations, AttestResult, prompt_sha256
from .clock import rfc3339
from .errors import (
    ConflictError,
    EvidenceInvalidError,
    EvidenceMissingError,
    ForbiddenError,
    InvalidArgumentError,
    NotFoundError,
    OutOfPhaseError,
    PhaseSkipError,
    PromptDriftError,
)
from .evidence import EvidenceFiles, check_name
from .gates import DEFAULT_GATES, RESERVED_SERVER_ARTIFACTS, check_artifact, shape_hint
from .instruments import count_committed, tracer
from .leases import LeaseRow, Leases
from .ledger import LedgerEntry
from .model import (
    Caller,
    EvidenceRecord,
    GateProblem,
    GateReport,
    LeaseView,
    TaskView,
    check_task_id,
    lease_token_var,
    ledger_seq_var,
)
from .ops import Ops, Record, Refused
from .phases import Move, Phase, classify
from .runtime import MIGRATIONS, Runtime
from .store import Tx
from .verification import run_verification

__all__ = ["Enforcer", "StatusReport"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_EVIDENCE_BYTES = 2 * 1024 * 1024
MAX_TITLE = 200
MAX_REASON = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text_arg(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string", details={"argument": name})
    if len(value) > limit:
        raise InvalidArgumentError(
            f"{name} is longer than {limit} characters", details={"argument": name}
        )
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise InvalidArgumentError(
            f"{name} contains control characters", details={"argument": name}
        )
    return value


def _phase_arg(value: object, name: str = "to") -> Phase:
    try:
        return Phase(value.upper()) if isinstance(value, str) else Phase(str(value))
    except ValueError as e:
        raise InvalidArgumentError(
            f"{value!r} is not a phase",
            hint="phases: " + " ".join(p.value for p in Phase),
            details={"argument": name},
        ) from e


@dataclass(frozen=True, slots=True)
class StatusReport:
    task: TaskView
    lease: LeaseView | None
    gate: GateReport
    drift: str | None
    next_phase: Phase | None

    def as_dict(self) -> dict[str, Any]:
        hints = [
            f"{p.artifact}: {p.reason} — expected {shape_hint(p.artifact)}"
            for p in self.gate.problems
        ]
        # The lease and the gate are about this task's current phase and epoch, which the
        # status carries once at the top: agents pay for every repeated byte in context.
        lease = self.lease
        return {
            **self.task.as_dict(),
            "lease": None
            if lease is None
            else {
                "holder": lease.holder,
                "fencing_token": lease.fencing_token,
                "expires_at": lease.expires_at,
                "active": lease.active,
            },
            "gate": {
                "required": list(self.gate.required),
                "passed": self.gate.passed,
                "problems": [p.as_dict() for p in self.gate.problems],
            },
            "drift": self.drift,
            "next_phase": None if self.next_phase is None else self.next_phase.value,
            "hints": hints,
        }


_STATUS_CACHE_SIZE = 1024


def _task_view(row: tuple[Any, ...]) -> TaskView:
    """A task from the columns task, title, phase, epoch, created_at, created_by (first six)."""
    return TaskView(row[0], row[1], Phase(row[2]), int(row[3]), row[4], row[5])


def _no_task(task: str) -> NotFoundError:
    return NotFoundError(
        f"no task {task!r}",
        hint="task_list shows the tasks; task_start creates one",
        details={"task": task},
    )


class _GateRow(NamedTuple):
    """The columns of an evidence record a gate reads."""

    name: str
    epoch: int
    sha256: str
    valid: int
    problems: str  # a JSON list
    producer: str
    subject_sha256: str | None


class Enforcer:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.store = runtime.store
        self.ledger = runtime.ledger
        self.clock = runtime.clock
        self.config = runtime.config
        self.files = EvidenceFiles(runtime.paths)
        self.files.sweep_staging()
        self.leases = Leases(runtime.config.leases.ttl_s)
        self.attestations = Attestations(runtime.config.error_phases())
        # task -> (computed at, data_version read before, valid until, report); see task_status
        self._status_cache: dict[str, tuple[datetime, Any, datetime | None, StatusReport]] = {}

    # ----------------------------------------------------------------- plumbing

    async def _transact(self, caller: Caller, fn: Callable[[Tx, Ops], T]) -> T:
        """Run `fn` in one write transaction; on Refused, record the refusal and raise it."""
        ops = Ops(ts=rfc3339(self.clock.now()), caller=caller)
        try:
            result = await self.store.write(lambda tx: fn(tx, ops))
        except Refused as refused:
            records = refused.records
            if records:
                rec = Ops(ts=ops.ts, caller=caller)
                await self.store.write(lambda tx: [rec.emit(tx, r) for r in records])
                self._committed(rec)
            raise refused.error from None
        self._committed(ops)
        await self.ledger.maybe_checkpoint()
        return result

    def _committed(self, ops: Ops) -> None:
        if ops.lease_token is not None:
            lease_token_var.set(ops.lease_token)
        if ops.last_seq is not None:
            self.ledger.observe(ops.last_seq)
            ledger_seq_var.set(ops.last_seq)
            count_committed(ops.entries)

    @staticmethod
    def _task_row(tx: Tx, task: str) -> TaskView:
        row = tx.one(
            "SELECT task, title, phase, epoch, created_at, created_by FROM tasks WHERE task = ?",
            (check_task_id(task),),
        )
        if row is None:
            raise _no_task(task)
        return _task_view(row)

    def required(self, phase: Phase) -> tuple[str, ...]:
        gate = self.config.gates.get(phase)
        return tuple(gate.artifacts) if gate is not None else DEFAULT_GATES.get(phase, ())

    def _require_server(self, phase: Phase) -> bool:
        gate = self.config.gates.get(phase)
        return True if gate is None else bool(gate.require_server_results)

    @staticmethod
    def _evidence(tx: Tx, task: str, phase: str, name: str) -> EvidenceRecord | None:
        row = tx.one(
            "SELECT task, phase, name, epoch, sha256, size, producer, subject_sha256, valid,"
            " problems, seq, ts FROM evidence WHERE task = ? AND phase = ? AND name = ?",
            (task, phase, name),
        )
        if row is None:
            return None
        return EvidenceRecord(
            row[0],
            row[1],
            row[2],
            int(row[3]),
            row[4],
            int(row[5]),
            row[6],
            row[7],
            bool(row[8]),
            tuple(json.loads(row[9])),
            int(row[10]),
            row[11],
        )

    def _gate(self, tx: Tx, task: TaskView) -> GateReport:
        phase = task.phase
        required = self.required(phase)
        problems: list[GateProblem] = []
        digests: list[str] = []
        found = (
            {
                r[0]: r
                for r in tx.all(
                    "SELECT name, epoch, sha256, valid, problems, producer, subject_sha256"
                    " FROM evidence WHERE task = ? AND phase = ?",
                    (task.task, phase.value),
                )
            }
            if required
            else {}
        )
        for name in required:
            rec = _GateRow(*found[name]) if name in found else None
            if rec is None:
                problems.append(GateProblem(name, "EVIDENCE_MISSING", "not recorded"))
                continue
            digests.append(rec.sha256)
            if rec.epoch != task.epoch:
                problems.append(
                    GateProblem(
                        name,
                        "EVIDENCE_MISSING",
                        f"recorded in epoch {rec.epoch}; the task is at epoch {task.epoch} after a"
                        " backtrack: record it again",
                    )
                )
                continue
            if not rec.valid:
                reasons = "; ".join(json.loads(rec.problems))
                problems.append(GateProblem(name, "EVIDENCE_INVALID", reasons))
                continue
            if (
                phase is Phase.VERIFY
                and name in RESERVED_SERVER_ARTIFACTS
                and self._require_server(phase)
            ):
                if rec.producer != "server":
                    problems.append(
                        GateProblem(
                            name,
                            "EVIDENCE_INVALID",
                            "written by the agent; only results produced by verify_run count",
                        )
                    )
                    continue
                diff = self._evidence(tx, task.task, Phase.IMPLEMENT.value, "git_diff.patch")
                if diff is None or rec.subject_sha256 != diff.sha256:
                    problems.append(
                        GateProblem(
                            name,
                            "EVIDENCE_INVALID",
                            "produced for a different diff than the current IMPLEMENT"
                            " git_diff.patch: call verify_run again",
                        )
                    )
        return GateReport(phase.value, task.epoch, required, tuple(problems), tuple(digests))

    # ----------------------------------------------------------------- tasks

    async def task_start(self, caller: Caller, title: str, task: str | None = None) -> StatusReport:
        title = _text_arg(title, "title", MAX_TITLE)
        task_id = (
            check_task_id(task)
            if task is not None
            else (f"T-{self.clock.now():%Y%m%d}-{secrets.token_hex(3)}")
        )

        def run(tx: Tx, ops: Ops) -> StatusReport:
            if tx.one("SELECT 1 FROM tasks WHERE task = ?", (task_id,)) is not None:
                raise ConflictError(
                    f"task {task_id} already exists",
                    hint="pick another id, or omit it to have one generated",
                    details={"task": task_id},
                )
            ops.emit(
                tx,
                Record(
                    "task.started",
                    {"task": task_id, "phase": "STRATEGIZE"},
                    {"title": title, "to": "STRATEGIZE", "epoch": 0},
                ),
            )
            self.leases.guard(tx, ops, task_id, Phase.STRATEGIZE.value)
            return self._status(tx, ops.ts, task_id)

        return await self._transact(caller, run)

    def _status(self, tx: Tx, now: str, task: str) -> StatusReport:
        # The task, its current lease and its drift in one read (task_status is the hot read).
        row = tx.one(
            "SELECT t.task, t.title, t.phase, t.epoch, t.created_at, t.created_by,"
            " l.task, l.phase, l.actor, l.instance, l.pid, l.host, l.lease_id, l.token,"
            " l.expires_at, a.drift, a.severity"
            " FROM tasks t"
            " LEFT JOIN leases l ON l.task = t.task AND l.phase = t.phase"
            " LEFT JOIN attestations a ON a.task = t.task AND a.phase = t.phase"
            " WHERE t.task = ?",
            (check_task_id(task),),
        )
        if row is None:
            raise _no_task(task)
        view = _task_view(row)
        lease = None if row[6] is None else LeaseRow(*row[6:15])
        drift = str(row[16]) if row[15] else None
        return self._report(tx, now, view, lease, drift)

    def _report(
        self, tx: Tx, now: str, view: TaskView, lease: LeaseRow | None, drift: str | None
    ) -> StatusReport:
        return StatusReport(
            task=view,
            lease=None if lease is None else lease.view(now),
            gate=self._gate(tx, view),
            drift=drift,
            next_phase=view.phase.next,
        )

    async def task_status(self, task: str) -> StatusReport:
        """The status of `task`, served from a small cache while the database is unchanged.

        A status is a function of the database and of the time (a lease ends when it expires).
        SQLite's ``data_version`` changes on the read connection whenever any other connection
        — this process's writer or another process — commits, so an entry is reused only while
        the version is the one read *before* the status was, and the time has not passed the
        lease's expiry (nor gone backwards)."""
        moment = self.clock.now()
        row = await self.store.peek_one("PRAGMA data_version")
        version = None if row is None else row[0]
        cached = self._status_cache.get(task)
        if cached is not None:
            at, seen, until, report = cached
            if seen == version and at <= moment and (until is None or moment < until):
                return report
        now = rfc3339(moment)
        report = await self.store.peek(lambda tx: self._status(tx, now, task))
        lease = report.lease
        until = (
            datetime.fromisoformat(lease.expires_at)
            if lease is not None and lease.active and lease.expires_at is not None
            else None
        )
        if len(self._status_cache) >= _STATUS_CACHE_SIZE:
            self._status_cache.pop(next(iter(self._status_cache)))
        self._status_cache[task] = (moment, version, until, report)
        return report

    async def task_list(self, phase: str | None = None) -> list[dict[str, Any]]:
        now = rfc3339(self.clock.now())
        where, params = (
            ("", ())
            if phase is None
            else (" WHERE t.phase = ?", (_phase_arg(phase, "phase").value,))
        )
        rows = await self.store.peek(
            lambda tx: tx.all(
                "SELECT t.task, t.title, t.phase, t.epoch, l.actor, l.instance, l.expires_at"
                " FROM tasks t LEFT JOIN leases l ON l.task = t.task AND l.phase = t.phase"
                + where
                + " ORDER BY t.created_at, t.task",
                params,
            )
        )
        return [
            {
                "task": r[0],
                "title": r[1],
                "phase": r[2],
                "epoch": r[3],
                "holder": f"{r[4]}/{r[5]}" if r[4] and r[6] and r[6] > now else None,
                "lease_expires_at": r[6] if r[4] else None,
            }
            for r in rows
        ]

    # ----------------------------------------------------------------- phases

    async def phase_advance(
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
            view = self._task_row(tx, task)
            if view.phase is Phase.DONE:
                raise OutOfPhaseError(
                    f"{task} is DONE; nothing moves out of DONE",
                    hint="start a new task with task_start",
                )
            target = view.phase.next if to is None else _phase_arg(to)
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
            gate = self._gate(tx, view)
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
            return self._report(tx, ops.ts, replace(view, phase=target), lease, drift)

        return await self._transact(caller, run)

    async def phase_backtrack(
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
        target = _phase_arg(to)
        reason = _text_arg(reason, "reason", MAX_REASON)

        def run(tx: Tx, ops: Ops) -> StatusReport:
            view = self._task_row(tx, task)
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
            return self._report(tx, ops.ts, moved, lease, drift)

        return await self._transact(caller, run)

    # ----------------------------------------------------------------- evidence

    async def evidence_put(
        self, caller: Caller, task: str, name: str, content: str, token: int | None = None
    ) -> EvidenceRecord:
        check_task_id(task)
        check_name(name)
        if not isinstance(content, str):
            raise InvalidArgumentError("content must be a string", details={"argument": "content"})
        data = content.encode("utf-8", "surrogatepass")
        if len(data) > MAX_EVIDENCE_BYTES:
            raise InvalidArgumentError(
                f"content is {len(data)} bytes; the limit is {MAX_EVIDENCE_BYTES}",
                details={"argument": "content"},
            )
        problems = check_artifact(name, data, self.config.review.thresholds)
        recs = await self._record(
            caller, task, None, [(name, data, problems)], "agent", None, token
        )
        return recs[0]

    async def _record(
        self,
        caller: Caller,
        task: str,
        phase: Phase | None,
        items: list[tuple[str, bytes, list[str]]],
        producer: str,
        subject: str | None,
        token: int | None,
        expect: tuple[str, int] | None = None,
    ) -> list[EvidenceRecord]:
        """Record artifacts in one transaction, into `phase` (default: the current phase).

        `expect` = (phase, epoch) the task must still be at: a long-running producer
        (verify_run) never files results into a phase the task has since left.
        """
        # Bytes first, then records: staged now, published by the recording unit once its checks
        # pass. The unit discards them itself when it refuses, so a call cancelled while its unit
        # waits for a group commit (the unit still runs later) never strands them.
        staged = [self.files.stage_blob(data) for _, data, _ in items]

        def run(tx: Tx, ops: Ops) -> list[EvidenceRecord]:
            try:
                view = self._task_row(tx, task)
                if view.phase is Phase.DONE:
                    raise OutOfPhaseError(f"{task} is DONE; it takes no more evidence")
                if expect is not None and (view.phase.value, view.epoch) != expect:
                    raise ConflictError(
                        f"{task} moved to {view.phase.value} (epoch {view.epoch}) while this ran",
                        hint="the result is discarded; run it again in the current phase",
                    )
                lease_token = self.leases.guard(tx, ops, task, view.phase.value, token)
                for blob in staged:
                    self.files.publish(blob)
            except BaseException:
                for blob in staged:
                    self.files.discard(blob)
                raise
            target = (phase or view.phase).value
            out = []
            for (name, data, problems), blob in zip(items, staged, strict=True):
                fields: dict[str, Any] = {
                    "name": name,
                    "sha256": blob.sha256,
                    "size": len(data),
                    "epoch": view.epoch,
                    "producer": producer,
                    "valid": not problems,
                    "problems": problems[:20],
                }
                if subject is not None:
                    fields["subject_sha256"] = subject
                ops.emit(
                    tx,
                    Record(
                        "evidence.recorded",
                        {"task": task, "phase": target},
                        fields,
                        {"lease_token": lease_token},
                    ),
                )
                rec = self._evidence(tx, task, target, name)
                assert rec is not None
                out.append(rec)
            return out

        try:
            recs = await self._transact(caller, run)
        except asyncio.CancelledError:
            raise  # the unit may still run from the group-commit queue: it cleans up then
        except BaseException:
            for blob in staged:  # the unit never ran, or has cleaned up already
                self.files.discard(blob)
            raise
        for rec, (name, data, _) in zip(recs, items, strict=True):
            # The record is committed and its blob written: the readable copy is derived from
            # them, so failing to write it must not turn a recorded artifact into an error.
            try:
                self.files.materialise(task, rec.phase, name, data)
            except OSError as e:
                logger.error(
                    "recorded %s %s %s but could not copy it out: %s", task, rec.phase, name, e
                )
        return recs

    async def evidence_list(self, task: str, phase: str | None = None) -> list[EvidenceRecord]:
        check_task_id(task)
        ph = None if phase is None else _phase_arg(phase, "phase").value

        def run(tx: Tx) -> list[EvidenceRecord]:
            self._task_row(tx, task)
            rows = tx.all(
                "SELECT phase, name FROM evidence WHERE task = ?"
                + ("" if ph is None else " AND phase = ?")
                + " ORDER BY seq",
                (task,) if ph is None else (task, ph),
            )
            found = [self._evidence(tx, task, r[0], r[1]) for r in rows]
            return [r for r in found if r is not None]

        return await self.store.peek(run)

    async def evidence_read(self, task: str, phase: str, name: str) -> tuple[EvidenceRecord, bytes]:
        check_task_id(task)
        check_name(name)
        ph = _phase_arg(phase, "phase").value
        rec = await self.store.peek(lambda tx: self._evidence(tx, task, ph, name))
        if rec is None:
            raise NotFoundError(
                f"no evidence {name} in {task} {ph}", hint="evidence_list shows what is recorded"
            )
        return rec, self.files.read_blob(rec.sha256)

    # ----------------------------------------------------------------- verification

    async def verify_run(
        self, caller: Caller, task: str, token: int | None = None
    ) -> dict[str, Any]:
        """Run the configured test command against the current diff; record the results as
        server-produced VERIFY evidence. Returns the test_results document plus its record."""
        timeout = self.config.verify.timeout_s

        def prepare(tx: Tx, ops: Ops) -> tuple[str, int, str, int]:
            view = self._task_row(tx, task)
            lease_token = self.leases.guard(tx, ops, task, view.phase.value, token)
            diff = self._evidence(tx, task, Phase.IMPLEMENT.value, "git_diff.patch")
            if diff is None or not diff.valid:
                raise EvidenceMissingError(
                    "verify_run needs the change as a valid IMPLEMENT git_diff.patch first",
                    hint="record the diff with evidence_put(name='git_diff.patch') in IMPLEMENT",
                )
            row = self.leases.row(tx, task, view.phase.value)
            assert row is not None
            self.leases.extend_to(tx, ops, row, timeout + 60)  # the lease outlives the run
            return view.phase.value, view.epoch, diff.sha256, lease_token

        phase, epoch, subject, lease_token = await self._transact(caller, prepare)
        cwd = Path(self.config.verify.cwd)
        with tracer.start_as_current_span(
            "agent.verify", attributes={"phasegate.task.id": task}
        ) as span:
            run = await run_verification(
                list(self.config.verify.command), cwd, timeout, self.config.verify.max_log_bytes
            )
            span.set_attributes(
                {
                    "phasegate.verify.exit_code": run.exit_code,
                    "phasegate.verify.passed": run.counts.passed,
                    "phasegate.verify.failed": run.counts.failed,
                    "phasegate.verify.reason": run.reason or "",
                }
            )
        results = run.results(subject)
        body = json.dumps(results, indent=2, sort_keys=True).encode()
        _, rec = await self._record(
            caller,
            task,
            Phase.VERIFY,
            [
                ("build_output.log", run.output, []),
                ("test_results.json", body, check_artifact("test_results.json", body)),
            ],
            "server",
            subject,
            lease_token,
            (phase, epoch),
        )
        return {
            "results": results,
            "record": rec.as_dict(),
            "passed": rec.valid,
            "problems": list(rec.problems),
        }

    # ----------------------------------------------------------------- leases

    @staticmethod
    def _ttl_arg(ttl_s: int | None) -> None:
        if ttl_s is not None and (
            isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= 86_400
        ):
            raise InvalidArgumentError(
                "ttl_s must be an integer from 1 to 86400", details={"argument": "ttl_s"}
            )

    async def lease_acquire(self, caller: Caller, task: str, ttl_s: int | None = None) -> LeaseView:
        self._ttl_arg(ttl_s)

        def run(tx: Tx, ops: Ops) -> LeaseView:
            view = self._task_row(tx, task)
            return self.leases.acquire(tx, ops, task, view.phase.value, ttl_s).view(ops.ts)

        return await self._transact(caller, run)

    async def lease_renew(self, caller: Caller, task: str, ttl_s: int | None = None) -> LeaseView:
        self._ttl_arg(ttl_s)

        def run(tx: Tx, ops: Ops) -> LeaseView:
            view = self._task_row(tx, task)
            return self.leases.renew(tx, ops, task, view.phase.value, ttl_s).view(ops.ts)

        return await self._transact(caller, run)

    async def lease_release(self, caller: Caller, task: str) -> dict[str, Any]:
        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            view = self._task_row(tx, task)
            released = self.leases.release(tx, ops, task, view.phase.value)
            return {"task": task, "phase": view.phase.value, "released": released}

        return await self._transact(caller, run)

    async def lease_break(
        self, caller: Caller, task: str, reason: str, phase: str | None = None
    ) -> dict[str, Any]:
        self._admin(caller, "break a lease")
        reason = _text_arg(reason, "reason", MAX_REASON)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            view = self._task_row(tx, task)
            ph = view.phase.value if phase is None else _phase_arg(phase, "phase").value
            broken = self.leases.break_(tx, ops, task, ph, reason)
            return {
                "task": task,
                "phase": ph,
                "broken": broken is not None,
                "holder": None if broken is None else f"{broken.actor}/{broken.instance}",
            }

        return await self._transact(caller, run)

    @staticmethod
    def _admin(caller: Caller, what: str) -> None:
        if not caller.at_least("admin"):
            raise ForbiddenError(
                f"only an admin may {what}",
                hint="ask a supervisor to run the phasegate CLI command",
            )

    # ----------------------------------------------------------------- attestation

    async def prompt_attest(
        self, caller: Caller, task: str, prompt: str, token: int | None = None
    ) -> AttestResult:
        sha = prompt_sha256(prompt)

        def run(tx: Tx, ops: Ops) -> AttestResult:
            view = self._task_row(tx, task)
            self.leases.guard(tx, ops, task, view.phase.value, token)
            return self.attestations.attest(tx, ops, task, view.phase, sha)

        return await self._transact(caller, run)

    async def prompt_rebaseline(
        self,
        caller: Caller,
        task: str,
        reason: str,
        prompt: str | None = None,
        phase: str | None = None,
    ) -> dict[str, Any]:
        """Admin: accept the last reported prompt (or `prompt`) as the new baseline."""
        self._admin(caller, "re-baseline a prompt")
        reason = _text_arg(reason, "reason", MAX_REASON)
        sha = None if prompt is None else prompt_sha256(prompt)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            view = self._task_row(tx, task)
            ph = view.phase.value if phase is None else _phase_arg(phase, "phase").value
            new = sha
            if new is None:
                row = tx.one(
                    "SELECT last_sha256 FROM attestations WHERE task = ? AND phase = ?", (task, ph)
                )
                if row is None:
                    raise NotFoundError(
                        f"no prompt was attested for {task} {ph}",
                        hint="pass the prompt to baseline explicitly",
                    )
                new = str(row[0])
            version = self.attestations.rebaseline(tx, ops, task, ph, new, reason)
            return {"task": task, "phase": ph, "version": version, "sha256": new}

        return await self._transact(caller, run)

    # ----------------------------------------------------------------- controls

    async def route_facts(self, task: str | None) -> tuple[Phase | None, bool]:
        """(the phase of `task` or None when it does not exist, whether frozen), one snapshot."""

        row = await self.store.peek_one(
            "SELECT (SELECT active FROM controls WHERE name = 'freeze'),"
            " (SELECT phase FROM tasks WHERE task = ?)",
            (task,),
        )
        assert row is not None  # a SELECT without FROM always yields its one row
        return (None if row[1] is None else Phase(row[1])), bool(row[0])

    async def controls(self) -> dict[str, Any]:
        """Freeze and promotion-pause state. Raises StoreError when unreadable: callers must
        then refuse (fail closed)."""
        rows = await self.store.peek(
            lambda tx: tx.all("SELECT name, active, reason, actor, ts, seq FROM controls")
        )
        found = {r[0]: r for r in rows}

        def one(name: str) -> dict[str, Any]:
            r = found.get(name)
            if r is None:
                return {"active": False}
            return {"active": bool(r[1]), "reason": r[2], "actor": r[3], "since": r[4], "seq": r[5]}

        freeze, pause = one("freeze"), one("promotions_paused")
        return {
            "frozen": freeze["active"],
            "promotions_paused": pause["active"],
            "freeze": freeze,
            "pause": pause,
        }

    async def set_control(
        self, caller: Caller, control: str, active: bool, reason: str
    ) -> dict[str, Any]:
        """Admin: set the global freeze (`freeze`) or the promotion pause (`promotions_paused`)."""
        self._admin(caller, f"change {control}")
        if control not in ("freeze", "promotions_paused"):
            raise InvalidArgumentError(f"unknown control {control!r}")
        reason = _text_arg(reason, "reason", MAX_REASON)
        kind = "control.freeze_changed" if control == "freeze" else "control.pause_changed"
        await self._transact(
            caller,
            lambda tx, ops: ops.emit(
                tx,
                Record(
                    kind,
                    {"control": control},
                    {"control": control, "active": active, "reason": reason},
                ),
            ),
        )
        return await self.controls()

    # ----------------------------------------------------------------- audit

    async def counters(self) -> dict[str, int]:
        rows = await self.store.peek(lambda tx: tx.all("SELECT name, value FROM counters"))
        return {str(r[0]): int(r[1]) for r in rows}

    async def record(self, caller: Caller, record: Record) -> LedgerEntry:
        """Append one entry outside any rule (used by the router for `tool.rejected`)."""
        return await self._transact(caller, lambda tx, ops: ops.emit(tx, record))

    async def replay_equals_store(self) -> bool:
        """Rebuild the projection from the ledger alone and compare it with the store."""

        def both(tx: Tx) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
            return projection.snapshot(tx), tx.all(
                "SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq"
            )

        current, rows = await self.store.read(both)
        rebuilt = projection.replay((LedgerEntry.from_row(*r) for r in rows), MIGRATIONS)
        return rebuilt == current
