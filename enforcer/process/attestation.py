"""Prompt attestation: the agent reports the prompt it works under; drift from the baseline of
(task, phase) is recorded, and blocks `phase_advance` in the configured ERROR phases until an
admin re-baselines. The first report sets the baseline; baselines are versioned.

    >>> normalise("line  \\r\\nnext\\n\\n")
    'line\\nnext'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidArgumentError
from ..ledger.ops import Ops, Record
from ..phases import Phase
from ..store import Tx

__all__ = ["MAX_PROMPT_BYTES", "AttestResult", "Attestations", "normalise", "prompt_sha256"]

MAX_PROMPT_BYTES = 256 * 1024


def normalise(prompt: str) -> str:
    """Unify newlines, strip trailing space on every line and trailing blank lines."""
    lines = prompt.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).rstrip("\n")


def prompt_sha256(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise InvalidArgumentError("prompt must be a string", details={"argument": "prompt"})
    data = normalise(prompt).encode("utf-8", "surrogatepass")
    if len(data) > MAX_PROMPT_BYTES:
        raise InvalidArgumentError(
            f"prompt is {len(data)} bytes; the limit is {MAX_PROMPT_BYTES}",
            hint="attest the system prompt or header you work under, not the whole conversation",
            details={"argument": "prompt"},
        )
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class AttestResult:
    status: Literal["baseline", "match", "drift"]
    sha256: str
    baseline_sha256: str
    baseline_version: int
    severity: Literal["WARN", "ERROR"] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sha256": self.sha256,
            "baseline_sha256": self.baseline_sha256,
            "baseline_version": self.baseline_version,
            "severity": self.severity,
            "blocks_advance": self.severity == "ERROR",
        }


class Attestations:
    def __init__(self, error_phases: frozenset[Phase]) -> None:
        self.error_phases = error_phases

    @staticmethod
    def baseline(tx: Tx, task: str, phase: str) -> tuple[int, str] | None:
        row = tx.one(
            "SELECT version, sha256 FROM baselines WHERE task = ? AND phase = ?"
            " ORDER BY version DESC LIMIT 1",
            (task, phase),
        )
        return None if row is None else (int(row[0]), str(row[1]))

    @staticmethod
    def drift(tx: Tx, task: str, phase: str) -> str | None:
        """The severity of unresolved drift on (task, phase), or None."""
        row = tx.one(
            "SELECT drift, severity FROM attestations WHERE task = ? AND phase = ?", (task, phase)
        )
        return str(row[1]) if row is not None and row[0] else None

    def attest(self, tx: Tx, ops: Ops, task: str, phase: Phase, sha: str) -> AttestResult:
        subject = {"task": task, "phase": phase.value}
        current = self.baseline(tx, task, phase.value)
        if current is None:
            ops.emit(tx, Record("prompt.baseline_set", subject, {"sha256": sha, "version": 1}))
            return AttestResult("baseline", sha, sha, 1, None)
        version, base = current
        if sha == base:
            return AttestResult("match", sha, base, version, None)
        severity: Literal["WARN", "ERROR"] = "ERROR" if phase in self.error_phases else "WARN"
        ops.emit(
            tx,
            Record(
                "prompt.drift",
                subject,
                {
                    "sha256": sha,
                    "baseline_sha256": base,
                    "baseline_version": version,
                    "severity": severity,
                },
            ),
        )
        return AttestResult("drift", sha, base, version, severity)

    def rebaseline(self, tx: Tx, ops: Ops, task: str, phase: str, sha: str, reason: str) -> int:
        current = self.baseline(tx, task, phase)
        version = 1 if current is None else current[0] + 1
        ops.emit(
            tx,
            Record(
                "prompt.rebaselined",
                {"task": task, "phase": phase},
                {"sha256": sha, "version": version, "reason": reason},
            ),
        )
        return version
