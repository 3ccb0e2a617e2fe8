"""Server-run verification: the configured command, real subprocesses, failures as results."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from phasegate_testkit import (
    ALICE,
    BOB,
    DIFF,
    advance_to,
    enforcer_at,
    entries,
    files_under,
    verify_config,
    write_sample_project,
)

from enforcer.config import Config, VerifyConfig
from enforcer.errors import PhasegateError
from enforcer.phases import Phase
from enforcer.process.verification import parse_junit
from enforcer.service import Enforcer

PY = sys.executable


@pytest.fixture(autouse=True)
def _fast_inner_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sample projects' pytest needs none of the plugins installed here.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def config(command: list[str], cwd: Path, timeout_s: float = 60, **kw: Any) -> Config:
    return Config(verify=VerifyConfig(command=command, cwd=str(cwd), timeout_s=timeout_s, **kw))


async def at_implement(e: Enforcer) -> str:
    """A task in IMPLEMENT with its diff recorded; returns the diff's sha256."""
    await e.task_start(ALICE, "t", "T1")
    await advance_to(e, ALICE, "T1", Phase.IMPLEMENT)
    return (await e.evidence_put(ALICE, "T1", "git_diff.patch", DIFF)).sha256


async def refused_code(e: Enforcer) -> str | None:
    try:
        await e.phase_advance(ALICE, "T1")
    except PhasegateError as err:
        return err.code
    return None


async def test_a_passing_project_gives_server_results_about_the_current_diff(
    tmp_path: Path,
) -> None:
    project = write_sample_project(tmp_path / "project")
    state = tmp_path / "state"
    async with enforcer_at(state, Config(verify=verify_config(project))) as e:
        diff_sha = await at_implement(e)
        await e.phase_advance(ALICE, "T1")
        out = await e.verify_run(ALICE, "T1")
        results = out["results"]
        assert out["passed"] is True and out["problems"] == []
        assert (results["passed"], results["failed"], results["errors"]) == (1, 0, 0)
        assert results["exit_code"] == 0 and results["subject_sha256"] == diff_sha
        assert results["command"][:3] == [PY, "-m", "pytest"]
        assert "reason" not in results
        records = {r.name: r for r in await e.evidence_list("T1", "VERIFY")}
        assert set(records) == {"test_results.json", "build_output.log"}
        for rec in records.values():
            assert rec.producer == "server" and rec.subject_sha256 == diff_sha and rec.valid
        on_disk = json.loads((state / "evidence/T1/VERIFY/test_results.json").read_text())
        assert on_disk == results
        log = (state / "evidence/T1/VERIFY/build_output.log").read_bytes()
        assert b"1 passed" in log
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.REVIEW


async def test_a_failing_test_gives_failed_results_and_the_verify_gate_refuses(
    tmp_path: Path,
) -> None:
    body = "def test_ok():\n    pass\n\ndef test_broken():\n    assert 1 == 2\n"
    project = write_sample_project(tmp_path / "project", body)
    async with enforcer_at(tmp_path / "state", Config(verify=verify_config(project))) as e:
        await at_implement(e)
        await e.phase_advance(ALICE, "T1")
        out = await e.verify_run(ALICE, "T1")
        assert out["passed"] is False
        assert (out["results"]["passed"], out["results"]["failed"]) == (1, 1)
        assert out["results"]["exit_code"] == 1
        assert await refused_code(e) == "EVIDENCE_INVALID"


SLEEPER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
    "print('started', flush=True)\n"
    "time.sleep(30)\n"
)


@pytest.mark.timeout(30)
async def test_a_command_that_outlives_its_timeout_is_killed_with_its_children_promptly(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, config([PY, "-c", SLEEPER], tmp_path, timeout_s=1)) as e:
        await at_implement(e)
        await e.phase_advance(ALICE, "T1")
        started = time.monotonic()
        out = await e.verify_run(ALICE, "T1")
        elapsed = time.monotonic() - started
        assert elapsed < 10, "the run must end at its timeout, not when the command does"
        results = out["results"]
        assert results["reason"] == "timeout"
        assert results["exit_code"] != 0 and results["passed"] == 0
        assert out["passed"] is False and out["problems"]
        _, log = await e.evidence_read("T1", "VERIFY", "build_output.log")
        assert log.startswith(b"started")
        assert await refused_code(e) == "EVIDENCE_INVALID"


@pytest.mark.parametrize(
    "command",
    [["/nonexistent/phasegate-no-such-tool", "--junitxml={junit}"], ["no-such-tool-on-path-xyz"]],
)
async def test_a_missing_command_gives_a_command_not_found_result(
    tmp_path: Path, command: list[str]
) -> None:
    async with enforcer_at(tmp_path, config(command, tmp_path)) as e:
        await at_implement(e)
        await e.phase_advance(ALICE, "T1")
        out = await e.verify_run(ALICE, "T1")
        results = out["results"]
        assert results["reason"] == "command_not_found"
        assert results["exit_code"] == 127 and results["passed"] == 0
        assert out["passed"] is False
        assert await refused_code(e) == "EVIDENCE_INVALID"


async def test_a_working_directory_that_does_not_exist_is_a_failed_result(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path, config([PY, "-c", "pass"], tmp_path / "gone")) as e:
        await at_implement(e)
        out = await e.verify_run(ALICE, "T1")
        assert out["results"]["reason"] == "command_not_found" and out["passed"] is False


async def test_a_command_that_exits_zero_but_writes_no_junit_report_is_a_failed_result(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, config([PY, "-c", "print('all good')"], tmp_path)) as e:
        await at_implement(e)
        await e.phase_advance(ALICE, "T1")
        out = await e.verify_run(ALICE, "T1")
        results = out["results"]
        assert (results["exit_code"], results["passed"]) == (0, 0)
        assert results["reason"] == "no_junit_report"
        assert out["passed"] is False
        assert await refused_code(e) == "EVIDENCE_INVALID"


@pytest.mark.parametrize(
    "report",
    [
        "<nope",
        "<html></html>",
        '<testsuite tests="x"/>',
        '<testsuite tests="1" failures="2"/>',
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
        '<testsuite tests="1">&lol;</testsuite>',
    ],
)
async def test_an_unreadable_junit_report_is_a_failed_result(tmp_path: Path, report: str) -> None:
    write = f"import sys; open(sys.argv[1], 'w').write({report!r})"
    async with enforcer_at(tmp_path, config([PY, "-c", write, "{junit}"], tmp_path)) as e:
        await at_implement(e)
        out = await e.verify_run(ALICE, "T1")
        assert out["results"]["reason"] == "bad_junit_report"
        assert out["results"]["passed"] == 0 and out["passed"] is False


async def test_the_build_log_keeps_only_the_tail_of_a_long_output(tmp_path: Path) -> None:
    noisy = "import sys; sys.stdout.write('x' * 300_000 + 'THE END')"
    cfg = config([PY, "-c", noisy], tmp_path, max_log_bytes=4096)
    async with enforcer_at(tmp_path, cfg) as e:
        await at_implement(e)
        await e.verify_run(ALICE, "T1")
        _, log = await e.evidence_read("T1", "VERIFY", "build_output.log")
        assert len(log) < 4096 + 200 and log.endswith(b"THE END")


async def test_verify_run_needs_a_valid_diff_and_the_lease(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    touch = f"open({str(marker)!r}, 'w').close()"
    async with enforcer_at(tmp_path / "state", config([PY, "-c", touch], tmp_path)) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.IMPLEMENT)
        await e.evidence_put(ALICE, "T1", "git_diff.patch", "not a diff")
        before = await entries(e)
        for caller, code in ((ALICE, "EVIDENCE_MISSING"), (BOB, "LEASE_HELD")):
            with pytest.raises(PhasegateError) as err:
                await e.verify_run(caller, "T1")
            assert err.value.code == code
        assert not marker.exists(), "the command never ran"
        assert [x.type for x in (await entries(e))[len(before) :]] == ["lease.contended"]
        assert files_under(tmp_path / "state" / "evidence" / "T1" / "VERIFY") == []


async def test_verify_run_keeps_the_lease_for_longer_than_the_run_can_take(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, config([PY, "-c", "pass"], tmp_path, timeout_s=900)) as e:
        await at_implement(e)
        await e.verify_run(ALICE, "T1")
        status = await e.task_status("T1")
        assert status.lease is not None
        assert status.lease.expires_at is not None
        assert status.lease.expires_at >= "2026-01-01T00:16:00.000000Z"  # 900 s + 60 s slack


@pytest.mark.timeout(30)
async def test_results_are_discarded_when_the_task_moved_while_the_command_ran(
    tmp_path: Path,
) -> None:
    started, go = tmp_path / "started.fifo", tmp_path / "go.fifo"
    os.mkfifo(started)
    os.mkfifo(go)
    # The command tells the test it runs, then waits for the word to finish.
    child = f"open({str(started)!r}, 'w').close(); open({str(go)!r}).read()"
    async with enforcer_at(tmp_path / "state", config([PY, "-c", child], tmp_path)) as e:
        await at_implement(e)
        running = asyncio.ensure_future(e.verify_run(ALICE, "T1"))
        await asyncio.to_thread(lambda: Path(started).read_text())
        await e.phase_backtrack(ALICE, "T1", "PLAN", "the plan changed mid-run")
        await asyncio.to_thread(lambda: Path(go).write_text("go"))
        with pytest.raises(PhasegateError) as err:
            await running
        assert err.value.code == "CONFLICT"
        assert await e.evidence_list("T1", "VERIFY") == []
        assert files_under(tmp_path / "state" / "evidence" / "T1" / "VERIFY") == []
        assert await e.replay_equals_store()


def test_junit_counts_come_from_testsuite_and_testsuites_reports() -> None:
    one = b'<testsuite tests="5" failures="1" errors="1" skipped="1"/>'
    counts = parse_junit(one)
    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (2, 1, 1, 1)
    many = (
        b'<testsuites><testsuite tests="3" failures="0"/>'
        b'<testsuite tests="2" skipped="2"/></testsuites>'
    )
    counts = parse_junit(many)
    assert (counts.passed, counts.skipped) == (3, 2)


@pytest.mark.parametrize(
    "report",
    [
        b"",
        b"<testsuite",
        b"<report/>",
        b'<testsuite tests="-1"/>',
        b'<testsuite tests="1" failures="1" errors="1"/>',
        b'<testsuite tests="1.5"/>',
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite tests="1"/>',
    ],
)
def test_a_report_that_is_not_consistent_junit_is_refused(report: bytes) -> None:
    with pytest.raises(ValueError):
        parse_junit(report)
