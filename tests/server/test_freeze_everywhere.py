"""The freeze holds on every path, not only at the router: it is checked inside the write
transaction of every mutating call. A freeze committed after the router's early check (or by
another process: the CLI) refuses the write that follows; the demo and the CLI cannot write
through it either."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from server_kit import cli, memory_client

from enforcer.config import Config
from enforcer.errors import FrozenError
from enforcer.model import Caller
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

AGENT = Caller("agent", instance="a1")
ADMIN = Caller("root", role="admin", instance="cli")


def _types_after(db: Path, seq: int) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT type FROM ledger WHERE seq > ?", (seq,))]


async def test_a_freeze_committed_after_the_routers_check_refuses_every_direct_call(
    tmp_path: Path, config: Config
) -> None:
    state = tmp_path / "state"
    async with (
        open_runtime(state, config=config) as server_rt,
        open_runtime(state, config=config) as cli_rt,
    ):
        server, supervisor = Enforcer(server_rt), Enforcer(cli_rt)
        await server.task_start(AGENT, "frozen out", "T1")
        phase, frozen = await server.route_facts("T1")  # the router's fast path: not frozen
        assert (phase is not None, frozen) == (True, False)
        after = await supervisor.set_control(ADMIN, "freeze", True, "incident")
        assert after["frozen"] is True
        freeze_seq = int(after["freeze"]["seq"])
        calls = [
            server.evidence_put(AGENT, "T1", "strategy.md", "# Problem\nx\n# Objectives\n- y\n"),
            server.phase_advance(AGENT, "T1"),
            server.phase_backtrack(AGENT, "T1", "STRATEGIZE", "why"),
            server.prompt_attest(AGENT, "T1", "a prompt"),
            server.lease_acquire(AGENT, "T1"),
            server.lease_release(AGENT, "T1"),
            server.task_start(AGENT, "another"),
            server.lease_break(ADMIN, "T1", "supervisor"),
            server.prompt_rebaseline(ADMIN, "T1", "supervisor", prompt="p"),
        ]
        for call in calls:
            with pytest.raises(FrozenError):
                await call
        assert _types_after(state / "phasegate.db", freeze_seq) == []  # nothing was written
        lifted = await supervisor.set_control(ADMIN, "freeze", False, "over")  # the switch works
        assert lifted["frozen"] is False
        await server.lease_release(AGENT, "T1")


async def test_writes_racing_a_freeze_from_another_process_never_land_after_it(
    tmp_path: Path, config: Config
) -> None:
    state = tmp_path / "state"
    async with memory_client(state, config) as client:
        await client.call_tool("task_start", {"title": "race", "task": "T1"})

        async def writer(w: int) -> tuple[int, str | None]:
            """Write until refused (bounded); (writes that landed, the refusal's code)."""
            for i in range(3000):
                result = await client.call_tool(
                    "evidence_put", {"task": "T1", "name": f"w{w}-{i}.md", "content": f"- {i}\n"}
                )
                if result.is_error:
                    return i, json.loads(result.content[0].text)["error"]["code"]
            return 3000, None

        writers = [asyncio.create_task(writer(w)) for w in range(4)]
        await asyncio.sleep(0)
        done = await asyncio.to_thread(
            cli, "freeze", "--reason", "race", "--state-dir", str(state), "--json"
        )
        freeze_seq = int(json.loads(done.stdout)["freeze"]["seq"])
        outcomes = await asyncio.gather(*writers)
    later = _types_after(state / "phasegate.db", freeze_seq)
    assert set(later) <= {"tool.rejected"}, later  # refusals are on record; no write landed
    assert [code for _, code in outcomes] == ["FROZEN"] * 4, outcomes  # all were still writing


def test_the_demo_and_the_cli_cannot_write_through_a_freeze(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    cli("demo", "--state-dir", state)
    tasks = json.loads(cli("status", "--state-dir", state, "--json").stdout)["tasks"]
    cli("freeze", "--reason", "stop", "--state-dir", state)
    demo = cli("demo", "--state-dir", state, check=False)
    assert demo.returncode == 1 and "frozen" in demo.stderr, demo.stderr
    assert "Traceback" not in demo.stderr + demo.stdout
    task = tasks[0]["task"]
    for argv in (
        ["lease", "break", task, "--reason", "r"],
        ["attest", "rebaseline", task, "--reason", "r"],
    ):
        done = cli(*argv, "--state-dir", state, check=False)
        assert done.returncode == 1 and "frozen" in done.stderr, (argv, done.stderr)
        body = json.loads(cli(*argv, "--state-dir", state, "--json", check=False).stderr)
        assert body["error"]["code"] == "FROZEN"
    after = json.loads(cli("status", "--state-dir", state, "--json").stdout)["tasks"]
    assert after == tasks  # the demo started no task while frozen
    cli("unfreeze", "--reason", "over", "--state-dir", state)
    cli("demo", "--state-dir", state)
