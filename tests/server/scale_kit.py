"""Several `phasegate serve --http` processes over one PostgreSQL database and one state
directory, agents (MCP streamable-HTTP clients, one bearer token each) driving them, and the
checks a run must pass afterwards, made from the ledger alone. Used by tests/server/
test_scale_out.py and scripts/bench_scale.py.

    with http_servers(state, url, count=4, log_dir=tmp) as fleet:
        agents = [Agent(f"agent{k:02d}", fleet.urls[k % 4]) for k in range(32)]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult
from server_kit import REPO, wait_until

from enforcer.phases import ORDER, Phase

NOTES = "notes.md"
LIVE = [p for p in ORDER if p is not Phase.DONE]


def token_of(name: str) -> str:
    return f"token-{name}-0123456789"


def scale_toml(
    agents: list[str], *, ttl_s: int, gates: dict[Phase, list[str]] | None = None
) -> str:
    """Every agent an operator with its own token; telemetry off (it is measured elsewhere);
    each phase's gate needs what `gates` says, by default one non-empty `notes.md` (no
    verify_run: no test suite runs)."""
    lines = [f"[leases]\nttl_s = {ttl_s}\n", "[telemetry]\nenabled = false\n"]
    for phase in LIVE:
        arts = json.dumps([NOTES] if gates is None else gates.get(phase, []))
        lines.append(f"[gates.{phase.value}]\nartifacts = {arts}\nrequire_server_results = false\n")
    for name in agents:
        digest = hashlib.sha256(token_of(name).encode()).hexdigest()
        lines.append(f'[actors.{name}]\nrole = "operator"\ntoken_sha256 = "{digest}"\n')
    return "\n".join(lines)


_LISTENING = re.compile(r"phasegate: listening on (http://\S+/mcp)")


def _printed_url(log: Path, start: int) -> str | None:
    """The /mcp URL a server started with --port 0 printed once bound (only what it wrote to
    `log` after byte `start`: a log may be appended to by an earlier server)."""
    with log.open("rb") as f:
        f.seek(start)
        found = _LISTENING.search(f.read().decode(errors="replace"))
    return found.group(1) if found else None


@dataclass
class Fleet:
    procs: list[subprocess.Popen[bytes]]
    urls: list[str]
    logs: list[Path]

    def kill(self, index: int) -> None:
        """SIGKILL: no shutdown, no final checkpoint, transactions cut wherever they are."""
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait(timeout=10)


@contextlib.contextmanager
def http_servers(state: Path, url: str | None, count: int, log_dir: Path) -> Iterator[Fleet]:
    """`count` HTTP servers on loopback over `url` (None: SQLite in `state`), sharing `state`;
    stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = [log_dir / f"server-{i}.log" for i in range(count)]
    starts = [log.stat().st_size if log.exists() else 0 for log in logs]
    try:
        for log in logs:
            with log.open("ab") as out:
                argv = [sys.executable, "-m", "server.cli", "serve", "--http"]
                argv += ["--host", "127.0.0.1", "--port", "0", "--state-dir", str(state)]
                argv += [] if url is None else ["--store", url]
                procs.append(
                    subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=out, env=dict(os.environ))
                )
        urls: list[str] = []
        for proc, log, start in zip(procs, logs, starts, strict=True):
            wait_until(
                lambda p=proc, f=log, n=start: p.poll() is not None or bool(_printed_url(f, n)),
                60,
                "a server to print the port it bound",
            )
            printed = _printed_url(log, start)
            assert proc.poll() is None and printed, log.read_text()[-3000:]
            urls.append(printed)
        yield Fleet(procs, urls, logs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def agent_session(url: str, name: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token_of(name)}", "x-phasegate-instance": f"i-{name}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@dataclass
class Deadline:
    """When agents stop (time.monotonic()); the run may move it while they work."""

    at: float

    def passed(self) -> bool:
        return time.monotonic() >= self.at


class ServerGone(Exception):
    """The agent's server stopped answering (killed)."""


@dataclass
class Ack:
    tool: str
    args: dict[str, Any]
    result: dict[str, Any]
    at: float  # time.monotonic() when the answer arrived


@dataclass
class Agent:
    """One agent: its actor name, its server, and what it was told."""

    name: str
    url: str
    release_after_advance: bool = False
    acks: list[Ack] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    lost_at: float | None = None
    session: ClientSession | None = None

    @property
    def holder(self) -> str:
        return f"{self.name}/i-{self.name}"

    async def call(self, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """(the result, "") when acknowledged, else (None, the refusal code)."""
        assert self.session is not None
        try:
            result = await self.session.call_tool(tool, args, read_timeout_seconds=20)
        except Exception as e:
            raise ServerGone(f"{self.name}: {type(e).__name__}: {e}") from e
        assert isinstance(result, CallToolResult)
        if result.is_error:
            text = next(c.text for c in result.content if getattr(c, "type", "") == "text")
            code = str(json.loads(text)["error"]["code"])
            self.refusals[code] = self.refusals.get(code, 0) + 1
            return None, code
        assert isinstance(result.structured_content, dict)
        self.acks.append(Ack(tool, args, result.structured_content, time.monotonic()))
        return result.structured_content, ""

    async def work(self, tasks: list[str], deadline: Deadline, pace: float = 0.01) -> None:
        """Drive each task toward DONE with the others on it: take the lease when it is free,
        record the notes, advance; when told to, release after each move (another agent then
        takes the task), and present the released token once (a stale write, to be refused)."""
        import asyncio

        rng = random.Random(self.name)
        for task in tasks:
            await self.call("task_start", {"title": f"scale {task}", "task": task})
            while not deadline.passed():
                status, _ = await self.call("task_status", {"task": task})
                if status is None or status["phase"] == "DONE":
                    break
                lease = status["lease"] or {}
                mine = lease.get("active") and lease.get("holder") == self.holder
                if lease.get("active") and not mine:
                    await asyncio.sleep(pace * rng.random())  # think time, not synchronisation
                    continue
                token = lease.get("fencing_token") if mine else None
                if token is None:
                    got, _ = await self.call("lease_acquire", {"task": task})
                    if got is None:
                        continue
                    token = got["fencing_token"]
                note = {"task": task, "name": NOTES, "content": f"{self.name} {rng.random()}"}
                if (await self.call("evidence_put", {**note, "fencing_token": token}))[0] is None:
                    continue
                moved, _ = await self.call("phase_advance", {"task": task, "fencing_token": token})
                if moved is None or not self.release_after_advance or moved["lease"] is None:
                    continue
                if moved["lease"]["holder"] != self.holder:
                    continue
                released = moved["lease"]["fencing_token"]
                await self.call("lease_release", {"task": task})
                await self.call("evidence_put", {**note, "fencing_token": released})
            if deadline.passed():
                return


async def run_agent(agent: Agent, tasks: list[str], deadline: Deadline) -> None:
    """`agent.work` in its own session. A server that goes away ends the agent (noted in
    `lost_at`), and whatever the session's teardown then raises about the lost connection."""
    try:
        async with agent_session(agent.url, agent.name) as session:
            agent.session = session
            try:
                await agent.work(tasks, deadline)
            except ServerGone:
                agent.lost_at = time.monotonic()
    except Exception as e:
        if agent.lost_at is None and not _lost_connection(e):
            raise
        agent.lost_at = agent.lost_at or time.monotonic()
    finally:
        agent.session = None


def _lost_connection(error: BaseException) -> bool:
    """Whether `error` says only that the server went away (a connection refused or cut)."""
    if isinstance(error, BaseExceptionGroup):
        return all(_lost_connection(e) for e in error.exceptions)
    return isinstance(error, ServerGone | OSError | httpx2.TransportError)
