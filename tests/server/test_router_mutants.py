"""The router's checks, each pinned by what a caller reads: tests written against the mutants
that survived the router's other tests (scripts/mutation.py, target server/router.py).

Driven in memory through the SDK client over the real server, or the Router itself over a real
runtime; every refusal is checked by its code and its details, not by its text."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_kit import tampering
from module_kit import FIRST_DRAFT, draft_for, register
from opentelemetry.sdk.trace import TracerProvider
from server_kit import (
    ARTIFACTS,
    INSTANCE,
    REPO,
    files_under,
    journal,
    ledger_rows,
    make_config,
    memory_client,
    ok,
    put_artifact,
    refusal,
)

from enforcer.config import ActorConfig
from enforcer.ledger import checkpoint
from enforcer.model import Caller
from enforcer.phases import ORDER, Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer
from server.bounds import MAX_KEYS
from server.catalogue import tool_table
from server.journal import Journal
from server.router import Router
from server.tools import HANDLERS

NOT_DONE = [p.value for p in ORDER if p is not Phase.DONE]


async def test_a_refusing_ledger_refuses_writes_but_answers_a_phase_bound_read(
    state_dir: Path, sample_project: Path
) -> None:
    """A ledger that failed its check refuses every write (FROZEN, cause ledger) in the router,
    before a handler stages bytes; a read-only tool that the table binds to phases still
    answers, because only writes are refused."""
    config = make_config(sample_project, tools={"task_status": NOT_DONE})
    async with memory_client(state_dir, config) as c:
        ok(await c.call_tool("task_start", {"title": "before", "task": "T1"}))
        await put_artifact(c, "T1", Phase.STRATEGIZE)
        ok(await c.call_tool("phase_advance", {"task": "T1"}))
    signed = checkpoint.newest_size(state_dir / "checkpoints")
    assert signed == len(ledger_rows(state_dir))
    with tampering(state_dir) as conn:  # the tail is lost, as a truncated WAL loses it
        conn.execute("DELETE FROM ledger WHERE seq >= ?", (signed - 1,))

    async with memory_client(state_dir, config) as c:
        status = ok(await c.call_tool("task_status", {"task": "T1"}))
        assert status["phase"] == "SPEC"
        name, content = ARTIFACTS[Phase.SPEC]
        put = {"task": "T1", "name": name, "content": content}
        error = refusal(await c.call_tool("evidence_put", put), "FROZEN")
        assert (error["details"]["cause"], error["details"]["fault"]) == ("ledger", "truncated")
    assert files_under(state_dir / "evidence" / "T1" / "SPEC") == set()
    assert len(ledger_rows(state_dir)) == signed - 1


async def test_a_read_only_draft_tool_bound_to_phases_is_refused_out_of_its_phases(
    state_dir: Path, sample_project: Path
) -> None:
    """A read-only tool the table binds to phases, called on a draft, is checked against the
    phase of the draft's task: the router looks the task up for it (for an unbound read it
    does not need to)."""
    config = make_config(sample_project, tools={"draft_show": ["PR"]})
    await register(state_dir, state_dir.parent, config)
    async with memory_client(state_dir, config) as c:
        ok(await c.call_tool("task_start", {"title": "drafts", "task": "D1"}))
        assert await draft_for(state_dir, "D1") == FIRST_DRAFT
        error = refusal(await c.call_tool("draft_show", {"draft": FIRST_DRAFT}), "OUT_OF_PHASE")
        assert error["details"]["phase"] == "STRATEGIZE"
        assert error["details"]["allowed_phases"] == ["PR"]
        # Unbound (every phase), the same read answers and is journaled on no task.
        listed = ok(await c.call_tool("draft_diff", {"draft": FIRST_DRAFT}))
        assert listed
    assert [line["tool"] for line in journal(state_dir, None)][-1] == "draft_diff"
    assert [(line["tool"], line["code"]) for line in journal(state_dir, "D1")][-1] == (
        "draft_show",
        "OUT_OF_PHASE",
    )


def _digest(outline: object) -> str:
    text = json.dumps(outline, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


async def test_arguments_past_the_bounds_are_hashed_by_their_outline_only(
    state_dir: Path, sample_project: Path
) -> None:
    """Arguments refused by the bounds (or not an object at all) are not hashed whole (that
    could take seconds): the refusal's args_sha256 is the hash of their outline."""
    many = {f"k{i:02d}": i for i in range(MAX_KEYS + 1)}
    async with memory_client(state_dir, make_config(sample_project)) as c:
        error = refusal(await c.call_tool("task_list", many), "INVALID_ARGUMENT")
        assert (error["details"]["limit"], error["details"]["max"]) == ("keys", MAX_KEYS)
    (rejected,) = [e for e in ledger_rows(state_dir) if e["type"] == "tool.rejected"]
    outline = {"keys": MAX_KEYS + 1, "first": [f"k{i:02d}" for i in range(8)]}
    assert rejected["data"]["args_sha256"] == _digest(outline)
    assert journal(state_dir, None)[-1]["args_sha256"] == _digest(outline)

    config = make_config(sample_project)
    alice = Caller("alice", "operator", INSTANCE)
    async with open_runtime(state_dir, config=config) as rt:
        journal_ = Journal(rt.paths.evidence)
        try:
            router = Router(Enforcer(rt), tool_table({}), HANDLERS, journal_)
            refusal(await router.call("task_list", [1, 2], alice), "INVALID_ARGUMENT")
        finally:
            journal_.close()
    last = [e for e in ledger_rows(state_dir) if e["type"] == "tool.rejected"][-1]
    assert last["data"]["args_sha256"] == _digest({"type": "list"})


async def test_an_invalid_call_names_its_first_problem_and_lists_them_all_in_order(
    state_dir: Path, sample_project: Path
) -> None:
    async with memory_client(state_dir, make_config(sample_project)) as c:
        result = await c.call_tool("evidence_put", {"task": 1, "name": 2, "content": 3})
    error = refusal(result, "INVALID_ARGUMENT")
    problems = error["details"]["problems"]
    assert [p["argument"] for p in problems] == ["task", "name", "content"]
    assert all(set(p) == {"argument", "problem", "message"} for p in problems)
    assert error["message"].startswith("evidence_put: task: ")
    assert error["hint"] == "evidence_put takes task, name, content, fencing_token"


async def test_a_forbidden_call_lists_what_the_caller_may_call_naming_no_task(
    state_dir: Path, sample_project: Path
) -> None:
    """The hint of FORBIDDEN names the tools the caller's role may call on no task: the reads
    (and task_start, for a role that may start tasks)."""
    config = make_config(sample_project, actors={"vic": ActorConfig(role="viewer")})
    async with memory_client(state_dir, config, actor="vic") as viewer:
        error = refusal(await viewer.call_tool("task_start", {"title": "no"}), "FORBIDDEN")
    assert error["details"] == {"role": "viewer", "required": "operator"}
    listed = error["hint"].removeprefix("tools you may call: ").split(", ")
    assert {"task_list", "ledger_tail", "ledger_verify", "controls_status"} <= set(listed)
    assert "task_start" not in listed


async def test_an_invalid_call_reports_at_most_ten_problems(
    state_dir: Path, sample_project: Path
) -> None:
    unknown = {f"extra{i:02d}": i for i in range(12)}  # within the bounds, each one forbidden
    async with memory_client(state_dir, make_config(sample_project)) as c:
        result = await c.call_tool("task_list", unknown)
    problems = refusal(result, "INVALID_ARGUMENT")["details"]["problems"]
    assert [p["argument"] for p in problems] == [f"extra{i:02d}" for i in range(10)]
    assert {p["problem"] for p in problems} == {"extra_forbidden"}


async def test_unreadable_controls_are_logged_once_however_many_calls_they_refuse(
    state_dir: Path, sample_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = state_dir / "phasegate.db"
    async with memory_client(state_dir, make_config(sample_project)) as c:
        ok(await c.call_tool("task_start", {"title": "t", "task": "T1"}))
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("ALTER TABLE controls RENAME TO gone")
            with caplog.at_level("ERROR", logger="server.router"):
                for _ in range(3):
                    error = refusal(await c.call_tool("lease_acquire", {"task": "T1"}), "FROZEN")
                    assert error["details"] == {"cause": "controls"}
        finally:
            conn.execute("ALTER TABLE gone RENAME TO controls")
            conn.close()
    logged = [r for r in caplog.records if r.name == "server.router"]
    assert [r.getMessage().startswith("controls unreadable") for r in logged] == [True]


async def test_the_span_of_a_call_names_its_task_only_when_the_task_exists(
    state_dir: Path, sample_project: Path
) -> None:
    """The router puts the task id on the current span (the SDK's server span) when the task
    exists, and the phase and the refusal code beside it."""
    tracer = TracerProvider().get_tracer("test")
    config = make_config(sample_project)
    alice = Caller("alice", "operator", INSTANCE)
    async with open_runtime(state_dir, config=config) as rt:
        journal_ = Journal(rt.paths.evidence)
        try:
            router = Router(Enforcer(rt), tool_table({}), HANDLERS, journal_)
            ok(await router.call("task_start", {"title": "spans", "task": "S1"}, alice))
            with tracer.start_as_current_span("tools/call task_status") as known:
                ok(await router.call("task_status", {"task": "S1"}, alice))
            with tracer.start_as_current_span("tools/call phase_advance") as unknown:
                refusal(await router.call("phase_advance", {"task": "NOPE"}, alice), "NOT_FOUND")
        finally:
            journal_.close()
    attrs = dict(known.attributes or {})  # type: ignore[attr-defined]
    assert attrs["phasegate.task.id"] == "S1"
    assert attrs["phasegate.phase"] == "STRATEGIZE"
    assert "phasegate.error.code" not in attrs
    attrs = dict(unknown.attributes or {})  # type: ignore[attr-defined]
    assert "phasegate.task.id" not in attrs
    assert attrs["phasegate.error.code"] == "NOT_FOUND"


# A process of its own: the duration histogram reports to the global meter provider, which a
# process may set once.
_MEASURED = """
import asyncio, json, sys, time
from pathlib import Path
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
from enforcer.config import Config
from enforcer.model import Caller
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer
from server.catalogue import tool_table
from server.journal import Journal
from server.router import Router
from server.tools import HANDLERS


async def main(state):
    async with open_runtime(state, config=Config()) as rt:
        journal = Journal(rt.paths.evidence)
        try:
            router = Router(Enforcer(rt), tool_table({}), HANDLERS, journal)
            # An argument of 2 MB (within the bounds; refused by the schema) is encoded and hashed
            # whole: the call takes milliseconds, so a unit slip of 0.1% shows at 3 decimals.
            junk = {"junk": "x" * 2_000_000}
            started = time.perf_counter()
            await router.call("task_list", junk, Caller("alice", "operator", "test"))
            return time.perf_counter() - started
        finally:
            journal.close()


wall = asyncio.run(main(Path(sys.argv[1])))
points = [
    p.sum
    for rm in reader.get_metrics_data().resource_metrics
    for sm in rm.scope_metrics
    for m in sm.metrics
    if m.name == "mcp.server.operation.duration"
    for p in m.data.data_points
]
print(json.dumps({"points": points, "wall": wall}))
"""


def test_the_journal_and_the_duration_metric_give_one_call_the_same_duration(
    state_dir: Path,
) -> None:
    """One measurement, two readers: the journal's duration_ms is the histogram's seconds in
    milliseconds, and no more than the wall time around the whole call."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(state_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    (seconds,) = measured["points"]
    (line,) = journal(state_dir, None)
    assert (line["tool"], line["outcome"], line["code"]) == (
        "task_list",
        "refused",
        "INVALID_ARGUMENT",
    )
    assert line["duration_ms"] == round(seconds * 1000, 3)
    # At 1 ms or more, 0.1% of the duration is at least one unit of the third decimal.
    assert 0.001 <= seconds <= measured["wall"]
