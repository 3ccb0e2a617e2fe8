"""A SIGKILL of the server in the middle of an install: at each named point of the install (the
**test-only** halt hook, `enforcer/modules/halt_points.py`) a real `phasegate serve` process is
stopped there and killed; the install path then holds exactly one whole version, and the next
server start reports a pointer consistent with it (repairing the path when the kill fell between
the swap and the commit)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from module_kit import MODULE, promoted_v2, tree_files
from server_kit import REPO, cli, ledger_types, ok, serve_args, stdio_session, write_toml

from enforcer.modules.halt_points import HALT_ENV, MARKER_ENV


async def _send(proc: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    await proc.stdin.drain()


async def _until(marker: Path, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    """Bounded wait for the server to reach its halt point (or die trying)."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.returncode is None, "the server exited before the halt point"
        assert time.monotonic() < deadline, "the server never reached the halt point"
        await asyncio.sleep(0.02)


async def _install_then_kill(state_dir: Path, point: str, log: Path) -> None:
    marker = state_dir.parent / f"halted-{point.replace(':', '-')}"
    env = {**os.environ, HALT_ENV: point, MARKER_ENV: str(marker)}
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *serve_args(state_dir, "alice"),
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        hello = {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}}
        hello["clientInfo"] = {"name": "crash-test", "version": "0"}
        await _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
        await _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        args = {"task": "T1", "module": MODULE, "version": 2}
        params = {"name": "module_install", "arguments": args}
        await _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
        await _until(marker, proc)
    finally:
        if proc.returncode is None:
            proc.kill()  # SIGKILL: no handler runs, no checkpoint, nothing tidied
        await proc.wait()
    assert proc.returncode == -9
    assert marker.read_text() == point


@pytest.mark.parametrize(
    ("point", "after"),
    [
        ("install:materialising", "v1"),  # half of v2's tree written beside the live one
        ("install:materialised", "v1"),  # v2's tree whole, the pointer not moved
        ("install:swapped", "v2"),  # the path swapped inside the transaction, not committed
        ("install:committed", "v2"),  # committed, the reply not sent
    ],
)
async def test_a_sigkill_mid_install_leaves_one_whole_version_and_a_consistent_pointer(
    tmp_path: Path, sample_project: Path, point: str, after: str
) -> None:
    state_dir = tmp_path / "state"
    write_toml(state_dir, sample_project)
    install, v1, v2 = await promoted_v2(state_dir, tmp_path)
    await _install_then_kill(state_dir, point, tmp_path / "server.log")

    # Right after the kill: the install path holds exactly one whole version.
    held = tree_files(install)
    assert held == (v1 if after == "v1" else v2), point

    async with stdio_session(state_dir, "alice") as s:  # the next start
        listed = ok(await s.call_tool("module_versions", {"module": MODULE}))
        assert listed["consistent"] is True, listed
        active = listed["active"]
        assert tree_files(install) == (v1 if active == 1 else v2)
        assert active == (2 if point == "install:committed" else 1), point
        # The install goes through afterwards, whatever the kill left behind.
        ok(await s.call_tool("module_install", {"task": "T1", "module": MODULE, "version": 2}))
        assert tree_files(install) == v2
    leftovers = [p.name for p in (state_dir / "installed" / MODULE).iterdir()]
    assert all(not n.startswith(".phasegate-tmp-v") for n in leftovers), leftovers
    if point == "install:swapped":
        assert "module.install_repaired" in ledger_types(state_dir)
    cli("verify", "--state-dir", str(state_dir))
