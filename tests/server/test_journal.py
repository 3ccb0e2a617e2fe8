"""The call journal: every routed call, allowed or refused, appends exactly one JSON line to
state/evidence/<TASK>/journal.jsonl, or to state/evidence/_calls/journal.jsonl when the call
names no task or one that does not exist. Lines join the ledger by seq and the trace by id."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from server_kit import (
    ARTIFACTS,
    journal,
    ledger_rows,
    memory_client,
    ok,
    refusal,
    stdio_session,
    write_toml,
)

from enforcer.config import Config
from enforcer.phases import Phase

FIELDS = {"ts", "actor", "instance", "tool", "args_sha256", "outcome", "code", "seq", "trace_id"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def args_sha256(arguments: dict[str, Any]) -> str:
    raw = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


async def test_every_call_on_a_task_allowed_or_refused_appends_one_line_to_its_journal(
    state_dir: Path, config: Config
) -> None:
    name, content = ARTIFACTS[Phase.STRATEGIZE]
    calls: list[tuple[str, dict[str, Any], str | None]] = [
        ("task_start", {"title": "journal", "task": "J1"}, None),
        ("task_status", {"task": "J1"}, None),
        ("phase_advance", {"task": "J1"}, "EVIDENCE_MISSING"),
        ("evidence_put", {"task": "J1", "name": name, "content": content}, None),
        ("verify_run", {"task": "J1"}, "OUT_OF_PHASE"),
        ("phase_advance", {"task": "J1", "to": "PLAN"}, "PHASE_SKIP"),
        ("task_start", {"title": "again", "task": "J1"}, "CONFLICT"),
        ("evidence_read", {"task": "J1", "phase": "SPEC", "name": "x.md"}, "NOT_FOUND"),
        ("phase_advance", {"task": "J1"}, None),
        ("ledger_tail", {"task": "J1", "limit": 3}, None),
    ]
    async with memory_client(state_dir, config) as c:
        for tool, arguments, code in calls:
            result = await c.call_tool(tool, arguments)
            if code is None:
                ok(result)
            else:
                refusal(result, code)

    lines = journal(state_dir, "J1")
    assert len(lines) == len(calls)
    entries = {e["seq"]: e for e in ledger_rows(state_dir)}
    for line, (tool, arguments, code) in zip(lines, calls, strict=True):
        assert set(line) >= FIELDS, line
        assert RFC3339.match(line["ts"])
        assert (line["actor"], line["instance"]) == ("alice", "test-instance")
        assert line["tool"] == tool
        assert line["args_sha256"] == args_sha256(arguments)
        assert line["outcome"] == ("ok" if code is None else "refused")
        assert line["code"] == code
        assert "trace_id" in line
        if code is not None:  # a refusal's seq is its tool.rejected entry
            entry = entries[line["seq"]]
            assert entry["type"] == "tool.rejected"
            assert entry["data"] == {"tool": tool, "code": code, "args_sha256": line["args_sha256"]}
            assert entry["subject"] == {"task": "J1"}
    by_tool = [(line["tool"], line["seq"]) for line in lines]
    assert entries[by_tool[0][1]]["type"] in {"task.started", "lease.acquired"}
    assert entries[by_tool[3][1]]["type"] == "evidence.recorded"
    assert entries[by_tool[8][1]]["type"] == "phase.advanced"
    assert by_tool[1][1] is None and by_tool[9][1] is None  # reads append nothing
    assert len({line["seq"] for line in lines if line["seq"] is not None}) == 8
    assert journal(state_dir, None) == []


async def test_calls_naming_no_task_or_an_unknown_one_go_to_the_calls_journal(
    state_dir: Path, config: Config
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("task_list", {}),
        ("controls_status", {}),
        ("ledger_verify", {}),
        ("task_status", {"task": "NOPE"}),
        ("evidence_put", {"task": "NOPE", "name": "spec.md", "content": "x"}),
        ("phase_advance", {"task": "GHOST"}),
        ("task_status", {"task": "T\x00"}),
        ("task_status", {"task": 5}),
        ("task_start", {"title": "", "task": "NEW"}),
    ]
    async with memory_client(state_dir, config) as c:
        for tool, arguments in calls:
            await c.call_tool(tool, arguments)
    lines = journal(state_dir, None)
    assert [line["tool"] for line in lines] == [tool for tool, _ in calls]
    assert [line["outcome"] for line in lines] == ["ok"] * 3 + ["refused"] * 6
    assert [line["code"] for line in lines[3:]] == ["NOT_FOUND"] * 3 + ["INVALID_ARGUMENT"] * 3
    assert {p.name for p in (state_dir / "evidence").iterdir()} == {"_calls"}
    rejected = [e for e in ledger_rows(state_dir) if e["type"] == "tool.rejected"]
    assert len(rejected) == 6 and all(e["subject"] == {} for e in rejected)


async def test_a_journal_line_and_its_ledger_entry_carry_the_callers_trace_id(
    state_dir: Path, config: Config
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    meta = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    async with memory_client(state_dir, config) as c:
        await c.call_tool("task_start", {"title": "traced", "task": "J2"}, meta=meta)
        await c.call_tool("phase_advance", {"task": "J2", "to": "DONE"}, meta=meta)
    lines = journal(state_dir, "J2")
    assert [line["trace_id"] for line in lines] == [trace_id, trace_id]
    for line in lines:
        entry = next(e for e in ledger_rows(state_dir) if e["seq"] == line["seq"])
        assert entry["refs"]["trace_id"] == trace_id


async def test_an_internal_failure_reading_an_existing_task_is_journaled_under_that_task(
    state_dir: Path, config: Config
) -> None:
    name, content = ARTIFACTS[Phase.STRATEGIZE]
    async with memory_client(state_dir, config) as c:
        await c.call_tool("task_start", {"title": "broken blob", "task": "J3"})
        rec = ok(
            await c.call_tool("evidence_put", {"task": "J3", "name": name, "content": content})
        )
        blob = state_dir / "blobs" / "sha256" / rec["sha256"][:2] / rec["sha256"]
        blob.unlink()
        blob.mkdir()  # unreadable as a file: an unexpected OSError inside the read
        read = {"task": "J3", "phase": "STRATEGIZE", "name": name}
        error = refusal(await c.call_tool("evidence_read", read), "INTERNAL")
    line = journal(state_dir, "J3")[-1]
    assert (line["tool"], line["code"]) == ("evidence_read", "INTERNAL")
    assert journal(state_dir, None) == []
    rejected = ledger_rows(state_dir)[-1]
    assert rejected["type"] == "tool.rejected" and rejected["subject"] == {"task": "J3"}
    assert re.fullmatch(r"[0-9a-f]{16}", error["details"]["correlation_id"])  # 8 random bytes


async def test_concurrent_calls_each_append_one_whole_line(state_dir: Path, config: Config) -> None:
    async with memory_client(state_dir, config) as c:
        await c.call_tool("task_start", {"title": "busy", "task": "J4"})
        results = await asyncio.gather(
            *(c.call_tool("task_status", {"task": "J4"}) for _ in range(50)),
            *(c.call_tool("phase_advance", {"task": "J4", "to": "PR"}) for _ in range(20)),
        )
    assert sum(r.is_error for r in results) == 20
    lines = journal(state_dir, "J4")  # json.loads of every line: none torn or interleaved
    assert len(lines) == 71
    assert sorted(line["code"] or "" for line in lines).count("PHASE_SKIP") == 20


async def test_two_server_processes_journal_the_same_task_side_by_side(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    name, content = ARTIFACTS[Phase.STRATEGIZE]
    put = {"task": "J5", "name": name, "content": content}
    async with stdio_session(state_dir, "alice") as alice, stdio_session(state_dir, "bob") as bob:
        await alice.call_tool("task_start", {"title": "two", "task": "J5"})
        await asyncio.gather(
            *(alice.call_tool("evidence_put", put) for _ in range(10)),
            *(bob.call_tool("evidence_put", put) for _ in range(10)),
        )
    lines = journal(state_dir, "J5")
    assert len(lines) == 21
    outcomes = {(line["actor"], line["outcome"], line["code"]) for line in lines}
    assert outcomes == {("alice", "ok", None), ("bob", "refused", "LEASE_HELD")}
    assert {line["instance"] for line in lines if line["actor"] == "alice"} != {
        line["instance"] for line in lines if line["actor"] == "bob"
    }


async def test_a_task_started_with_a_generated_id_journals_its_start_under_that_id(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as c:
        task = ok(await c.call_tool("task_start", {"title": "generated"}))["task"]
    lines = journal(state_dir, task)
    assert [(line["tool"], line["outcome"]) for line in lines] == [("task_start", "ok")]
    assert not (state_dir / "evidence" / "_calls").exists()
