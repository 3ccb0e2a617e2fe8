"""Chaos (c): 50 SIGKILLs of a real ``phasegate serve`` (stdio) during promote, install and
rollback of a governed module. Each trial starts a server over the same state directory, checks
what the previous kill left (the pointer reported consistent, the install path holding exactly
the active version's whole tree, no ``.phasegate-tmp-*`` left once the server has started, the
ledger verified over MCP, and every fifth trial ``phasegate verify`` over ledger, blobs,
manifests and attestations), sends one operation and kills the
server: at a named halt point (the **test-only** hook of enforcer/modules/halt_points.py) or
after a random delay (a random point, which may fall after the reply). The figures are printed;
pytest -s shows them. Trials are cheap: a two-file module with ``/bin/true`` as its validator,
drafts made between trials straight through the enforcer (phases are the router's); the cost
is the 51 server starts (about 1.6 s a trial on a loaded two-core host). CHAOS_SEED picks
another sequence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from module_kit import tree_files
from server_kit import (
    INSTANCE,
    REPO,
    cli,
    ledger_types,
    make_sample_project,
    serve_args,
    write_toml,
)

from enforcer.model import Caller
from enforcer.modules.halt_points import HALT_ENV, MARKER_ENV
from enforcer.phases import ORDER, Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

TRIALS = 50
MODULE = "tiny"
ALICE = Caller("alice", instance=INSTANCE)
ROOT = Caller("root", role="admin", instance=INSTANCE)
V1 = {"SKILL.md": "# tiny\n", "notes/a.md": "# a\n"}
GATES = "".join(f"[gates.{p.value}]\nartifacts = []\n" for p in ORDER if p is not Phase.DONE)
EXTRA = (
    GATES + '[policy]\nauto_approve = ["LOW", "MEDIUM", "HIGH"]\nmax_promotions_per_day = 100000\n'
    "[telemetry]\nenabled = false\n"
)
POINTS = {
    "promote": ["promote:signed"],
    "install": ["install:materialising", "install:materialised", "install:swapped",
                "install:committed"],
    "rollback": ["install:materialised", "install:swapped", "install:committed"],
}  # fmt: skip


class Server:
    """One ``phasegate serve`` subprocess spoken to in raw JSON-RPC lines over stdio."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.next_id = 1

    async def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        assert self.proc.stdin is not None
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()
        return self.next_id

    async def reply(self, wanted: int, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                assert line, "the server closed its output"
                message = json.loads(line)
                if message.get("id") == wanted:
                    return dict(message)

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        done = await self.reply(
            await self.send("tools/call", {"name": tool, "arguments": arguments})
        )
        result = done["result"]
        assert not result.get("isError"), result
        return dict(json.loads(result["content"][0]["text"]))


async def _start(state: Path, log: Path, point: str | None, marker: Path) -> Server:
    env = dict(os.environ)
    if point is not None:
        env.update({HALT_ENV: point, MARKER_ENV: str(marker)})
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *serve_args(state, "alice"), cwd=REPO, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    server = Server(proc)
    hello = {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}}
    hello["clientInfo"] = {"name": "chaos-sigkill", "version": "0"}
    await server.reply(await server.send("initialize", hello))
    assert proc.stdin is not None
    proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
    return server


def _leftovers(state: Path) -> list[str]:
    return [str(p.relative_to(state)) for p in state.rglob(".phasegate-tmp-*")]


async def _setup(tmp_path: Path, state: Path) -> Path:
    """MODULE registered (v1 installed), TP at PR and TM at MONITOR, no lease held."""
    source = tmp_path / "src"
    for rel, text in V1.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text)
    install = tmp_path / "live" / MODULE
    async with open_runtime(state, config_path=state / "phasegate.toml") as rt:
        e = Enforcer(rt)
        await e.modules.module_add(ROOT, MODULE, source, install, ["/bin/true"])
        for task, phase in (("TP", "PR"), ("TM", "MONITOR")):
            await e.task_start(ALICE, f"chaos {task}", task)
            while (await e.task_status(task)).task.phase.value != phase:
                await e.phase_advance(ALICE, task)
            await e.lease_release(ALICE, task)
    return install


async def _prepare(
    state: Path, trial: int, rng: random.Random
) -> tuple[list[int], int, str, str | None, tuple[str, dict[str, Any]]]:
    """Straight through the enforcer, before the server starts: the versions, the active one
    (what the ledger says; the next start points the path at it), and the trial's operation
    (`_operation`); for a promotion, a validated draft of TP from the newest version adding one
    file. No lease is left held."""
    async with open_runtime(
        state, config_path=state / "phasegate.toml", checkpoint_on_close=False
    ) as rt:
        e = Enforcer(rt)
        listed = await e.modules.module_versions(MODULE)
        versions = [int(v["version"]) for v in listed["versions"]]
        active = int(listed["active"])
        op, point, call = _operation(versions, active, state, rng)
        if op == "promote":
            m = e.modules
            draft = str((await m.draft_create(ALICE, "TP", MODULE, versions[-1]))["draft"])
            await m.draft_write(ALICE, draft, f"t/{trial}.md", f"# trial {trial}\n")
            assert (await m.draft_validate(ALICE, draft))["state"] == "VALIDATED"
            await e.lease_release(ALICE, "TP")
            call = ("draft_promote", {"draft": draft})
    return versions, active, op, point, call


def _trees(state: Path) -> set[int]:
    """The versions whose tree is built under installed/ (install:materialising builds one)."""
    where = state / "installed" / MODULE
    return {int(p.name[1:].split("-")[0]) for p in where.iterdir() if p.name.startswith("v")}


def _check(state: Path, install: Path, listed: dict[str, Any], files_of: dict) -> list[str]:  # type: ignore[type-arg]
    """What must hold once a server has started after a kill."""
    faults = []
    if listed.get("consistent") is not True:
        faults.append(f"inconsistent {listed}")
    if tree_files(install) != files_of.get(listed["active"]):
        faults.append(f"the install path is not the active v{listed['active']}")
    if _leftovers(state):
        faults.append(f"leftovers {_leftovers(state)}")
    return faults


def _operation(
    versions: list[int], active: int, state: Path, rng: random.Random
) -> tuple[str, str | None, tuple[str, dict[str, Any]]]:
    """A random operation on what the ledger holds, and a random halt point it passes (or
    None: a random delay). A promotion's draft is made by the caller."""
    op = "promote" if len(versions) < 2 else rng.choice(["promote", "install", "rollback"])
    if op == "rollback" and active == 1:
        op = "install"
    point = rng.choice(POINTS[op]) if rng.random() < 0.5 else None
    if op == "promote":
        return op, point, ("draft_promote", {})
    if op == "rollback":
        target = rng.choice(range(1, active))
        args = {"task": "TM", "module": MODULE, "reason": "chaos", "to_version": target}
        return op, point, ("module_rollback", args)
    others = [v for v in versions if v != active]
    unbuilt = [v for v in others if v not in _trees(state)]
    if point == "install:materialising" and not unbuilt:
        point = rng.choice(POINTS["rollback"])  # every tree is built already
    target = rng.choice(unbuilt if point == "install:materialising" else others)
    return op, point, ("module_install", {"task": "TP", "module": MODULE, "version": target})


@pytest.mark.timeout(600)
async def test_fifty_sigkills_during_promote_install_and_rollback_leave_a_consistent_module(
    tmp_path: Path,
) -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "18")))
    state = tmp_path / "state"
    write_toml(state, make_sample_project(tmp_path / "sample"), EXTRA)
    install = await _setup(tmp_path, state)
    files_of: dict[int, dict[str, str]] = {1: dict(V1)}
    kills: dict[str, int] = {}
    failures: list[str] = []
    pending: tuple[int, dict[str, str]] | None = None  # a promotion the kill may have let in
    log = tmp_path / "servers.log"
    started = time.monotonic()
    verifies = 0
    for trial in range(TRIALS + 1):
        last = trial == TRIALS
        versions, active, op, point, call = await _prepare(state, trial, rng)
        if pending is not None and pending[0] in versions:  # the killed promotion got in
            files_of[pending[0]] = pending[1]
        pending = None
        if last:
            point = None
        marker = tmp_path / f"halted-{trial}"
        server = await _start(state, log, point, marker)
        try:
            listed = await server.call("module_versions", module=MODULE)
            assert listed["active"] == active, (listed, active)
            failures += [f"trial {trial}: {f}" for f in _check(state, install, listed, files_of)]
            if trial % 5 == 0 or last:  # the offline verifier: ledger, blobs, attestations
                done = cli("verify", "--state-dir", str(state), check=False)
                verifies += 1
                if done.returncode != 0:
                    failures.append(f"trial {trial}: verify {done.stdout[-300:]}")
            else:  # the ledger's verifier over MCP between the offline ones
                assert (await server.call("ledger_verify"))["ok"] is True
            if last:
                break
            if op == "promote":
                newest = versions[-1]
                pending = (newest + 1, {**files_of[newest], f"t/{trial}.md": f"# trial {trial}\n"})
            sent = await server.send("tools/call", {"name": call[0], "arguments": call[1]})
            if point is not None:
                await _halted(marker, server.proc)
                where = point
            else:
                await _random_delay(server.proc, rng.uniform(0.0, 0.04))
                where = "random"
            server.proc.kill()  # SIGKILL: nothing tidies up
            await server.proc.wait()
            out = await server.proc.stdout.read() if server.proc.stdout else b""
            if where == "random":
                answered = f'"id":{sent}'.encode() in out.replace(b" ", b"")
                where = "random-after-reply" if answered else "random-before-reply"
            kills[f"{op}@{where}"] = kills.get(f"{op}@{where}", 0) + 1
            whole = [*files_of.values(), *([pending[1]] if pending else [])]
            if tree_files(install) not in whole:
                failures.append(f"trial {trial}: the install path holds no whole version")
        finally:
            if server.proc.returncode is None:
                server.proc.kill()
                await server.proc.wait()
    elapsed = time.monotonic() - started
    types = ledger_types(state)
    figures = {
        "trials": TRIALS,
        "kills": sum(kills.values()),
        "kills_by_phase": dict(sorted(kills.items())),
        "repairs": types.count("module.install_repaired"),
        "versions": max(files_of),
        "installs_committed": types.count("module.installed"),
        "rollbacks_committed": types.count("module.rolled_back"),
        "offline_verifies": verifies,
        "failures": failures,
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(figures, indent=2))
    assert failures == []
    assert sum(kills.values()) == TRIALS


async def _halted(marker: Path, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    """Bounded wait for the server to reach its halt point."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.returncode is None, "the server exited before the halt point"
        assert time.monotonic() < deadline, "the server never reached the halt point"
        await asyncio.sleep(0.01)


async def _random_delay(proc: asyncio.subprocess.Process, seconds: float) -> None:
    """The chaos itself: a random instant to kill at (not a wait for anything)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), seconds)
