"""Telemetry end to end: the real `phasegate serve` stdio subprocess, driven with the MCP SDK
client, writing real OTLP JSON-lines files (and real OTLP/HTTP requests to a receiver in this
process); the files are parsed here independently of server.telemetry_report.

What is checked: one SDK `tools/call <tool>` SERVER span per call carrying phasegate's
attributes; the agent.state.transition / process.violation child spans; counters equal to the
number of their ledger entries; spans and ledger entries finding each other (span attribute
phasegate.ledger.seq, entry refs.trace_id, `phasegate telemetry trace`, `phasegate ledger
show`); W3C trace context from the client's `_meta`; the OTLP exporter against a live and a dead
collector; an unwritable telemetry directory and a full disk; metric attributes without task ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, RequestParamsMeta
from module_kit import every_module_tool, register
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from server_kit import (
    ARTIFACTS,
    REPO,
    advance_to,
    cli,
    ok,
    refusal,
    refusing_port,
    serve_args,
    toml_text,
)

from enforcer.phases import Phase

# Metrics every half second (the default is 5 s); the final values come from the shutdown flush.
FAST_METRICS = "[telemetry]\nexport_interval_s = 0.5\n"
EXPORT_PROBLEM = "telemetry export problem"
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2
# Which ledger entries each counter counts (DESIGN.md "Telemetry", projection.COUNTERS).
COUNTED_BY = {
    "phase_skips_attempted": ("phase.skip_blocked",),
    "phase_validations_failed": ("evidence.gate_failed", "phase.advance_blocked"),
    "phase_backtracks": ("phase.backtracked",),
    "prompt_drift_detected": ("prompt.drift",),
    "evidence_gate_failed": ("evidence.gate_failed",),
    "tool_calls_rejected": ("tool.rejected",),
    "lease_contention": ("lease.contended",),
}
STRATEGY = ARTIFACTS[Phase.STRATEGIZE]


# ------------------------------------------------------------------ the server


@dataclass
class Run:
    """One server process: its stderr log, and how long it took to go once the client closed."""

    log: Path
    calls: Counter[str] = field(default_factory=Counter)
    closed_in: float = -1.0

    @property
    def stderr(self) -> str:
        return self.log.read_text()


class Agent:
    """The SDK client session, counting the tools it calls."""

    def __init__(self, session: ClientSession, run: Run) -> None:
        self.session = session
        self.run = run

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], meta: RequestParamsMeta | None = None
    ) -> CallToolResult:
        self.run.calls[tool] += 1
        return await self.session.call_tool(tool, arguments, meta=meta)


@contextlib.asynccontextmanager
async def serving(
    state_dir: Path, env: dict[str, str] | None = None, limit_s: float = 30.0
) -> AsyncIterator[Agent]:
    """`python -m server.cli serve` over stdio; on exit the client closes and the server goes
    (it flushes telemetry as it exits). `Run.closed_in` is measured from closing the session to
    the process being gone (the SDK client closes stdin, waits 2 s, then terminates)."""
    run = Run(state_dir.parent / f"server-{state_dir.name}.log")
    params = StdioServerParameters(
        command=sys.executable, args=serve_args(state_dir, "alice"), cwd=str(REPO), env=env
    )
    with run.log.open("w") as errlog:
        async with asyncio.timeout(limit_s), stdio_client(params, errlog=errlog) as (r, w):
            async with ClientSession(r, w) as session:
                await session.initialize()
                yield Agent(session, run)
            closing = time.monotonic()
        run.closed_in = time.monotonic() - closing


def state_with(tmp_path: Path, toml: str = FAST_METRICS, name: str = "state") -> Path:
    state = tmp_path / name
    state.mkdir()
    (state / "phasegate.toml").write_text(toml)
    return state


# ------------------------------------------------------------------ reading OTLP JSON lines


def _value(v: dict[str, Any]) -> Any:
    if "intValue" in v:
        return int(v["intValue"])  # OTLP JSON writes 64-bit integers as strings
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    raise AssertionError(f"unexpected attribute value {v}")


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a["value"]) for a in items or []}


def _docs(directory: Path, prefix: str) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob(f"{prefix}-*.jsonl")):
        for line in path.read_text().splitlines():
            yield json.loads(line)  # every line is whole: the server flushed as it exited


def file_spans(directory: Path) -> list[dict[str, Any]]:
    """Every span, as the OTLP JSON dict plus `attrs` and `resource` flattened."""
    out = []
    for doc in _docs(directory, "traces"):
        for rs in doc["resourceSpans"]:
            resource = _attrs(rs["resource"]["attributes"])
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    out.append(s | {"attrs": _attrs(s.get("attributes")), "resource": resource})
    return sorted(out, key=lambda s: int(s["startTimeUnixNano"]))


def file_metric_points(directory: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(metric name, point attributes, point) for every data point of every export."""
    out = []
    for doc in _docs(directory, "metrics"):
        for rm in doc["resourceMetrics"]:
            assert _attrs(rm["resource"]["attributes"])["service.name"] == "phasegate"
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    data = m.get("sum") or m.get("histogram") or m.get("gauge") or {}
                    for p in data.get("dataPoints", []):
                        out.append((m["name"], _attrs(p.get("attributes")), p))
    return out


def counter_series(directory: Path) -> dict[str, dict[str, int]]:
    """name -> {attributes as JSON: last cumulative value} (one server process per test)."""
    series: dict[str, dict[str, int]] = {}
    for name, attrs, point in file_metric_points(directory):
        if "asInt" in point:
            series.setdefault(name, {})[json.dumps(attrs, sort_keys=True)] = int(point["asInt"])
    return series


def counter_totals(directory: Path) -> dict[str, int]:
    return {name: sum(s.values()) for name, s in counter_series(directory).items()}


# ------------------------------------------------------------------ reading the ledger


def ledger(state_dir: Path) -> list[dict[str, Any]]:
    """Every entry straight from SQLite, with the indexed trace_id column alongside."""
    conn = sqlite3.connect(f"file:{state_dir / 'phasegate.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, type, trace_id, entry FROM ledger ORDER BY seq").fetchall()
    finally:
        conn.close()
    out = []
    for seq, type_, trace_id, raw in rows:
        entry = json.loads(raw)
        assert entry["seq"] == seq and entry["type"] == type_
        out.append(entry | {"trace_id_column": trace_id})
    return out


def assert_counters_match_ledger(directory: Path, state_dir: Path) -> dict[str, int]:
    entries = Counter(e["type"] for e in ledger(state_dir))
    totals = counter_totals(directory)
    for counter, types in COUNTED_BY.items():
        assert totals.get(counter, 0) == sum(entries[t] for t in types), (counter, totals)
    return totals


# ------------------------------------------------------------------ 1. files, ledger, CLI


async def test_a_driven_task_leaves_one_server_span_per_call_and_counters_equal_to_the_ledger(
    tmp_path: Path,
) -> None:
    state = state_with(tmp_path)
    task = "TEL-1"
    client_trace = secrets.token_hex(16)
    client_parent = secrets.token_hex(8)
    async with serving(state) as agent:
        ok(await agent.call_tool("task_start", {"title": "telemetry", "task": task}))
        refusal(await agent.call_tool("phase_advance", {"task": task, "to": "PLAN"}), "PHASE_SKIP")
        name, content = STRATEGY
        ok(await agent.call_tool("evidence_put", {"task": task, "name": name, "content": content}))
        assert ok(await agent.call_tool("phase_advance", {"task": task}))["phase"] == "SPEC"
        back = {"task": task, "to": "STRATEGIZE", "reason": "the problem was misread"}
        assert ok(await agent.call_tool("phase_backtrack", back))["phase"] == "STRATEGIZE"
        first = ok(await agent.call_tool("prompt_attest", {"task": task, "prompt": "You are A."}))
        assert first["status"] == "baseline"
        drift = ok(await agent.call_tool("prompt_attest", {"task": task, "prompt": "You are B."}))
        assert (drift["status"], drift["severity"], drift["blocks_advance"]) == (
            "drift",
            "WARN",
            False,
        )
        # W3C trace context in _meta. The SDK client injects its *current* context into _meta
        # (over a traceparent already there when client-side tracing is on), so ours is made
        # current as well; the server sees it only through _meta either way.
        traceparent = f"00-{client_trace}-{client_parent}-01"
        remote = SpanContext(
            int(client_trace, 16), int(client_parent, 16), True, TraceFlags(TraceFlags.SAMPLED)
        )
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
        try:
            args = {"task": task, "name": name, "content": content + "\n- and zero\n"}
            meta = cast(RequestParamsMeta, {"traceparent": traceparent})
            ok(await agent.call_tool("evidence_put", args, meta=meta))
        finally:
            otel_context.detach(token)
    run = agent.run
    assert run.closed_in < 10, run.closed_in
    assert "Traceback" not in run.stderr, run.stderr

    spans = file_spans(state / "telemetry")
    assert spans and all(s["resource"]["service.name"] == "phasegate" for s in spans)
    by_id = {s["spanId"]: s for s in spans}
    assert len(by_id) == len(spans)

    # Exactly one SERVER span per tool call, named by the SDK: no duplicates of our own.
    calls = [s for s in spans if s["name"].startswith("tools/call")]
    assert Counter(s["name"] for s in calls) == {f"tools/call {t}": n for t, n in run.calls.items()}
    assert all(s["kind"] == SPAN_KIND_SERVER for s in calls)
    assert calls == [
        s
        for s in spans
        if s["kind"] == SPAN_KIND_SERVER and s["attrs"].get("mcp.method.name") == "tools/call"
    ]
    assert len({s["attrs"]["jsonrpc.request.id"] for s in calls}) == len(calls)
    assert all(s["name"] == f"tools/call {s['attrs']['gen_ai.tool.name']}" for s in calls)

    # phasegate's attributes on each of them, in call order.
    expected = [
        ("task_start", "STRATEGIZE", True),
        ("phase_advance", "STRATEGIZE", False),  # refused: no lease token was used
        ("evidence_put", "STRATEGIZE", True),
        ("phase_advance", "SPEC", True),
        ("phase_backtrack", "STRATEGIZE", True),
        ("prompt_attest", "STRATEGIZE", True),
        ("prompt_attest", "STRATEGIZE", True),
        ("evidence_put", "STRATEGIZE", True),
    ]
    assert [s["attrs"]["gen_ai.tool.name"] for s in calls] == [t for t, _, _ in expected]
    for span, (_, phase, leased) in zip(calls, expected, strict=True):
        attrs = span["attrs"]
        assert attrs["phasegate.task.id"] == task
        assert attrs["phasegate.phase"] == phase
        assert isinstance(attrs["phasegate.ledger.seq"], int)
        assert ("phasegate.lease.token" in attrs) is leased, attrs
        if leased:
            assert attrs["phasegate.lease.token"] >= 1
    skip_call = calls[1]
    assert skip_call["attrs"]["phasegate.error.code"] == "PHASE_SKIP"
    assert skip_call["status"].get("code") == STATUS_ERROR
    assert not any("phasegate.error.code" in s["attrs"] for s in calls if s is not skip_call)

    # Child spans: three transitions (one refused) and one violation, under their calls.
    transitions = [s for s in spans if s["name"] == "agent.state.transition"]
    assert [s["attrs"]["phasegate.move"] for s in transitions] == [
        "advance",
        "advance",
        "backtrack",
    ]
    for t, parent in zip(transitions, (calls[1], calls[3], calls[4]), strict=True):
        assert (t["traceId"], t["parentSpanId"]) == (parent["traceId"], parent["spanId"])
        assert t["attrs"]["phasegate.task.id"] == task
    assert transitions[0]["status"].get("code") == STATUS_ERROR
    assert [t["attrs"].get("phasegate.phase") for t in transitions[1:]] == ["SPEC", "STRATEGIZE"]
    violations = [s for s in spans if s["name"] == "process.violation"]
    assert len(violations) == 1
    (violation,) = violations
    assert violation["attrs"]["phasegate.error.code"] == "PHASE_SKIP"
    assert violation["attrs"]["gen_ai.tool.name"] == "phase_advance"
    assert violation["parentSpanId"] == skip_call["spanId"]

    # Counters equal the number of their ledger entries; this run made one of each.
    totals = assert_counters_match_ledger(state / "telemetry", state)
    for counter in (
        "phase_skips_attempted",
        "phase_backtracks",
        "prompt_drift_detected",
        "tool_calls_rejected",
    ):
        assert totals[counter] == 1, totals

    # Span -> ledger: the seq on a span is an entry of that span's trace, and back.
    entries = {e["seq"]: e for e in ledger(state)}
    call_traces = {s["traceId"] for s in calls}
    for span in calls:
        entry = entries[span["attrs"]["phasegate.ledger.seq"]]
        assert entry["refs"]["trace_id"] == span["traceId"] == entry["trace_id_column"]
    assert {e["refs"]["trace_id"] for e in entries.values()} <= call_traces
    skip_entries = [e for e in entries.values() if e["refs"]["trace_id"] == skip_call["traceId"]]
    assert [e["type"] for e in skip_entries] == ["phase.skip_blocked", "tool.rejected"]
    traced = json.loads(cli("telemetry", "trace", skip_call["traceId"], *common(state)).stdout)
    assert [(e["seq"], e["type"]) for e in traced] == [(e["seq"], e["type"]) for e in skip_entries]
    seq = skip_call["attrs"]["phasegate.ledger.seq"]
    shown = json.loads(cli("ledger", "show", str(seq), *common(state)).stdout)
    assert (shown["type"], shown["refs"]["trace_id"]) == ("tool.rejected", skip_call["traceId"])

    # The client's traceparent: the call joined the client's trace, and so did its entry.
    joined = calls[-1]
    assert joined["traceId"] == client_trace
    assert joined["parentSpanId"] and joined["parentSpanId"] not in by_id  # a remote parent
    assert entries[joined["attrs"]["phasegate.ledger.seq"]]["refs"]["trace_id"] == client_trace
    traced = json.loads(cli("telemetry", "trace", client_trace.upper(), *common(state)).stdout)
    assert [e["type"] for e in traced] == ["evidence.recorded"]

    # The supervisor's summary.
    summary = json.loads(cli("telemetry", "summary", *common(state)).stdout)
    n = sum(run.calls.values())
    assert summary["tool_calls"] == n
    assert summary["tool_success_rate"] == round((n - 1) / n, 4)
    assert summary["refusals_by_code"] == {"PHASE_SKIP": 1}
    assert (summary["transitions"], summary["backtracks"], summary["drift_events"]) == (1, 1, 1)
    assert summary["loops"] == []
    latency = summary["tool_latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] < 10_000
    text = cli("telemetry", "summary", "--state-dir", str(state)).stdout
    assert "refusals: PHASE_SKIP=1" in text and "backtracks: 1" in text
    assert "drift events: 1" in text and "tool latency: p50" in text


def common(state: Path) -> tuple[str, ...]:
    return ("--state-dir", str(state), "--json")


# ------------------------------------------------------------------ 2. OTLP/HTTP


class Receiver:
    """A minimal OTLP/HTTP collector on 127.0.0.1: records every POST body by path."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        lock = threading.Lock()
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with lock:
                    bodies.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def traces(self) -> list[ExportTraceServiceRequest]:
        return [
            ExportTraceServiceRequest.FromString(b) for p, b in self.bodies if p == "/v1/traces"
        ]

    def metrics(self) -> list[ExportMetricsServiceRequest]:
        return [
            ExportMetricsServiceRequest.FromString(b) for p, b in self.bodies if p == "/v1/metrics"
        ]


def _resource_attrs(resource: Any) -> dict[str, str]:
    return {a.key: a.value.string_value for a in resource.attributes}


async def drive_a_little(agent: Agent, task: str) -> None:
    ok(await agent.call_tool("task_start", {"title": "otlp", "task": task}))
    refusal(await agent.call_tool("phase_advance", {"task": task, "to": "PLAN"}), "PHASE_SKIP")
    name, content = STRATEGY
    ok(await agent.call_tool("evidence_put", {"task": task, "name": name, "content": content}))
    assert ok(await agent.call_tool("phase_advance", {"task": task}))["phase"] == "SPEC"
    ok(await agent.call_tool("task_status", {"task": task}))


async def test_spans_and_metrics_reach_an_otlp_http_collector_with_the_phasegate_resource(
    tmp_path: Path,
) -> None:
    state = state_with(tmp_path)
    with Receiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
        async with serving(state, env) as agent:
            await drive_a_little(agent, "OTLP-1")
        run = agent.run
        assert run.closed_in < 10, run.closed_in
        assert EXPORT_PROBLEM not in run.stderr and "Traceback" not in run.stderr, run.stderr

        otlp_spans = []
        for request in receiver.traces():
            for rs in request.resource_spans:
                assert _resource_attrs(rs.resource)["service.name"] == "phasegate"
                otlp_spans += [s for ss in rs.scope_spans for s in ss.spans]
        names = Counter(s.name for s in otlp_spans)
        assert {n: c for n, c in names.items() if n.startswith("tools/call")} == {
            f"tools/call {t}": c for t, c in run.calls.items()
        }
        assert names["agent.state.transition"] == 2 and names["process.violation"] == 1
        # Both sinks got the very same spans (the shutdown flushed the collector too).
        assert {s.span_id.hex() for s in otlp_spans} == {
            s["spanId"] for s in file_spans(state / "telemetry")
        }
        start = next(s for s in otlp_spans if s.name == "tools/call task_start")
        attrs = {a.key: a.value for a in start.attributes}
        assert attrs["phasegate.task.id"].string_value == "OTLP-1"
        assert attrs["phasegate.phase"].string_value == "STRATEGIZE"

        metric_names = set()
        for request in receiver.metrics():
            for rm in request.resource_metrics:
                assert _resource_attrs(rm.resource)["service.name"] == "phasegate"
                metric_names |= {m.name for sm in rm.scope_metrics for m in sm.metrics}
        assert {
            "mcp.server.operation.duration",
            "phase_skips_attempted",
            "tool_calls_rejected",
        } <= metric_names


async def test_a_dead_collector_costs_no_tool_call_and_no_prompt_exit_and_is_logged_once(
    tmp_path: Path,
) -> None:
    state = state_with(tmp_path)
    with refusing_port() as port:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
        async with serving(state, env) as agent:
            started = time.monotonic()
            await drive_a_little(agent, "DEAD-1")
            for _ in range(5):
                ok(await agent.call_tool("task_list", {}))
            calls_took = time.monotonic() - started
            deadline = time.monotonic() + 20
            while EXPORT_PROBLEM not in agent.run.stderr:  # the first export has failed
                assert time.monotonic() < deadline, agent.run.stderr
                await asyncio.sleep(0.02)
            # Metrics export every 0.5 s: over the next 1.2 s at least two more exports fail,
            # and none of them may be logged again (a time-driven behaviour, so wall-clock).
            await asyncio.sleep(1.2)
    run = agent.run
    assert calls_took < 5, calls_took
    # The server exits promptly and by itself: the SDK client terminates a server still there
    # 2 s after stdin closed, and a SIGTERM during the telemetry flush shows as a
    # KeyboardInterrupt traceback (which is what happened before the flush had a deadline).
    assert run.closed_in < 10, run.closed_in
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr, run.stderr
    assert run.stderr.count(EXPORT_PROBLEM) == 1, run.stderr
    assert "Connection refused" in run.stderr
    # The local files are whole all the same.
    assert_counters_match_ledger(state / "telemetry", state)
    names = Counter(s["name"] for s in file_spans(state / "telemetry"))
    assert names["tools/call task_list"] == 5 and names["process.violation"] == 1


# ------------------------------------------------------------------ 3. unwritable files


async def test_an_unwritable_telemetry_directory_is_reported_once_and_every_tool_still_works(
    tmp_path: Path, sample_project: Path
) -> None:
    state = state_with(tmp_path, toml_text(sample_project, "\n" + FAST_METRICS))
    blocker = state / "telemetry"
    blocker.write_text("a regular file where the telemetry directory should be\n")
    await register(state, tmp_path)
    task = "RO-1"
    async with serving(state) as agent:
        listed = {t.name for t in (await agent.session.list_tools()).tools}
        ok(await agent.call_tool("task_start", {"title": "no telemetry files", "task": task}))
        ok(await agent.call_tool("task_list", {}))
        refusal(await agent.call_tool("phase_advance", {"task": task, "to": "PLAN"}), "PHASE_SKIP")
        ok(await agent.call_tool("prompt_attest", {"task": task, "prompt": "You are A."}))
        ok(await agent.call_tool("prompt_attest", {"task": task, "prompt": "You are B."}))
        ok(await agent.call_tool("lease_renew", {"task": task}))
        ok(await agent.call_tool("lease_release", {"task": task}))
        ok(await agent.call_tool("lease_acquire", {"task": task}))
        await advance_to(agent, task, Phase.VERIFY)  # evidence_put, phase_advance, task_status
        ok(await agent.call_tool("evidence_list", {"task": task}))
        ok(
            await agent.call_tool(
                "evidence_read", {"task": task, "phase": "STRATEGIZE", "name": STRATEGY[0]}
            )
        )
        result = ok(await agent.call_tool("verify_run", {"task": task}))
        assert result["passed"] is True, result
        back = {"task": task, "to": "IMPLEMENT", "reason": "one more test"}
        assert ok(await agent.call_tool("phase_backtrack", back))["phase"] == "IMPLEMENT"
        await every_module_tool(agent, task, advance_to)  # IMPLEMENT to MONITOR
        ok(await agent.call_tool("ledger_tail", {"task": task}))
        assert ok(await agent.call_tool("ledger_verify", {}))["ok"] is True
        ok(await agent.call_tool("controls_status", {}))
    run = agent.run
    assert set(run.calls) == listed, listed ^ set(run.calls)
    assert run.closed_in < 10
    assert run.stderr.count("telemetry files disabled") == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert blocker.read_text().startswith("a regular file")
    types = Counter(e["type"] for e in ledger(state))
    assert types["phase.skip_blocked"] == types["prompt.drift"] == types["tool.rejected"] == 1
    assert types["phase.backtracked"] == 1


FILL_THE_DISK = """
import logging, os, sys, time
from pathlib import Path
from opentelemetry import metrics, trace
from server.telemetry import Telemetry

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
telemetry = Telemetry.setup(Path(sys.argv[1]), "test", export_interval_s=0.05)
# The disk "fills up" after start: the open telemetry files now write to /dev/full (ENOSPC).
full = os.open("/dev/full", os.O_WRONLY)
paths = {str(p) for p in telemetry.files}
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{fd}") in paths:
            os.dup2(full, int(fd))
    except OSError:
        pass
tracer = trace.get_tracer("t")
counter = metrics.get_meter("t").create_counter("c")
for _ in range(10):
    with tracer.start_as_current_span("s"):
        counter.add(1)
    telemetry.tracer_provider.force_flush()
    time.sleep(0.05)
telemetry.shutdown()
print("still running")
"""


def test_a_telemetry_disk_that_fills_up_after_start_is_reported_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FILL_THE_DISK, str(tmp_path / "telemetry")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout == "still running\n", done.stderr
    reports = re.findall(r"^(?:WARNING|ERROR|CRITICAL):.*$", done.stderr, re.MULTILINE)
    assert len(reports) == 1 and EXPORT_PROBLEM in reports[0], done.stderr
    assert "No space left on device" in reports[0]


# ------------------------------------------------------------------ 4. metric cardinality


async def test_metrics_carry_no_task_ids_so_more_tasks_add_no_series(tmp_path: Path) -> None:
    state = state_with(tmp_path)
    tasks = [f"CARD-{secrets.token_hex(4)}" for _ in range(3)]
    async with serving(state) as agent:
        for task in tasks:
            ok(await agent.call_tool("task_start", {"title": "cardinality", "task": task}))
            refusal(
                await agent.call_tool("phase_advance", {"task": task, "to": "PLAN"}), "PHASE_SKIP"
            )
            ok(await agent.call_tool("prompt_attest", {"task": task, "prompt": "You are A."}))
            ok(await agent.call_tool("prompt_attest", {"task": task, "prompt": "You are B."}))
    directory = state / "telemetry"
    # The spans name the tasks; the metrics never do.
    assert {s["attrs"].get("phasegate.task.id") for s in file_spans(directory)} >= set(tasks)
    (metrics_file,) = directory.glob("metrics-*.jsonl")
    raw = metrics_file.read_text()
    assert not [t for t in tasks if t in raw]
    points = file_metric_points(directory)
    assert points
    for name, attrs, _ in points:
        assert not any("task" in key for key in attrs), (name, attrs)
        assert not any(isinstance(v, str) and v.startswith("CARD-") for v in attrs.values())
    # Three tasks doing the same thing: one series per counter, counting all three.
    series = counter_series(directory)
    for counter in ("phase_skips_attempted", "prompt_drift_detected", "tool_calls_rejected"):
        assert list(series[counter].values()) == [3], series[counter]
    durations = {
        json.dumps(a, sort_keys=True): int(point["count"])  # the last cumulative point wins
        for n, a, point in points
        if n == "mcp.server.operation.duration"
    }
    call = {"mcp.method.name": "tools/call"}
    assert durations == {
        json.dumps(call | {"gen_ai.tool.name": "task_start"}, sort_keys=True): 3,
        json.dumps(
            call | {"gen_ai.tool.name": "phase_advance", "error.type": "PHASE_SKIP"},
            sort_keys=True,
        ): 3,
        json.dumps(call | {"gen_ai.tool.name": "prompt_attest"}, sort_keys=True): 6,
    }
