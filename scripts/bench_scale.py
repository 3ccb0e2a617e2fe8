"""Scale-out benchmark: phasegate over PostgreSQL with one server and several, against SQLite.

    python scripts/bench_scale.py                   # 3 runs; a throwaway PostgreSQL on loopback TCP
    python scripts/bench_scale.py --runs 5 --seconds 10 --pg-url postgresql://...

Rows (medians over the runs; each run on a fresh database schema and state directory):
- latency, in process: `Enforcer.phase_advance` SPEC -> PLAN as bench_transition.py times it
  (SPEC's gate needs two artifacts; lease check, attestation check, ledger append under the
  chain lock, projection, commit), on PostgreSQL over loopback TCP and on SQLite (FULL).
- latency, over HTTP: the same advance sent to one `phasegate serve --http` by a raw JSON-RPC
  client on one kept-alive connection (the MCP SDK's Python client opens a new connection per
  call on SSE answers and costs milliseconds of its own: see the README).
- sustained, over HTTP: 1, 2 and 4 servers, 32 agents spread over them, each on its own tasks
  with every gate empty, so each call is one transition (9 per task, then the next task);
  transitions/s = acknowledged `phase_advance` calls per second, after a warm-up.
- sustained, in process: 1, 2 and 4 processes running the enforcer itself (no HTTP), 32 agents
  shared among them: what the store and its chain lock sustain across processes.
Telemetry is off in every server (bench_telemetry.py measures it). Everything — PostgreSQL, the
servers and the clients — shares this machine's CPUs, whose count and load are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "enforcer"), str(ROOT / "tests" / "server")]

import httpx2  # noqa: E402
from bench_transition import (  # noqa: E402
    AGENT,
    NOTES,
    PROMPT,
    SPEC,
    config,
    percentile,
    ready,
    to_spec,
)
from pg_kit import running_cluster, schema_url  # noqa: E402
from scale_kit import http_servers, scale_toml, token_of  # noqa: E402

from enforcer.config import Config, GateConfig  # noqa: E402
from enforcer.model import Caller  # noqa: E402
from enforcer.phases import ORDER, Phase  # noqa: E402
from enforcer.runtime import open_runtime  # noqa: E402
from enforcer.service import Enforcer  # noqa: E402

EMPTY_GATES = {p.value: GateConfig(artifacts=[]) for p in ORDER if p is not Phase.DONE}
NAMES = [f"agent{k:02d}" for k in range(32)]
PG_DATA: list[Path] = []  # the throwaway cluster's data directory, for its CPU time
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) of process `pid` so far, in seconds; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_cpu_s() -> float:
    """CPU time of the throwaway cluster: its postmaster and every process it started."""
    if not PG_DATA:
        return 0.0
    try:
        master = int((PG_DATA[0] / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = _cpu_s(master)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                total += _cpu_s(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


class RawAgent:
    """An MCP client reduced to JSON-RPC over streamable HTTP on one kept-alive connection."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name, self.ids = url, name, 0
        self.headers = {
            "Authorization": f"Bearer {token_of(name)}",
            "Accept": "application/json, text/event-stream",
            "x-phasegate-instance": f"i-{name}",
        }
        self.http = httpx2.AsyncClient(timeout=30)

    async def rpc(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.ids += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            body["params"] = params
        response = await self.http.post(self.url, json=body, headers=self.headers)
        if "mcp-session-id" in response.headers:
            self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        text = response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            text = next(ln[6:] for ln in text.splitlines() if ln.startswith("data: "))
        return json.loads(text)["result"]

    async def open(self) -> None:
        info = {"name": self.name, "version": "1"}
        await self.rpc(
            "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
        )
        await self.http.post(
            self.url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=self.headers,
        )

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.rpc("tools/call", {"name": tool, "arguments": args})
        if result.get("isError"):
            raise RuntimeError(f"{tool}: {result['content'][0]['text']}")
        return dict(result["structuredContent"])

    async def close(self) -> None:
        await self.http.aclose()


# ---------------------------------------------------------------- latency


async def latency_in_process(state: Path, url: str | None, count: int) -> tuple[float, float]:
    lat: list[float] = []
    async with open_runtime(state, config=config("FULL"), store_url=url) as rt:
        e = Enforcer(rt)
        await to_spec(e, "B1")
        for _ in range(count):
            await ready(e, "B1")
            t0 = time.perf_counter()
            await e.phase_advance(AGENT, "B1")
            lat.append(time.perf_counter() - t0)
            await e.phase_backtrack(AGENT, "B1", "SPEC", "benchmark: once more")
    lat.sort()
    return percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3


async def latency_over_http(
    state: Path, url: str | None, count: int, tmp: Path
) -> tuple[float, float]:
    state.mkdir(parents=True)
    gates = {Phase.SPEC: ["spec.md", "notes.md"]}
    (state / "phasegate.toml").write_text(scale_toml(NAMES[:1], ttl_s=300, gates=gates))
    lat: list[float] = []
    with http_servers(state, url, 1, tmp) as fleet:
        agent = RawAgent(fleet.urls[0], NAMES[0])
        await agent.open()
        await agent.call("task_start", {"title": "bench", "task": "B1"})
        await agent.call("phase_advance", {"task": "B1"})
        for _ in range(count):
            for name, content in (("spec.md", SPEC), ("notes.md", NOTES)):
                put = {"task": "B1", "name": name, "content": content}
                await agent.call("evidence_put", put)
            await agent.call("prompt_attest", {"task": "B1", "prompt": PROMPT})
            t0 = time.perf_counter()
            await agent.call("phase_advance", {"task": "B1"})
            lat.append(time.perf_counter() - t0)
            await agent.call("phase_backtrack", {"task": "B1", "to": "SPEC", "reason": "again"})
        await agent.close()
    lat.sort()
    return percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3


# ---------------------------------------------------------------- sustained


async def drive_http(agent: RawAgent, stop: float, window: tuple[float, float]) -> int:
    """Start tasks and advance each to DONE until `stop`; advances inside `window` count."""
    counted, n = 0, 0
    while time.monotonic() < stop:
        task = f"{agent.name}-{n:05d}"
        n += 1
        await agent.call("task_start", {"title": "bench", "task": task})
        for _ in range(9):
            await agent.call("phase_advance", {"task": task})
            counted += window[0] <= time.monotonic() < window[1]
            if time.monotonic() >= stop:
                break
    return counted


async def sustained_http(
    state: Path, url: str | None, servers: int, secs: float, tmp: Path
) -> tuple[float, dict[str, float]]:
    """(transitions/s, CPU ms per transition of the servers, PostgreSQL and the clients)."""
    state.mkdir(parents=True)
    (state / "phasegate.toml").write_text(scale_toml(NAMES, ttl_s=300, gates={}))
    with http_servers(state, url, servers, tmp) as fleet:
        agents = [RawAgent(fleet.urls[k % servers], name) for k, name in enumerate(NAMES)]
        await asyncio.gather(*(a.open() for a in agents))
        start = time.monotonic() + 1.0  # warm-up: sessions, prepared statements, caches
        window = (start, start + secs)

        def sample() -> tuple[float, float, float]:
            return (
                sum(_cpu_s(p.pid) for p in fleet.procs),
                _postgres_cpu_s(),
                time.process_time(),
            )

        async def at_start() -> tuple[float, float, float]:
            await asyncio.sleep(max(0.0, window[0] - time.monotonic()))  # a clock, not a lock
            return sample()

        first = asyncio.ensure_future(at_start())
        counts = await asyncio.gather(*(drive_http(a, window[1], window) for a in agents))
        end = sample()
        begin = await first
        await asyncio.gather(*(a.close() for a in agents))
    moved = max(1, sum(counts))
    cpu = {k: (end[i] - begin[i]) * 1e3 / moved for i, k in enumerate(CPU_PARTS_HTTP)}
    return sum(counts) / secs, cpu


CPU_PARTS_HTTP = ("servers", "postgres", "clients")
CPU_PARTS_PROC = ("processes", "postgres")


async def worker(state: Path, url: str | None, agents: int, secs: float, offset: int) -> None:
    """--worker: one process of the in-process rows; waits for a line on stdin, then runs."""
    crew = [Caller(f"w{offset + a}", instance=f"w{offset + a}") for a in range(agents)]
    async with open_runtime(state, config=Config(gates=EMPTY_GATES), store_url=url) as rt:
        e = Enforcer(rt)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        stop = time.monotonic() + secs
        cpu0 = time.process_time()

        async def one(me: Caller) -> int:
            done, n = 0, 0
            while time.monotonic() < stop:
                task = f"{me.actor}-{n:05d}"
                n += 1
                await e.task_start(me, "bench", task)
                for _ in range(9):
                    await e.phase_advance(me, task)
                    done += time.monotonic() < stop
            return done

        done = await asyncio.gather(*(one(me) for me in crew))
        cpu = time.process_time() - cpu0
        print(json.dumps({"transitions": sum(done), "seconds": secs, "cpu_s": cpu}), flush=True)
        # Connected until told: the parent reads PostgreSQL's CPU time while our backends live.
        await asyncio.to_thread(sys.stdin.readline)


def sustained_in_process(
    state: Path, url: str | None, procs: int, secs: float
) -> tuple[float, dict[str, float]]:
    """(transitions/s, CPU ms per transition of the enforcer processes and PostgreSQL)."""
    argv = [sys.executable, __file__, "--worker", str(state), "--seconds", str(secs)]
    argv += [] if url is None else ["--pg-url", url]
    share = [len(NAMES) // procs + (i < len(NAMES) % procs) for i in range(procs)]
    children = [
        subprocess.Popen(
            [*argv, "--agents", str(n), "--offset", str(i * 100)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for i, n in enumerate(share)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    pg_before = _postgres_cpu_s() if url is not None else 0.0
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    total, worker_cpu = 0, 0.0
    for child in children:
        assert child.stdout is not None
        found = json.loads(child.stdout.readline())
        total += found["transitions"]
        worker_cpu += found["cpu_s"]
    pg = (_postgres_cpu_s() - pg_before) if url is not None else 0.0
    for child in children:
        child.communicate("bye\n", timeout=120)
    moved = max(1, total)
    return total / secs, {"processes": worker_cpu * 1e3 / moved, "postgres": pg * 1e3 / moved}


# ---------------------------------------------------------------- main


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _gauge() -> str:
    """The host's speed now: the median time of sum(range(10**6)) over 15 tries (about 14 ms
    on this machine class when it is quiet), as bench_server.py prints it."""
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        sum(range(10**6))
        times.append(time.perf_counter() - t0)
    return f"CPU gauge {statistics.median(times) * 1e3:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transitions", type=int, default=500, help="timed advances per run")
    parser.add_argument("--seconds", type=float, default=8.0, help="sustained window per run")
    parser.add_argument("--servers", default="1,2,4", help="server counts, sustained rows")
    parser.add_argument("--pg-url", default=None, help="use this PostgreSQL (default: start one)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--agents", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        asyncio.run(worker(args.worker, args.pg_url, args.agents, args.seconds, args.offset))
        return 0
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {_load()}, {_gauge()}")
    if args.pg_url:
        return run(args, args.pg_url)
    with running_cluster(tcp=True) as cluster:
        print(f"PostgreSQL: a throwaway cluster on 127.0.0.1:{cluster.port} (TCP), defaults")
        PG_DATA.append(cluster.data)
        return run(args, cluster.url())


def run(args: argparse.Namespace, server_url: str) -> int:
    counts = [int(n) for n in args.servers.split(",")]
    med = statistics.median
    with tempfile.TemporaryDirectory(prefix="phasegate-scale-") as tmp:
        root = Path(tmp)

        def fresh(kind: str, tag: str) -> tuple[Path, str | None]:
            state = root / f"{tag}-{len(list(root.iterdir()))}"
            return state, (schema_url(server_url)[0] if kind == "postgres" else None)

        def rows(measure: Any) -> list[Any]:
            return [measure() for _ in range(args.runs)]

        print(f"\nlatency of phase_advance: {args.runs} runs x {args.transitions} (p50, p99 ms)")
        for kind in ("postgres", "sqlite"):

            def lat_in(kind: str = kind) -> tuple[float, float]:
                state, url = fresh(kind, "lat")
                return asyncio.run(latency_in_process(state, url, args.transitions))

            def lat_http(kind: str = kind) -> tuple[float, float]:
                state, url = fresh(kind, "lath")
                return asyncio.run(latency_over_http(state, url, args.transitions, root))

            for where, lat_fn in (("in process", lat_in), ("over HTTP, 1 server", lat_http)):
                got = rows(lat_fn)
                print(
                    f"  {kind:<9}{where:<22} p50 {med(g[0] for g in got):6.3f}"
                    f"  p99 {med(g[1] for g in got):6.3f}"
                    f"  (p50 runs {', '.join(f'{g[0]:.3f}' for g in got)})  {_gauge()}"
                )
        print(f"\nsustained transitions/s, 32 agents, {args.seconds:g} s windows, median (runs)")
        plan = [("postgres", n) for n in counts] + [("sqlite", 1)]
        for kind, n in plan:

            def http_rate(kind: str = kind, n: int = n) -> tuple[float, dict[str, float]]:
                state, url = fresh(kind, "sus")
                return asyncio.run(sustained_http(state, url, n, args.seconds, root))

            def proc_rate(kind: str = kind, n: int = n) -> tuple[float, dict[str, float]]:
                state, url = fresh(kind, "proc")
                return sustained_in_process(state, url, n, args.seconds)

            measures: list[tuple[str, Callable[[], tuple[float, dict[str, float]]]]] = [
                ("over HTTP", http_rate),
                ("in process", proc_rate),
            ]
            for where, fn in measures:
                got = rows(fn)
                rates = [g[0] for g in got]
                unit = "servers" if where == "over HTTP" else "processes"
                print(
                    f"  {kind:<9}{n} {unit:<10} {where:<11} {med(rates):8,.0f}"
                    f"  ({', '.join(f'{r:,.0f}' for r in rates)})  {_load()}, {_gauge()}"
                )
                parts = {k: med(g[1][k] for g in got) for k in got[0][1]}
                if kind == "sqlite":
                    parts.pop("postgres", None)
                cpu = sum(parts.values())
                cpus = os.cpu_count() or 1
                print(
                    "      CPU ms per transition: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
                    + f"; total {cpu:.2f}: at most {cpus * 1000 / max(cpu, 1e-9):,.0f}/s"
                    f" on {cpus} cpus however quiet the host"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
