"""Process metrics and spans, through the OpenTelemetry API only (the server installs the SDK).

Counters are incremented from committed ledger entries, with the same table the projection
uses (`projection.COUNTERS`), so a counter always equals what its ledger entries count (one
each, or the number of identical refusals an entry stands for).
Attributes stay low-cardinality: phases, codes, severities — never task ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics, trace

from ..ledger.entries import LedgerEntry
from ..ledger.projection import COUNTERS, refusals_of

__all__ = ["count_committed", "tracer"]

tracer = trace.get_tracer("phasegate")
_meter = metrics.get_meter("phasegate")

_DESCRIPTIONS = {
    "phase_skips_attempted": "phase_advance calls that tried to skip a phase",
    "phase_validations_failed": "phase_advance calls refused by a gate or by drift",
    "phase_backtracks": "backtracks to an earlier phase",
    "prompt_drift_detected": "prompt attestations that differed from the baseline",
    "evidence_gate_failed": "phase exits refused for missing or invalid evidence",
    "tool_calls_rejected": "tool calls refused by the router or the enforcer",
    "lease_contention": "calls refused because another agent holds the lease",
}
_COUNTERS = {
    name: _meter.create_counter(name, unit="1", description=text)
    for name, text in _DESCRIPTIONS.items()
}


def _attributes(entry: LedgerEntry) -> dict[str, Any]:
    data = entry.fields["data"]
    phase = entry.fields["subject"].get("phase")
    if entry.type == "tool.rejected":
        return {"code": data.get("code", ""), "tool": data.get("tool", "")}
    if entry.type == "phase.backtracked":
        return {"from": data.get("from", ""), "to": data.get("to", "")}
    if entry.type == "prompt.drift":
        return {"phase": phase or "", "severity": data.get("severity", "")}
    return {"phase": phase or ""}


def count_committed(entries: Iterable[LedgerEntry]) -> None:
    for entry in entries:
        for name in COUNTERS.get(entry.type, ()):
            _COUNTERS[name].add(refusals_of(entry), _attributes(entry))
