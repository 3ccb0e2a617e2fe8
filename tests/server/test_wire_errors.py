"""The error contract as a client receives it: every code that can reach the wire arrives as a
tool result with is_error true whose structured content (and text, as JSON) is exactly
{"error": {code, message, hint, details}} -- over a real stdio subprocess, except the few codes
that only an in-process fault can produce. Bad input changes nothing but the record of its
refusal."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from server_kit import (
    ARTIFACTS,
    advance_to,
    cli,
    files_under,
    journal,
    ledger_rows,
    ledger_types,
    memory_client,
    ok,
    put_artifact,
    refusal,
    stdio_session,
    write_toml,
)

from enforcer.config import Config
from enforcer.phases import Phase

STRATEGY = {"task": "T1", "name": "strategy.md", "content": ARTIFACTS[Phase.STRATEGIZE][1]}


async def _start(session: Any, task: str = "T1") -> dict[str, Any]:
    return ok(await session.call_tool("task_start", {"title": "wire errors", "task": task}))


# ------------------------------------------------------------------ codes over stdio


async def test_a_wrong_argument_type_is_invalid_argument_naming_the_argument(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        error = refusal(await s.call_tool("task_status", {"task": 5}), "INVALID_ARGUMENT")
        assert error["details"]["problems"][0]["argument"] == "task"
        assert error["details"]["problems"][0]["problem"] == "string_type"


async def test_an_unknown_task_is_not_found(state_dir: Path, sample_project: Path) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        error = refusal(await s.call_tool("task_status", {"task": "NOPE"}), "NOT_FOUND")
        assert error["details"] == {"task": "NOPE"}
        refusal(await s.call_tool("evidence_put", STRATEGY | {"task": "NOPE"}), "NOT_FOUND")


async def test_a_tool_outside_its_phases_is_out_of_phase_with_the_tools_allowed_now(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        error = refusal(await s.call_tool("verify_run", {"task": "T1"}), "OUT_OF_PHASE")
        assert error["details"]["phase"] == "STRATEGIZE"
        assert error["details"]["allowed_phases"] == ["IMPLEMENT", "VERIFY"]
        allowed = error["details"]["tools_allowed_now"]
        assert "verify_run" not in allowed and "evidence_put" in allowed


async def test_advancing_more_than_one_phase_is_phase_skip_and_is_ledgered(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        await put_artifact(s, "T1", Phase.STRATEGIZE)
        error = refusal(
            await s.call_tool("phase_advance", {"task": "T1", "to": "PLAN"}), "PHASE_SKIP"
        )
        assert error["details"] == {"phase": "STRATEGIZE", "to": "PLAN", "next": "SPEC"}
        assert ok(await s.call_tool("task_status", {"task": "T1"}))["phase"] == "STRATEGIZE"
    assert "phase.skip_blocked" in ledger_types(state_dir)


async def test_advancing_without_the_gate_artifact_is_evidence_missing(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        error = refusal(await s.call_tool("phase_advance", {"task": "T1"}), "EVIDENCE_MISSING")
        problems = error["details"]["gate"]["problems"]
        assert [(p["artifact"], p["code"]) for p in problems] == [
            ("strategy.md", "EVIDENCE_MISSING")
        ]
    assert "evidence.gate_failed" in ledger_types(state_dir)


async def test_advancing_with_an_artifact_that_fails_its_check_is_evidence_invalid(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        rec = ok(await s.call_tool("evidence_put", STRATEGY | {"content": "# Problem\nonly\n"}))
        assert rec["valid"] is False and rec["problems"]
        error = refusal(await s.call_tool("phase_advance", {"task": "T1"}), "EVIDENCE_INVALID")
        assert error["details"]["gate"]["problems"][0]["code"] == "EVIDENCE_INVALID"


async def test_starting_a_task_with_an_id_that_exists_is_conflict(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        error = refusal(
            await s.call_tool("task_start", {"title": "again", "task": "T1"}), "CONFLICT"
        )
        assert error["details"] == {"task": "T1"}
        tasks = ok(await s.call_tool("task_list", {}))["tasks"]
        assert [(t["task"], t["title"]) for t in tasks] == [("T1", "wire errors")]


async def test_a_viewer_actor_is_forbidden_from_operator_tools_but_may_read(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project, '[actors.bob]\nrole = "viewer"\n')
    async with stdio_session(state_dir, "alice") as alice:
        await _start(alice)
    async with stdio_session(state_dir, "bob") as bob:
        error = refusal(await bob.call_tool("task_start", {"title": "mine"}), "FORBIDDEN")
        assert error["details"] == {"role": "viewer", "required": "operator"}
        refusal(await bob.call_tool("evidence_put", STRATEGY), "FORBIDDEN")
        refusal(await bob.call_tool("lease_acquire", {"task": "T1"}), "FORBIDDEN")
        assert [t["task"] for t in ok(await bob.call_tool("task_list", {}))["tasks"]] == ["T1"]
        status = ok(await bob.call_tool("task_status", {"task": "T1"}))
        assert "evidence_put" not in status["tools_allowed"]
    assert not (state_dir / "evidence" / "T1" / "STRATEGIZE").exists()


async def test_a_freeze_set_from_the_cli_while_the_server_runs_refuses_mutating_tools(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        await asyncio.to_thread(cli, "freeze", "--state-dir", str(state_dir), "--reason", "x")
        error = refusal(await s.call_tool("evidence_put", STRATEGY), "FROZEN")
        assert error["details"] == {}
        refusal(await s.call_tool("task_start", {"title": "new"}), "FROZEN")
        refusal(await s.call_tool("phase_advance", {"task": "T1"}), "FROZEN")
        assert ok(await s.call_tool("controls_status", {}))["frozen"] is True
        assert ok(await s.call_tool("task_status", {"task": "T1"}))["phase"] == "STRATEGIZE"
        assert not (state_dir / "evidence" / "T1" / "STRATEGIZE").exists()

        await asyncio.to_thread(cli, "unfreeze", "--state-dir", str(state_dir), "--reason", "y")
        assert ok(await s.call_tool("evidence_put", STRATEGY))["valid"] is True


async def test_writing_after_the_lease_ttl_passed_is_lease_expired_until_reacquired(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project, "[leases]\nttl_s = 1\n")
    async with stdio_session(state_dir) as s:
        first = (await _start(s))["lease"]
        deadline = time.monotonic() + 5
        while ok(await s.call_tool("task_status", {"task": "T1"}))["lease"]["active"]:
            assert time.monotonic() < deadline, "the 1 s lease never expired"
            await asyncio.sleep(0.05)
        error = refusal(await s.call_tool("evidence_put", STRATEGY), "LEASE_EXPIRED")
        assert error["details"] == {
            "expired_at": first["expires_at"],
            "fencing_token": first["fencing_token"],
        }
        renewed = refusal(await s.call_tool("lease_renew", {"task": "T1"}), "LEASE_EXPIRED")
        assert renewed["details"]["fencing_token"] == first["fencing_token"]
        fresh = ok(await s.call_tool("lease_acquire", {"task": "T1", "ttl_s": 60}))
        assert fresh["fencing_token"] == first["fencing_token"] + 1
        assert ok(await s.call_tool("evidence_put", STRATEGY))["valid"] is True
    assert "lease.expired" in ledger_types(state_dir)


async def test_a_write_that_presents_a_replaced_fencing_token_is_stale_token(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        first = (await _start(s))["lease"]["fencing_token"]
        ok(await s.call_tool("lease_release", {"task": "T1"}))
        # Released: the token names a lease that is over.
        released = refusal(
            await s.call_tool("evidence_put", {**STRATEGY, "fencing_token": first}), "STALE_TOKEN"
        )
        assert released["details"] == {"current": first}
        assert "lease_acquire" in released["hint"]
        second = ok(await s.call_tool("lease_acquire", {"task": "T1"}))["fencing_token"]
        assert second > first
        # Re-taken: the old token is stale on every tool that writes to the task.
        for tool, arguments in (
            ("evidence_put", STRATEGY),
            ("prompt_attest", {"task": "T1", "prompt": "you are a careful agent"}),
            ("phase_advance", {"task": "T1"}),
        ):
            stale = refusal(
                await s.call_tool(tool, {**arguments, "fencing_token": first}), "STALE_TOKEN"
            )
            assert stale["details"] == {"current": second}, tool
        assert not (state_dir / "evidence" / "T1" / "STRATEGIZE").exists()
        # The current token is accepted, and carries the write through.
        put = ok(await s.call_tool("evidence_put", {**STRATEGY, "fencing_token": second}))
        assert put["valid"] is True
        moved = ok(await s.call_tool("phase_advance", {"task": "T1", "fencing_token": second}))
        assert moved["phase"] == "SPEC"
        # Tokens are per (task, phase): the SPEC lease has its own, and only it is current there.
        spec_token = moved["lease"]["fencing_token"]
        back = {"task": "T1", "to": "STRATEGIZE", "reason": "r"}
        stale = refusal(
            await s.call_tool("phase_backtrack", {**back, "fencing_token": spec_token + 1}),
            "STALE_TOKEN",
        )
        assert stale["details"] == {"current": spec_token}
        ok(await s.call_tool("phase_backtrack", {**back, "fencing_token": spec_token}))
        bad = refusal(
            await s.call_tool("evidence_put", {**STRATEGY, "fencing_token": "1"}),
            "INVALID_ARGUMENT",
        )
        assert bad["details"]["problems"][0]["argument"] == "fencing_token"
    rejected = [e for e in ledger_rows(state_dir) if e["type"] == "tool.rejected"]
    # The two identical evidence_put refusals are one entry, and one counting the other.
    counted: dict[str, int] = {}
    for e in rejected:
        counted[e["data"]["code"]] = counted.get(e["data"]["code"], 0) + e["data"].get(
            "refusals", 1
        )
    assert counted == {"STALE_TOKEN": 5, "INVALID_ARGUMENT": 1}


async def test_verify_run_with_a_replaced_fencing_token_is_stale_token_and_runs_nothing(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        await _start(s)
        status = await advance_to(s, "T1", Phase.IMPLEMENT)
        await put_artifact(s, "T1", Phase.IMPLEMENT)
        current = status["lease"]["fencing_token"]
        stale = refusal(
            await s.call_tool("verify_run", {"task": "T1", "fencing_token": current + 1}),
            "STALE_TOKEN",
        )
        assert stale["details"] == {"current": current}
        assert ok(await s.call_tool("evidence_list", {"task": "T1", "phase": "VERIFY"})) == {
            "evidence": []
        }
        ran = ok(await s.call_tool("verify_run", {"task": "T1", "fencing_token": current}))
        assert ran["passed"] is True


async def test_prompt_drift_in_an_error_phase_blocks_the_advance_with_prompt_drift(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project, '[attestation]\nerror_phases = ["STRATEGIZE"]\n')
    async with stdio_session(state_dir) as s:
        await _start(s)
        attest = {"task": "T1", "prompt": "You are a careful engineer.\n"}
        assert ok(await s.call_tool("prompt_attest", attest))["status"] == "baseline"
        assert ok(await s.call_tool("prompt_attest", attest | {"prompt": "x  \r\n"}))[
            "blocks_advance"
        ]
        await put_artifact(s, "T1", Phase.STRATEGIZE)
        error = refusal(await s.call_tool("phase_advance", {"task": "T1"}), "PROMPT_DRIFT")
        assert error["details"] == {"phase": "STRATEGIZE"}
        assert ok(await s.call_tool("task_status", {"task": "T1"}))["drift"] == "ERROR"

        await asyncio.to_thread(
            cli, "attest", "rebaseline", "T1", "--state-dir", str(state_dir), "--reason", "new"
        )
        assert ok(await s.call_tool("phase_advance", {"task": "T1"}))["phase"] == "SPEC"
    assert {"prompt.drift", "phase.advance_blocked", "prompt.rebaselined"} <= set(
        ledger_types(state_dir)
    )


# ------------------------------------------------------------------ bad input over the wire

_BAD_IDS = ["T\x00", "тест", "a\nb", "", "-lead", "x" * 65, "a/b", "..", "T 1"]
_BAD_NAMES = ["тест.md", "a\nb", "x\x00.md", "", "../x", "a/b", ".hidden", "x" * 129]
_CONTENT = ARTIFACTS[Phase.SPEC][1]


def _bad_calls() -> list[tuple[str, dict[str, Any], str]]:
    """(tool, arguments, expected code) -- none of which may change anything."""
    calls: list[tuple[str, dict[str, Any], str]] = [
        # wrong types
        ("task_status", {"task": 5}, "INVALID_ARGUMENT"),
        ("task_status", {"task": ["T1"]}, "INVALID_ARGUMENT"),
        ("task_status", {"task": None}, "INVALID_ARGUMENT"),
        ("evidence_put", {"task": "T1", "name": "x.md", "content": 7}, "INVALID_ARGUMENT"),
        ("lease_acquire", {"task": "T1", "ttl_s": "10"}, "INVALID_ARGUMENT"),
        ("lease_acquire", {"task": "T1", "ttl_s": True}, "INVALID_ARGUMENT"),
        ("lease_acquire", {"task": "T1", "ttl_s": 1.5}, "INVALID_ARGUMENT"),
        ("lease_acquire", {"task": "T1", "ttl_s": 0}, "INVALID_ARGUMENT"),
        ("ledger_tail", {"limit": "5"}, "INVALID_ARGUMENT"),
        ("ledger_tail", {"limit": 10_000}, "INVALID_ARGUMENT"),
        ("task_list", {"phase": "plan"}, "INVALID_ARGUMENT"),
        ("phase_advance", {"task": "T1", "to": "NOWHERE"}, "INVALID_ARGUMENT"),
        ("phase_advance", {"task": "T1", "to": "STRATEGIZE"}, "INVALID_ARGUMENT"),
        ("phase_backtrack", {"task": "T1", "to": "SPEC", "reason": "x"}, "INVALID_ARGUMENT"),
        # missing fields
        ("evidence_put", {"task": "T1", "name": "x.md"}, "INVALID_ARGUMENT"),
        ("evidence_read", {"task": "T1", "name": "spec.md"}, "INVALID_ARGUMENT"),
        ("phase_backtrack", {"task": "T1", "to": "STRATEGIZE"}, "INVALID_ARGUMENT"),
        ("task_start", {}, "INVALID_ARGUMENT"),
        ("prompt_attest", {"task": "T1"}, "INVALID_ARGUMENT"),
        # unknown extra arguments
        ("task_status", {"task": "T1", "verbose": True}, "INVALID_ARGUMENT"),
        ("evidence_put", STRATEGY | {"producer": "server"}, "INVALID_ARGUMENT"),
        ("controls_status", {"freeze": False}, "INVALID_ARGUMENT"),
        # too big: 5 MB of content
        ("evidence_put", STRATEGY | {"content": "a" * (5 * 1024 * 1024)}, "INVALID_ARGUMENT"),
        # text that is not allowed
        ("task_start", {"title": "a\x00b"}, "INVALID_ARGUMENT"),
        ("task_start", {"title": "   "}, "INVALID_ARGUMENT"),
        ("phase_backtrack", {"task": "T1", "to": "STRATEGIZE", "reason": ""}, "INVALID_ARGUMENT"),
        # unknown tasks and artifacts
        ("task_status", {"task": "NOPE"}, "NOT_FOUND"),
        ("evidence_put", STRATEGY | {"task": "NOPE"}, "NOT_FOUND"),
        ("phase_advance", {"task": "NOPE"}, "NOT_FOUND"),
        ("lease_acquire", {"task": "NOPE"}, "NOT_FOUND"),
        ("prompt_attest", {"task": "NOPE", "prompt": "p"}, "NOT_FOUND"),
        ("evidence_list", {"task": "NOPE"}, "NOT_FOUND"),
        ("evidence_read", {"task": "T1", "phase": "SPEC", "name": "spec.md"}, "NOT_FOUND"),
    ]
    for bad in _BAD_IDS:
        calls += [
            ("task_status", {"task": bad}, "INVALID_ARGUMENT"),
            ("task_start", {"title": "t", "task": bad}, "INVALID_ARGUMENT"),
            (
                "evidence_put",
                {"task": bad, "name": "spec.md", "content": _CONTENT},
                "INVALID_ARGUMENT",
            ),
            ("phase_advance", {"task": bad}, "INVALID_ARGUMENT"),
        ]
    for bad in _BAD_NAMES:
        calls += [
            ("evidence_put", {"task": "T1", "name": bad, "content": _CONTENT}, "INVALID_ARGUMENT"),
            (
                "evidence_read",
                {"task": "T1", "phase": "STRATEGIZE", "name": bad},
                "INVALID_ARGUMENT",
            ),
        ]
    return calls


async def test_bad_input_over_the_wire_is_refused_and_changes_nothing_else(
    state_dir: Path, sample_project: Path, tmp_path: Path
) -> None:
    write_toml(state_dir, sample_project)
    log = tmp_path / "bad-input.log"
    calls = _bad_calls()
    async with stdio_session(state_dir, log=log) as s:
        await _start(s)
        await put_artifact(s, "T1", Phase.STRATEGIZE)
        before_entries = ledger_rows(state_dir)
        before_files = files_under(state_dir / "evidence") | files_under(state_dir / "blobs")
        before_status = ok(await s.call_tool("task_status", {"task": "T1"}))
        before_journal = len(journal(state_dir, "T1"))

        for tool, arguments, code in calls:
            result = await s.call_tool(tool, arguments)
            error = refusal(result, code)
            assert error["code"] == code, (tool, arguments)

        after_status = ok(await s.call_tool("task_status", {"task": "T1"}))
    assert after_status == before_status

    after = ledger_rows(state_dir)
    assert after[: len(before_entries)] == before_entries
    added = after[len(before_entries) :]
    assert {e["type"] for e in added} == {"tool.rejected"}
    assert len(added) == len(calls)
    assert [e["data"]["code"] for e in added] == [code for _, _, code in calls]

    # Only the journals grew: no evidence file, no blob, no directory for a task that isn't one.
    grown = files_under(state_dir / "evidence") | files_under(state_dir / "blobs")
    assert grown - before_files <= {"_calls/journal.jsonl"}
    assert {p.name for p in (state_dir / "evidence").iterdir()} == {"T1", "_calls"}
    assert len(journal(state_dir, "T1")) > before_journal
    assert all(line["outcome"] == "refused" for line in journal(state_dir, "_calls"))
    text = log.read_text()
    assert "Traceback" not in text and "internal error" not in text


# ------------------------------------------------------------------ in-process only


async def test_renewing_a_lease_nobody_holds_is_lease_required(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as c:
        await _start(c)
        assert ok(await c.call_tool("lease_release", {"task": "T1"}))["released"] is True
        refusal(await c.call_tool("lease_renew", {"task": "T1"}), "LEASE_REQUIRED")
        assert ok(await c.call_tool("lease_release", {"task": "T1"}))["released"] is False


async def test_an_unexpected_failure_is_internal_with_a_correlation_id_and_writes_nothing(
    state_dir: Path, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    async with memory_client(state_dir, config) as c:
        await _start(c)
        # The blob store cannot be written: its sha256/ directory is a plain file.
        (state_dir / "blobs").mkdir(parents=True, exist_ok=True)
        (state_dir / "blobs" / "sha256").write_text("not a directory")
        before = ledger_rows(state_dir)
        with caplog.at_level(logging.ERROR, logger="server.router"):
            result = await c.call_tool("evidence_put", STRATEGY)
        error = refusal(result, "INTERNAL")
        correlation = error["details"]["correlation_id"]
        assert re.fullmatch(r"[0-9a-f]{16}", correlation)
        assert "Traceback" not in error["message"] + error["hint"]
        assert any(correlation in r.getMessage() for r in caplog.records)

        status = ok(await c.call_tool("task_status", {"task": "T1"}))
        assert status["gate"]["problems"][0]["code"] == "EVIDENCE_MISSING"
        assert ok(await c.call_tool("evidence_list", {"task": "T1"}))["evidence"] == []
    added = ledger_rows(state_dir)[len(before) :]
    assert [(e["type"], e["data"]["code"]) for e in added] == [("tool.rejected", "INTERNAL")]
    assert not (state_dir / "evidence" / "T1" / "STRATEGIZE").exists()
    lines = [line for line in journal(state_dir, "T1") if line["tool"] == "evidence_put"]
    assert [(line["outcome"], line["code"]) for line in lines] == [("refused", "INTERNAL")]


async def test_an_artifact_whose_readable_copy_cannot_be_written_is_recorded_not_internal(
    state_dir: Path, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    async with memory_client(state_dir, config) as c:
        await _start(c)
        # The ledger and the blob are the record; the named copy under evidence/ is derived.
        (state_dir / "evidence" / "T1").mkdir(parents=True, exist_ok=True)
        (state_dir / "evidence" / "T1" / "STRATEGIZE").write_text("in the way")
        with caplog.at_level(logging.ERROR, logger="enforcer.service"):
            rec = ok(await c.call_tool("evidence_put", STRATEGY))
        assert rec["valid"] is True
        assert [r.name for r in caplog.records] == ["enforcer.process.evidence_bytes"]
        read = {"task": "T1", "phase": "STRATEGIZE", "name": "strategy.md"}
        assert ok(await c.call_tool("evidence_read", read))["content"] == STRATEGY["content"]
        assert ok(await c.call_tool("task_status", {"task": "T1"}))["gate"]["passed"] is True
    assert "tool.rejected" not in ledger_types(state_dir)


async def test_a_task_in_done_takes_no_more_evidence(
    state_dir: Path, config: Config, drive: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    async with memory_client(state_dir, config) as c:
        await _start(c)
        done = await drive(c, "T1", Phase.DONE)
        assert done["phase"] == "DONE"
        # DONE is terminal: the router offers nothing that would change the task.
        assert not {"evidence_put", "phase_advance", "phase_backtrack", "lease_acquire"} & set(
            done["tools_allowed"]
        )
        refusal(await c.call_tool("evidence_put", STRATEGY), "OUT_OF_PHASE")
        refusal(await c.call_tool("phase_advance", {"task": "T1"}), "OUT_OF_PHASE")
        refusal(
            await c.call_tool("phase_backtrack", {"task": "T1", "to": "SPEC", "reason": "x"}),
            "OUT_OF_PHASE",
        )
