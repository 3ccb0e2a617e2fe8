"""Fault probes over real `phasegate serve` processes: SIGKILL mid-stream, and contention.

kill: one agent streams evidence_put calls (each with new content) to a stdio server; at a
random moment the server is SIGKILLed and started again on the same state, `--kills` times.
Every call that was answered must be in the ledger afterwards (the answer's seq holds an
`evidence.recorded` entry for that name and sha256, and its blob is there), and `phasegate
verify` must pass after every restart. A call cut off by the kill may or may not have
committed: nothing is asserted about it, it was never acknowledged.

contend: `--agents` servers (one process each, one state directory) fight over one task for
`--seconds`: each takes the lease with a short TTL, writes with its fencing token, and
releases, again and again. Afterwards the ledger is replayed: every recorded artifact must
carry the token of the lease that was current and held by its writer at that moment (a
fencing violation otherwise), and tokens must only grow.

    python scripts/probe_faults.py kill --kills 20
    python scripts/probe_faults.py contend --agents 8 --seconds 10
    python scripts/probe_faults.py all            # both, with the defaults

Exit 0 when there is no lost acknowledged call, no fencing violation and every verify passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STRATEGY = "# Problem\nprobe {n}\n\n# Objectives\n- survive\n"


class ServerGone(Exception):
    """The server's stdout ended: it was killed (or died)."""


class Client:
    """A minimal JSON-RPC client on one `phasegate serve` process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._id = 0

    @classmethod
    async def start(cls, state: Path, actor: str, errlog: Any) -> Client:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "server.cli", "serve", "--state-dir", str(state), "--actor", actor),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errlog,
            limit=1 << 24,
        )
        client = cls(proc)
        await client.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": f"probe-{actor}", "version": "0"},
            },
        )
        await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return client

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ServerGone from e

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        await self.send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=60)
        if not line:
            raise ServerGone
        answer = json.loads(line)
        assert answer.get("id") == self._id, answer
        return dict(answer["result"])

    async def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str | None, Any]:
        """(error code or None, the structured result or the error body)."""
        result = await self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            error = json.loads(result["content"][0]["text"])["error"]
            return str(error["code"]), error
        return None, result["structuredContent"]

    async def close(self) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def verify(state: Path) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "verify", "--state-dir", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def ledger(state: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{state / 'phasegate.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, entry FROM ledger ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [json.loads(raw) | {"seq": seq} for seq, raw in rows]


# ------------------------------------------------------------------ kill


async def kill_probe(kills: int, window_s: float, state: Path, seed: int) -> bool:
    rng = random.Random(seed)
    acknowledged: list[dict[str, Any]] = []
    failures: list[str] = []
    n = 0
    with (state.parent / "kill-servers.log").open("w") as errlog:
        first = await Client.start(state, "streamer", errlog)
        code, _ = await first.call("task_start", {"title": "kill probe", "task": "K1"})
        assert code is None, code
        await first.close()
        for round_ in range(kills):
            client = await Client.start(state, "streamer", errlog)
            deadline = time.monotonic() + rng.uniform(0.05, window_s)

            async def stream(client: Client = client) -> None:
                nonlocal n
                while True:
                    n += 1
                    name = f"a{n % 50}.md"
                    arguments = {"task": "K1", "name": name, "content": STRATEGY.format(n=n)}
                    code, rec = await client.call("evidence_put", arguments)
                    if code is None:
                        acknowledged.append({"seq": rec["seq"], "name": name, "sha": rec["sha256"]})

            streaming = asyncio.ensure_future(stream())
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            os.kill(client.proc.pid, signal.SIGKILL)  # mid-stream: a call is usually in flight
            await client.proc.wait()
            with contextlib.suppress(ServerGone):
                await streaming
            ok, text = verify(state)
            if not ok:
                failures.append(f"verify after kill {round_ + 1}: {text}")
    entries = {e["seq"]: e for e in ledger(state)}
    lost = [
        a
        for a in acknowledged
        if (e := entries.get(a["seq"])) is None
        or e["type"] != "evidence.recorded"
        or e["data"]["name"] != a["name"]
        or e["data"]["sha256"] != a["sha"]
        or not (state / "blobs" / "sha256" / a["sha"][:2] / a["sha"]).is_file()
    ]
    print(
        f"kill probe: {kills} SIGKILLs, {len(acknowledged)} acknowledged calls, {len(lost)} lost;"
        f" {kills - len(failures)}/{kills} verify runs passed",
        flush=True,
    )
    for failure in failures[:5]:
        print(f"  {failure}")
    return not lost and not failures


# ------------------------------------------------------------------ contend


async def contender(client: Client, name: str, until: float, tally: dict[str, int]) -> None:
    i = 0
    while time.monotonic() < until:
        i += 1
        code, lease = await client.call("lease_acquire", {"task": "C1", "ttl_s": 1})
        tally[code or "acquired"] = tally.get(code or "acquired", 0) + 1
        if code is not None:
            continue
        token = lease["fencing_token"]
        put = {
            "task": "C1",
            "name": f"{name}.md",
            "content": f"{name} {i}\n",
            "fencing_token": token,
        }
        code, _ = await client.call("evidence_put", put)
        tally[code or "written"] = tally.get(code or "written", 0) + 1
        await client.call("lease_release", {"task": "C1"})


def fencing_violations(entries: list[dict[str, Any]]) -> list[str]:
    """Replay leases; every recorded artifact must carry the current holder's current token."""
    leases: dict[tuple[str, str], dict[str, Any]] = {}
    last_token: dict[tuple[str, str], int] = {}
    found = []
    for e in entries:
        s, d = e["subject"], e["data"]
        key = (s.get("task"), s.get("phase"))
        if e["type"] == "lease.acquired":
            if d["token"] <= last_token.get(key, 0):
                found.append(f"seq {e['seq']}: token {d['token']} did not grow")
            last_token[key] = d["token"]
            leases[key] = {**d, "active": True}
        elif e["type"] == "lease.renewed" and leases.get(key, {}).get("token") == d["token"]:
            leases[key]["expires_at"] = d["expires_at"]
        elif e["type"] in ("lease.released", "lease.broken"):
            if leases.get(key, {}).get("token") == d["token"]:
                leases[key]["active"] = False
        elif e["type"] == "evidence.recorded":
            current = leases.get(key)
            token = e["refs"].get("lease_token")
            if (
                current is None
                or not current["active"]
                or current["token"] != token
                or current["holder_actor"] != e["actor"]
                or e["ts"] > current["expires_at"]
            ):
                found.append(f"seq {e['seq']}: {e['actor']} wrote under token {token}")
    return found


async def contend_probe(agents: int, seconds: float, state: Path) -> bool:
    tally: dict[str, int] = {}
    with (state.parent / "contend-servers.log").open("w") as errlog:
        clients = [await Client.start(state, f"agent{i}", errlog) for i in range(agents)]
        try:
            code, _ = await clients[0].call("task_start", {"title": "contended", "task": "C1"})
            assert code is None, code
            await clients[0].call("lease_release", {"task": "C1"})
            until = time.monotonic() + seconds
            await asyncio.gather(
                *(contender(c, f"agent{i}", until, tally) for i, c in enumerate(clients))
            )
        finally:
            for client in clients:
                await client.close()
    violations = fencing_violations(ledger(state))
    ok, text = verify(state)
    print(
        f"contention probe: {agents} servers on one task for {seconds:g} s: {tally};"
        f" {len(violations)} fencing violations; verify {'ok' if ok else 'FAILED: ' + text}",
        flush=True,
    )
    for v in violations[:5]:
        print(f"  {v}")
    return ok and not violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("probe", choices=["kill", "contend", "all"])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.5, help="longest stream before a kill")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dir", type=Path, default=None, help="where state dirs are made")
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="phasegate-probe-", dir=args.dir) as tmp:
        if args.probe in ("kill", "all"):
            state = Path(tmp) / "kill"
            ok = asyncio.run(kill_probe(args.kills, args.window, state, args.seed)) and ok
        if args.probe in ("contend", "all"):
            state = Path(tmp) / "contend"
            ok = asyncio.run(contend_probe(args.agents, args.seconds, state)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
