"""Tasks: start one, read its status (the hot read, cached), list them.

tasks = Tasks(work, gate, leases)
status = await tasks.start(caller, "Fix the parser")
again = await tasks.status(status.task.task)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import rfc3339
from ..errors import ConflictError
from ..ledger.ops import Ops, Record
from ..model import Caller, GateReport, LeaseView, TaskView, check_task_id
from ..phases import Phase
from ..store import Tx
from .gates import shape_hint
from .leases import LeaseRow, Leases
from .phase_gate import PhaseGate
from .work import MAX_TITLE, Work, no_task, phase_arg, task_view, text_arg

__all__ = ["StatusReport", "Tasks"]

_STATUS_CACHE_SIZE = 1024


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


class Tasks:
    def __init__(self, work: Work, gate: PhaseGate, leases: Leases) -> None:
        self.work = work
        self.gate = gate
        self.leases = leases
        # task -> (computed at, data_version read before, valid until, report); see status
        self._status_cache: dict[str, tuple[datetime, Any, datetime | None, StatusReport]] = {}

    async def start(self, caller: Caller, title: str, task: str | None = None) -> StatusReport:
        title = text_arg(title, "title", MAX_TITLE)
        task_id = (
            check_task_id(task)
            if task is not None
            else (f"T-{self.work.clock.now():%Y%m%d}-{secrets.token_hex(3)}")
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
            return self.read_status(tx, ops.ts, task_id)

        return await self.work.transact(caller, run)

    def read_status(self, tx: Tx, now: str, task: str) -> StatusReport:
        """The status of `task` inside `tx`."""
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
            raise no_task(task)
        view = task_view(row)
        lease = None if row[6] is None else LeaseRow(*row[6:15])
        drift = str(row[16]) if row[15] else None
        return self.report(tx, now, view, lease, drift)

    def report(
        self, tx: Tx, now: str, view: TaskView, lease: LeaseRow | None, drift: str | None
    ) -> StatusReport:
        """A status from parts a caller already holds (a transition knows the new phase)."""
        return StatusReport(
            task=view,
            lease=None if lease is None else lease.view(now),
            gate=self.gate.check(tx, view),
            drift=drift,
            next_phase=view.phase.next,
        )

    async def status(self, task: str) -> StatusReport:
        """The status of `task`, served from a small cache while the database is unchanged.

        A status is a function of the database and of the time (a lease ends when it expires).
        The store's ``data_version`` changes whenever anything commits — this process, another
        process, another server — so an entry is reused only while the version is the one read
        *before* the status was, and the time has not passed the lease's expiry (nor gone
        backwards)."""
        store = self.work.store
        moment = self.work.clock.now()
        version = await store.data_version()
        cached = self._status_cache.get(task)
        if cached is not None:
            at, seen, until, report = cached
            if seen == version and at <= moment and (until is None or moment < until):
                return report
        now = rfc3339(moment)
        report = await store.peek(lambda tx: self.read_status(tx, now, task))
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

    async def all(self, phase: str | None = None) -> list[dict[str, Any]]:
        now = rfc3339(self.work.clock.now())
        where, params = (
            ("", ())
            if phase is None
            else (" WHERE t.phase = ?", (phase_arg(phase, "phase").value,))
        )
        rows = await self.work.store.peek(
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

    async def board(self) -> list[dict[str, Any]]:
        """Every task with what a supervisor's board shows: the phase, the holder and expiry of
        the current phase's lease, its prompt drift, and the newest ledger entry about it (the
        last activity), in one read. The newest entry is one step down the ledger's
        (task, seq) index per task."""
        now = rfc3339(self.work.clock.now())
        rows = await self.work.store.peek(
            lambda tx: tx.all(
                "SELECT t.task, t.title, t.phase, t.epoch, l.actor, l.instance, l.expires_at,"
                " a.drift, a.severity, g.seq, g.ts, g.type"
                " FROM tasks t"
                " LEFT JOIN leases l ON l.task = t.task AND l.phase = t.phase"
                " LEFT JOIN attestations a ON a.task = t.task AND a.phase = t.phase"
                " LEFT JOIN ledger g ON g.seq ="
                " (SELECT max(seq) FROM ledger WHERE task = t.task)"
                " ORDER BY t.created_at, t.task"
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
                "drift": str(r[8] or "WARN") if r[7] else None,
                "last_seq": r[9],
                "last_activity": r[10],
                "last_type": r[11],
            }
            for r in rows
        ]
