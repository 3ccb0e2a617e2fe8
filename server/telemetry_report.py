"""Reading the OTLP JSON-lines files back: spans, metric totals and the supervisor's summary.

spans = read_spans(Path("state/telemetry"))
summary(spans, read_counters(Path("state/telemetry")))["tool_success_rate"]
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Span", "read_counters", "read_spans", "summary"]

logger = logging.getLogger(__name__)

_STATUS_ERROR = 2  # OTLP Status.code ERROR


def _value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return None


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


@dataclass(frozen=True, slots=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    error: bool
    attributes: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def _lines(directory: Path, prefix: str) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob(f"{prefix}*.jsonl")):
        yield from _file_lines(path)


def _file_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d is not JSON (a partial last line?)", path, number)


def read_spans(directory: Path) -> list[Span]:
    out = []
    for doc in _lines(directory, "traces"):
        for rs in doc.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    out.append(
                        Span(
                            name=s.get("name", ""),
                            trace_id=s.get("traceId", ""),
                            span_id=s.get("spanId", ""),
                            parent_id=s.get("parentSpanId", ""),
                            start_ns=int(s.get("startTimeUnixNano", 0)),
                            end_ns=int(s.get("endTimeUnixNano", 0)),
                            error=s.get("status", {}).get("code") == _STATUS_ERROR,
                            attributes=_attrs(s.get("attributes")),
                        )
                    )
    return out


def read_counters(directory: Path) -> dict[str, int]:
    """Totals of every monotonic counter: the last cumulative point per series, summed over
    process files (each file is one process, so series never overlap between files)."""
    totals: Counter[str] = Counter()
    for path in sorted(directory.glob("metrics*.jsonl")):
        last: dict[tuple[str, str], int] = {}
        for doc in _file_lines(path):  # this file only: a name can prefix another
            for rm in doc.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        points = m.get("sum", {}).get("dataPoints", [])
                        for p in points:
                            key = (
                                m["name"],
                                json.dumps(_attrs(p.get("attributes")), sort_keys=True),
                            )
                            last[key] = int(p.get("asInt", 0))
        for (name, _), value in last.items():
            totals[name] += value
    return dict(totals)


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(spans: list[Span], counters: dict[str, int]) -> dict[str, Any]:
    calls = [s for s in spans if s.name.startswith("tools/call")]
    refused = Counter(
        str(s.attributes["phasegate.error.code"])
        for s in calls
        if s.attributes.get("phasegate.error.code")
    )
    failed = sum(1 for s in calls if s.error or s.attributes.get("phasegate.error.code"))
    moves = [
        s
        for s in spans
        if s.name == "agent.state.transition" and not s.error and "phasegate.phase" in s.attributes
    ]
    backtracks = [s for s in moves if s.attributes.get("phasegate.move") == "backtrack"]
    per_task = Counter(str(s.attributes.get("phasegate.task.id")) for s in backtracks)
    latencies = sorted(s.duration_s * 1000 for s in calls)
    return {
        "tool_calls": len(calls),
        "tool_success_rate": None if not calls else round((len(calls) - failed) / len(calls), 4),
        "refusals_by_code": dict(sorted(refused.items())),
        "transitions": len(moves) - len(backtracks),
        "backtracks": len(backtracks),
        "drift_events": counters.get("prompt_drift_detected", 0),
        "loops": sorted(t for t, n in per_task.items() if n >= 3),
        "tool_latency_ms": {"p50": _pct(latencies, 50), "p95": _pct(latencies, 95)},
        "counters": dict(sorted(counters.items())),
    }
