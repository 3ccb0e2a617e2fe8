"""Chaos: many simulated agents over streamable HTTP on loopback, for a bounded time.

Each agent opens its own MCP session (initialize, its own X-Phasegate-Instance) and drives its
own tasks: task_start, then evidence_put + phase_advance phase after phase, until the time is
up. Afterwards the server is stopped and the ledger alone must show every acknowledged call
(each evidence_put's record and each advance), `phasegate verify` must pass, and no call may
have answered INTERNAL or failed in transport.

    python scripts/chaos_http_swarm.py                  # 1,000 agents, 60 s
    python scripts/chaos_http_swarm.py --agents 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2

REPO = Path(__file__).resolve().parents[1]
TOKEN = "chaos-swarm-token"
ARTIFACTS = {
    "STRATEGIZE": ("strategy.md", "# Problem\nx\n# Objectives\n- y\n"),
    "SPEC": ("spec.md", "# Acceptance Criteria\n- works\n"),
    "PLAN": ("plan.md", "1. do\n2. check\n"),
    "THINK": ("edge_cases.md", "- none\n"),
}


class Swarm:
    def __init__(self, url: str, agents: int, committed: int = 100) -> None:
        self.url = url
        self.http = httpx2.AsyncClient(
            timeout=60, limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self.agents = agents
        # agents that make one write and one advance whatever the time, so that even on a
        # loaded host the run checks acknowledged writes (not an empty set)
        self.committed = committed
        self.acked: list[tuple[str, str, str, str]] = []  # (kind, task, name/to, sha256 or "")
        self.codes: Counter[str] = Counter()
        self.failures: list[str] = []
        self.latency: list[float] = []

    async def rpc(self, headers: dict[str, str], method: str, params: dict[str, Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        started = time.perf_counter()
        response = await self.http.post(self.url, json=body, headers=headers)
        self.latency.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        if "mcp-session-id" in response.headers:
            headers["mcp-session-id"] = response.headers["mcp-session-id"]
        text = response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            text = next(ln[6:] for ln in text.splitlines() if ln.startswith("data: "))
        return json.loads(text)["result"]

    async def call(self, headers: dict[str, str], tool: str, args: dict[str, Any]) -> Any:
        result = await self.rpc(headers, "tools/call", {"name": tool, "arguments": args})
        if result.get("isError"):
            code = json.loads(result["content"][0]["text"])["error"]["code"]
            self.codes[code] += 1
            return None
        self.codes["ok"] += 1
        return result["structuredContent"]

    def going(self, deadline: float) -> bool:
        """Until the deadline — and past it, up to a hard cap, while no write has been
        acknowledged yet: on a loaded host the first writes may take longer than the run, and
        a run that acknowledged none would check nothing."""
        now = time.monotonic()
        return now < deadline or (not self.acked and now < deadline + _GRACE_S)

    async def agent(self, i: int, deadline: float) -> None:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/json, text/event-stream",
            "x-phasegate-instance": f"swarm-{i}",
        }
        try:
            info = {"name": f"swarm-{i}", "version": "1"}
            init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
            await self.rpc(headers, "initialize", init)
            n = 0
            while self.going(deadline):
                task = f"S-{i}-{n}"
                n += 1
                if await self.call(headers, "task_start", {"title": "swarm", "task": task}) is None:
                    continue
                for phase, (name, content) in ARTIFACTS.items():
                    if not self.going(deadline):
                        return
                    args = {"task": task, "name": name, "content": content}
                    rec = await self.call(headers, "evidence_put", args)
                    if rec is not None:
                        self.acked.append(("evidence", task, name, rec["sha256"]))
                    moved = await self.call(headers, "phase_advance", {"task": task})
                    if moved is not None:
                        self.acked.append(("advance", task, moved["phase"], phase))
        except Exception as e:  # a transport failure is a finding, not a crash of the swarm
            self.failures.append(f"agent {i}: {type(e).__name__}: {e}")

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(self.agent(i, deadline) for i in range(self.agents)))
        await self.http.aclose()


_GRACE_S = 150.0
_LISTENING = re.compile(rb"phasegate: listening on (http://\S+/mcp)")


def _missing(db: Path, acked: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT type, task, entry FROM ledger WHERE type IN"
            " ('evidence.recorded', 'phase.advanced')"
        ).fetchall()
    seen = set()
    for kind, task, raw in rows:
        data = json.loads(raw)["data"]
        if kind == "evidence.recorded":
            seen.add(("evidence", task, data["name"], data["sha256"]))
        else:
            seen.add(("advance", task, data["to"], data["from"]))
    return [a for a in acked if a not in seen]


def run_swarm(agents: int, seconds: float, workdir: Path) -> dict[str, Any]:
    state = workdir / "state"
    state.mkdir(parents=True)
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (state / "phasegate.toml").write_text(
        f'[actors.swarm]\nrole = "operator"\ntoken_sha256 = "{digest}"\n'
        "[leases]\nttl_s = 600\n[telemetry]\nenabled = false\n"
    )
    log = (workdir / "server.log").open("wb")
    # Port 0: the server binds a free port and prints the URL once it listens.
    argv = [sys.executable, "-m", "server.cli", "serve", "--http", "--port", "0"]
    proc = subprocess.Popen([*argv, "--state-dir", str(state)], cwd=REPO, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not (found := _LISTENING.search((workdir / "server.log").read_bytes())):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(
                    "the server did not start: " + (workdir / "server.log").read_text()
                )
            time.sleep(0.05)
        swarm = Swarm(found.group(1).decode(), agents)
        started = time.monotonic()
        asyncio.run(swarm.run(seconds))
        elapsed = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    verify = subprocess.run(
        [sys.executable, "-m", "server.cli", "verify", "--state-dir", str(state), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lat = sorted(swarm.latency)
    calls = sum(swarm.codes.values())
    return {
        "agents": agents,
        "seconds": round(elapsed, 1),
        "calls": calls,
        "calls_per_s": round(calls / elapsed, 1) if elapsed else 0,
        "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2) if lat else None,
        "outcomes": dict(swarm.codes),
        "acknowledged_writes": len(swarm.acked),
        "lost_acknowledged": len(_missing(state / "phasegate.db", swarm.acked)),
        "transport_failures": swarm.failures[:5],
        "transport_failure_count": len(swarm.failures),
        "verify_ok": verify.returncode == 0,
        "verify": verify.stdout.strip()[:300],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="phasegate-swarm-") as tmp:
        figures = run_swarm(args.agents, args.seconds, Path(tmp))
    print(json.dumps(figures, indent=2))
    ok = (
        figures["verify_ok"]
        and figures["lost_acknowledged"] == 0
        and figures["transport_failure_count"] == 0
        and "INTERNAL" not in figures["outcomes"]
    )
    print("swarm:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
