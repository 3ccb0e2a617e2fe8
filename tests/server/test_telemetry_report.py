"""Reading the telemetry files back (server.telemetry_report): spans and counter totals from
JSON lines written by the official OTLP JSON file exporters, and the supervisor's summary.

The files are real: written here by the same exporters the server uses, with tracer and meter
providers local to each test (nothing global is installed in the test process).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from server_kit import cli

from server.telemetry_report import Span, read_counters, read_spans, summary

RESOURCE = Resource.create({"service.name": "phasegate"})
MS = 1_000_000  # nanoseconds
CODE = "phasegate.error.code"


@pytest.fixture
def tracer_provider(tmp_path: Path) -> Iterator[TracerProvider]:
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(tmp_path / "traces-1.jsonl")))
    yield provider
    provider.shutdown()


def meter_provider(path: Path) -> tuple[MeterProvider, PeriodicExportingMetricReader]:
    """A meter provider writing to `path` only when flushed (and once more at shutdown)."""
    reader = PeriodicExportingMetricReader(
        FileMetricExporter(path), export_interval_millis=3_600_000
    )
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader], shutdown_on_exit=False)
    return provider, reader


# ------------------------------------------------------------------ read_spans


def test_spans_from_the_official_exporter_read_back_with_ids_times_status_and_typed_attributes(
    tmp_path: Path, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("mcp-python-sdk")
    attributes: dict[str, AttributeValue] = {
        "phasegate.task.id": "T1",
        "phasegate.ledger.seq": 2**40,  # OTLP JSON writes 64-bit integers as strings
        "phasegate.flag": True,
        "phasegate.ratio": 0.25,
    }
    with (
        tracer.start_as_current_span(
            "tools/call phase_advance", kind=SpanKind.SERVER, attributes=attributes
        ) as call,
        tracer.start_as_current_span("process.violation") as child,
    ):
        child.set_status(Status(StatusCode.ERROR))
    tracer_provider.force_flush()

    spans = {s.name: s for s in read_spans(tmp_path)}
    assert set(spans) == {"tools/call phase_advance", "process.violation"}
    parent, violation = spans["tools/call phase_advance"], spans["process.violation"]
    ctx = call.get_span_context()
    assert parent.trace_id == format(ctx.trace_id, "032x")
    assert parent.span_id == format(ctx.span_id, "016x")
    assert parent.parent_id == ""
    assert violation.trace_id == parent.trace_id and violation.parent_id == parent.span_id
    assert parent.attributes == attributes
    assert type(parent.attributes["phasegate.ledger.seq"]) is int
    assert (parent.error, violation.error) == (False, True)
    assert isinstance(call, ReadableSpan)
    assert call.start_time is not None and call.end_time is not None
    assert (parent.start_ns, parent.end_ns) == (call.start_time, call.end_time)
    assert parent.duration_s == pytest.approx((call.end_time - call.start_time) / 1e9)
    assert parent.start_ns <= violation.start_ns <= violation.end_ns <= parent.end_ns


def test_spans_are_read_from_every_traces_file_and_from_nothing_else(
    tmp_path: Path, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("first process"):
        pass
    tracer_provider.force_flush()
    second = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    second.add_span_processor(SimpleSpanProcessor(FileSpanExporter(tmp_path / "traces-2.jsonl")))
    with second.get_tracer("t").start_as_current_span("second process"):
        pass
    second.shutdown()
    (tmp_path / "metrics-1.jsonl").write_text("{}\n")
    (tmp_path / "traces-old.jsonl.gz").write_bytes(b"\x1f\x8b not read")

    assert sorted(s.name for s in read_spans(tmp_path)) == ["first process", "second process"]


def test_a_torn_last_line_is_skipped_with_a_warning_and_blank_lines_are_ignored(
    tmp_path: Path, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("whole"):
        pass
    tracer_provider.force_flush()
    path = tmp_path / "traces-1.jsonl"
    whole = path.read_text()
    # A process killed mid-write leaves half a line; an editor may leave blank ones.
    with path.open("a") as f:
        f.write("\n   \n" + whole[: len(whole) // 2])

    with caplog.at_level(logging.WARNING, logger="server.telemetry_report"):
        spans = read_spans(tmp_path)
    assert [s.name for s in spans] == ["whole"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:4 is not JSON (a partial last line?)"
    ]


def test_a_missing_telemetry_directory_reads_as_no_spans_and_no_counters(tmp_path: Path) -> None:
    assert read_spans(tmp_path / "absent") == []
    assert read_counters(tmp_path / "absent") == {}


# ------------------------------------------------------------------ read_counters


def test_counter_totals_are_the_last_cumulative_point_of_each_series_summed_over_process_files(
    tmp_path: Path,
) -> None:
    provider, reader = meter_provider(tmp_path / "metrics-1.jsonl")
    meter = provider.get_meter("phasegate")
    rejected = meter.create_counter("tool_calls_rejected")
    latency = meter.create_histogram("mcp.server.operation.duration", unit="s")
    rejected.add(1, {"code": "PHASE_SKIP", "tool": "phase_advance"})
    latency.record(0.5, {"gen_ai.tool.name": "phase_advance"})
    reader.force_flush()
    rejected.add(2, {"code": "PHASE_SKIP", "tool": "phase_advance"})
    rejected.add(1, {"code": "FROZEN", "tool": "evidence_put"})
    reader.force_flush()
    provider.shutdown()
    # A second process, with its own file: its series are its own and add up.
    other, _ = meter_provider(tmp_path / "metrics-2.jsonl")
    other_meter = other.get_meter("phasegate")
    other_meter.create_counter("tool_calls_rejected").add(5, {"code": "FROZEN", "tool": "x"})
    other_meter.create_counter("phase_backtracks").add(2, {"from": "SPEC", "to": "STRATEGIZE"})
    other.shutdown()

    lines = (tmp_path / "metrics-1.jsonl").read_text().splitlines()
    assert len(lines) >= 2  # cumulative exports: an earlier point must not be added again
    assert read_counters(tmp_path) == {"tool_calls_rejected": 3 + 1 + 5, "phase_backtracks": 2}


def test_process_files_whose_names_share_a_prefix_are_each_counted_once(tmp_path: Path) -> None:
    # Two servers started in the same second, pids 12 and 123 (the file name is
    # metrics-<UTC second>-<pid>.jsonl): one name is a prefix of the other.
    for pid, rejected in ((12, 1), (123, 10)):
        provider, _ = meter_provider(tmp_path / f"metrics-20260101T000000-{pid}.jsonl")
        counter = provider.get_meter("phasegate").create_counter("tool_calls_rejected")
        counter.add(rejected, {"code": "PHASE_SKIP", "tool": "phase_advance"})
        provider.shutdown()

    assert read_counters(tmp_path) == {"tool_calls_rejected": 11}


# ------------------------------------------------------------------ summary


def span(
    name: str,
    duration_ms: float = 1.0,
    error: bool = False,
    attributes: dict[str, object] | None = None,
    start_ms: float = 0.0,
) -> Span:
    start = int(start_ms * MS)
    return Span(
        name=name,
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "1",
        parent_id="",
        start_ns=start,
        end_ns=start + int(duration_ms * MS),
        error=error,
        attributes=dict(attributes or {}),
    )


def transition(task: str, move: str, phase: str | None, error: bool = False) -> Span:
    attrs: dict[str, object] = {"phasegate.task.id": task, "phasegate.move": move}
    if phase is not None:
        attrs["phasegate.phase"] = phase
    return span("agent.state.transition", error=error, attributes=attrs)


def test_the_summary_reports_success_rate_refusals_moves_drift_loops_and_latency() -> None:
    calls = [span("tools/call task_status", duration_ms=float(ms)) for ms in range(1, 98)]
    calls += [
        span("tools/call phase_advance", 98.0, attributes={CODE: "PHASE_SKIP"}),
        span("tools/call phase_advance", 99.0, attributes={CODE: "FROZEN"}),
        span("tools/call verify_run", 100.0, error=True),  # e.g. a protocol error
    ]
    moves = [
        transition("T1", "advance", "SPEC"),
        transition("T1", "advance", None, error=True),  # a refused advance is no transition
        transition("T1", "backtrack", "STRATEGIZE"),
        *(transition("T2", "backtrack", "PLAN") for _ in range(3)),
        transition("T3", "advance", "SPEC"),
    ]
    others = [span("initialize"), span("process.violation", attributes={CODE: "X"})]
    counters = {"prompt_drift_detected": 2, "phase_backtracks": 4}

    result = summary(calls + moves + others, counters)

    assert result == {
        "tool_calls": 100,
        "tool_success_rate": 0.97,
        "refusals_by_code": {"FROZEN": 1, "PHASE_SKIP": 1},
        "transitions": 2,
        "backtracks": 4,
        "drift_events": 2,
        "loops": ["T2"],
        "tool_latency_ms": {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05)},
        "counters": {"phase_backtracks": 4, "prompt_drift_detected": 2},
    }
    json.dumps(result)  # what `phasegate telemetry summary --json` prints


def test_the_summary_of_nothing_has_no_rate_and_no_percentiles() -> None:
    assert summary([], {}) == {
        "tool_calls": 0,
        "tool_success_rate": None,
        "refusals_by_code": {},
        "transitions": 0,
        "backtracks": 0,
        "drift_events": 0,
        "loops": [],
        "tool_latency_ms": {"p50": None, "p95": None},
        "counters": {},
    }


def test_a_single_call_is_both_latency_percentiles() -> None:
    latency = summary([span("tools/call task_list", duration_ms=7.0)], {})["tool_latency_ms"]
    assert latency == {"p50": pytest.approx(7.0), "p95": pytest.approx(7.0)}


def test_the_summary_command_reads_the_state_directorys_telemetry_files(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "telemetry"
    directory.mkdir(parents=True)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(directory / "traces-1.jsonl")))
    tracer = provider.get_tracer("t")
    for code in (None, None, None, "PHASE_SKIP"):
        with tracer.start_as_current_span("tools/call phase_advance") as s:
            if code:
                s.set_attribute("phasegate.error.code", code)
    for _ in range(3):
        with tracer.start_as_current_span(
            "agent.state.transition",
            attributes={
                "phasegate.task.id": "LOOPY",
                "phasegate.move": "backtrack",
                "phasegate.phase": "SPEC",
            },
        ):
            pass
    provider.shutdown()
    meters, _ = meter_provider(directory / "metrics-1.jsonl")
    meters.get_meter("phasegate").create_counter("prompt_drift_detected").add(1, {"phase": "SPEC"})
    meters.shutdown()

    state = str(tmp_path / "state")
    data = json.loads(cli("telemetry", "summary", "--state-dir", state, "--json").stdout)
    assert (data["tool_calls"], data["tool_success_rate"]) == (4, 0.75)
    assert (data["backtracks"], data["drift_events"], data["loops"]) == (3, 1, ["LOOPY"])
    text = cli("telemetry", "summary", "--state-dir", state).stdout.splitlines()
    assert text[0] == "tool calls: 4  success rate: 75.0%"
    assert text[1] == "refusals: PHASE_SKIP=1"
    assert text[2] == "transitions: 0  backtracks: 3  drift events: 1"
    assert text[3] == "loops (>= 3 backtracks): LOOPY"
    assert text[4].startswith("tool latency: p50 ") and text[4].endswith(" ms")
