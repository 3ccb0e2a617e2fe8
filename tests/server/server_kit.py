"""Helpers for the MCP-server tests (the fixtures that use them are in conftest.py): a tiny
sample project with its own passing test, valid artifacts for every gate, a helper that drives a
task through the phases over any MCP client, and ways to run the real server (in memory, or as a
stdio subprocess).

Everything here is real: the server is `build_server` or `python -m server.cli serve`, the state
is SQLite under `tmp_path`, the clients are the MCP SDK's.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from enforcer.config import Config, VerifyConfig
from enforcer.phases import Phase
from server.app import ServeOptions, build_server

REPO = Path(__file__).resolve().parents[2]
INSTANCE = "test-instance"

SAMPLE_BEFORE = "def add(a, b):\n    return a + b\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
SAMPLE_AFTER = SAMPLE_BEFORE + "\n\ndef test_add_negative():\n    assert add(-1, -2) == -3\n"

# A real unified diff of the change the sample project is said to contain.
GIT_DIFF = "diff --git a/test_sample.py b/test_sample.py\n" + "".join(
    difflib.unified_diff(
        SAMPLE_BEFORE.splitlines(keepends=True),
        SAMPLE_AFTER.splitlines(keepends=True),
        "a/test_sample.py",
        "b/test_sample.py",
    )
)

RUBRIC = {
    "dimensions": {
        d: {"score": 4, "notes": ""}
        for d in ("readability", "maintainability", "performance", "security", "governance")
    }
}

# The artifact an agent writes to leave each phase (VERIFY is the server's: verify_run).
ARTIFACTS: dict[Phase, tuple[str, str]] = {
    Phase.STRATEGIZE: (
        "strategy.md",
        "# Problem\nNegative numbers are not tested.\n\n# Objectives\n- cover negatives\n",
    ),
    Phase.SPEC: ("spec.md", "# Acceptance Criteria\n- add(-1, -2) == -3 is tested\n"),
    Phase.PLAN: ("plan.md", "# Plan\n1. write the test\n2. run the suite\n"),
    Phase.THINK: ("edge_cases.md", "# Edge cases\n- both operands negative\n"),
    Phase.IMPLEMENT: ("git_diff.patch", GIT_DIFF),
    Phase.REVIEW: ("review_rubric.json", json.dumps(RUBRIC)),
    Phase.PR: ("pr_summary.md", "# Summary\nA test.\n\n# Risks\nNone.\n\n# Rollback\nRevert.\n"),
    Phase.MONITOR: (
        "smoke_test_results.json",
        json.dumps({"checks": [{"name": "a", "passed": True}]}),
    ),
}

ERROR_KEYS = {"code", "message", "hint", "details"}


# ------------------------------------------------------------------ results


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured payload of a successful call (fails the test on a refusal)."""
    assert not result.is_error, result.structured_content or result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_body(result: CallToolResult) -> dict[str, Any]:
    """The JSON error body of a refused call: its one text content (DESIGN.md, Error contract)."""
    texts = [c for c in result.content if getattr(c, "type", None) == "text"]
    assert len(texts) == 1, result.content
    body = json.loads(texts[0].text)  # type: ignore[union-attr]
    assert isinstance(body, dict)
    return body


def refusal(result: CallToolResult, code: str) -> dict[str, Any]:
    """Assert the error contract exactly and return the error object.

    is_error, no structured content (clients would validate it against the output schema), and
    one text content holding {"error": {code, message, hint, details}}.
    """
    assert result.is_error is True, result.content
    assert result.structured_content is None, result.structured_content
    body = error_body(result)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["hint"], str)
    assert isinstance(error["details"], dict)
    return dict(error)


def code_of(result: CallToolResult) -> str | None:
    if not result.is_error:
        return None
    return str(error_body(result)["error"]["code"])


# ------------------------------------------------------------------ driving a task


async def put_artifact(session: Any, task: str, phase: Phase) -> dict[str, Any]:
    """Record what `phase`'s gate needs: the agent's artifact, or the server's verify_run."""
    if phase is Phase.VERIFY:
        result = ok(await session.call_tool("verify_run", {"task": task}))
        assert result["passed"] is True, result
        return result
    name, content = ARTIFACTS[phase]
    rec = ok(
        await session.call_tool("evidence_put", {"task": task, "name": name, "content": content})
    )
    assert rec["valid"] is True, rec
    return rec


async def advance_to(session: Any, task: str, target: Phase) -> dict[str, Any]:
    """Move `task` forward with valid evidence until it is at `target`; returns the status."""
    status = ok(await session.call_tool("task_status", {"task": task}))
    while Phase(status["phase"]) is not target:
        phase = Phase(status["phase"])
        assert phase.position < target.position, f"{task} is past {target}"
        await put_artifact(session, task, phase)
        status = ok(await session.call_tool("phase_advance", {"task": task}))
        assert status["phase"] == phase.next
    return status


# ------------------------------------------------------------------ state inspection


def ledger_rows(state_dir: Path) -> list[dict[str, Any]]:
    """Every ledger entry, decoded, read straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{state_dir / 'phasegate.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, entry FROM ledger ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [json.loads(raw) | {"seq": seq} for seq, raw in rows]


def ledger_types(state_dir: Path) -> list[str]:
    return [e["type"] for e in ledger_rows(state_dir)]


def journal(state_dir: Path, task: str | None) -> list[dict[str, Any]]:
    path = state_dir / "evidence" / (task or "_calls") / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_under(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ configuration


def make_sample_project(root: Path) -> Path:
    """A tiny project whose own pytest suite passes."""
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_sample.py").write_text(SAMPLE_AFTER)
    return root


def verify_command() -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={junit}"]


def make_config(sample_project: Path, **sections: Any) -> Config:
    """Defaults, with the sample project's verify command and any other `sections`."""
    return Config(
        verify=VerifyConfig(command=verify_command(), cwd=str(sample_project)), **sections
    )


def toml_text(sample_project: Path, extra: str = "") -> str:
    """A phasegate.toml with the sample project's verify command, plus `extra` sections."""
    return (
        "[verify]\n"
        f"command = {json.dumps(verify_command())}\n"
        f"cwd = {json.dumps(str(sample_project))}\n" + extra
    )


def write_toml(state_dir: Path, sample_project: Path, extra: str = "") -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "phasegate.toml"
    path.write_text(toml_text(sample_project, extra))
    return path


# ------------------------------------------------------------------ running the server


@contextlib.asynccontextmanager
async def memory_client(
    state_dir: Path, config: Config, actor: str = "alice", instance: str = INSTANCE
) -> AsyncIterator[Client]:
    """The real server, built by build_server, reached through the SDK's in-memory client."""
    server = build_server(
        ServeOptions(state_dir=state_dir, config=config, actor=actor, instance=instance)
    )
    async with Client(server) as client:
        yield client


def serve_args(state_dir: Path, actor: str, *extra: str) -> list[str]:
    return ["-m", "server.cli", "serve", "--state-dir", str(state_dir), "--actor", actor, *extra]


@contextlib.asynccontextmanager
async def stdio_session(
    state_dir: Path, actor: str = "alice", log: Path | None = None
) -> AsyncIterator[ClientSession]:
    """`python -m server.cli serve` as a real subprocess, spoken to over its stdin/stdout."""
    params = StdioServerParameters(
        command=sys.executable, args=serve_args(state_dir, actor), cwd=str(REPO)
    )
    log = log or state_dir.parent / f"server-{actor}.log"
    with log.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `phasegate` command as a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


_LISTENING = re.compile(r"phasegate: listening on (http://\S+/mcp)")


@contextlib.contextmanager
def http_serving(state_dir: Path, log: Path, *extra: str) -> Iterator[str]:
    """`phasegate serve --http --port 0` as a subprocess; yields the /mcp URL it printed once
    listening (the port the system gave it: nothing looked a port up first, so nothing can
    race for it). The server is terminated when the block ends."""
    argv = [sys.executable, "-m", "server.cli", "serve", "--http", "--port", "0"]
    with running([*argv, "--state-dir", str(state_dir), *extra], log) as proc:
        found: list[str] = []

        def listening() -> bool:
            found.extend(_LISTENING.findall(log.read_text()))
            return bool(found) or proc.poll() is not None

        wait_until(listening, 60, "the HTTP server to listen")
        assert proc.poll() is None and found, log.read_text()
        yield found[0]


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs: bound, never
    listening, so no other process can take it meanwhile (a port merely looked up can be)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Bounded polling: call `predicate` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def running(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess that is always terminated (then killed) when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=out, env=dict(os.environ))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
