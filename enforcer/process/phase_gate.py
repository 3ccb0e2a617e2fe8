"""The evidence gate of a task's current phase, read inside a transaction.

`PhaseGate.check` says whether the task may leave its phase: every required artifact recorded in
the current epoch, valid by its content check and, for VERIFY's reserved results, produced by the
server for the current IMPLEMENT diff. The content checks themselves live in `gates`.

    report = PhaseGate(config).check(tx, task_view)
    report.passed, report.problems
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ..config import Config
from ..model import EvidenceRecord, GateProblem, GateReport, TaskView
from ..phases import Phase
from ..store import Tx
from .gates import DEFAULT_GATES, RESERVED_SERVER_ARTIFACTS

__all__ = ["PhaseGate", "read_evidence"]


class _GateRow(NamedTuple):
    """The columns of an evidence record a gate reads."""

    name: str
    epoch: int
    sha256: str
    valid: int
    problems: str  # a JSON list
    producer: str
    subject_sha256: str | None


def read_evidence(tx: Tx, task: str, phase: str, name: str) -> EvidenceRecord | None:
    """The record of artifact `name` of `task` in `phase`, or None."""
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


class PhaseGate:
    """The gates of the configured phase table."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def required(self, phase: Phase) -> tuple[str, ...]:
        gate = self.config.gates.get(phase)
        return tuple(gate.artifacts) if gate is not None else DEFAULT_GATES.get(phase, ())

    def _require_server(self, phase: Phase) -> bool:
        gate = self.config.gates.get(phase)
        return True if gate is None else bool(gate.require_server_results)

    def check(self, tx: Tx, task: TaskView) -> GateReport:
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
                diff = read_evidence(tx, task.task, Phase.IMPLEMENT.value, "git_diff.patch")
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
