"""Tool-call latency over stdio: the router's overhead and the cost of a phase move.

Client mode (the default) starts this script in launcher mode as a stdio subprocess, speaks to it
with the MCP SDK's ClientSession (or, with ``--raw``, with a minimal JSON-RPC client that parses
each answer once and checks no schema: what the server costs, without the Python client's own
0.4 ms), and measures round trips for these tools:

- ``noop``: a bare tool added with ``server.add_tool`` (no router): the floor of the transport;
- ``controls_status``: a read-only routed call with a small result (the router's own cost:
  argument check, role, journal line, span attributes, one point read);
- ``task_status``: a read-only routed call with a ~0.8 KB result and ten typed fields;
- ``task_status_unrouted``: task_status's twin outside the router — a bare tool with the same
  output schema, returning task_status's result built once — so ``task_status`` over it is what
  the router (and the status reads) add, and it over ``noop`` is what the larger result costs the
  SDK's server, the pipe and the client (parsing, and the output-schema check of every field);
- ``evidence_put``: the write an agent makes most, with new content every time (a new blob:
  its bytes, its record and its ledger entry made durable together);
- ``phase_advance``: a routed write with its gate (one SQLite transaction, one ledger entry).
  Each timed advance follows its ``evidence_put strategy.md``, and is followed by an untimed
  ``phase_backtrack`` to STRATEGIZE.

Each run reports p50/p99; the summary is the median over runs. Targets (issue #4): the router's
overhead on a read-only call <= 20 % of a bare round trip (``noop``), read on the two routed reads
as above, phase_advance p50 <= 2 ms, and (issue 13) evidence_put p50 <= 1.5 ms.
``task_status`` over ``noop`` is printed too, split into its result's share and the router's.

The server runs on phasegate's stdio transport, as ``phasegate serve`` does; ``--sdk-stdio``
runs the same server on the SDK's threaded transport instead, for comparison.

    python scripts/bench_server.py [--calls 2000] [--advances 500] [--runs 3] [--raw]
                                   [--sdk-stdio] [--durability NORMAL]
    python scripts/bench_server.py --serve --state-dir D      # launcher mode (used by the above)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from server.catalogue import TaskStatusResult

STRATEGY = "# Problem\nBenchmark.\n\n# Objectives\n- measure the router\n"
TASK = "BENCH-1"
MEASURED = ("noop", "controls_status", "task_status", "evidence_put", "phase_advance")
READ_TARGET_PCT = 20.0
ADVANCE_TARGET_MS = 2.0
PUT_TARGET_MS = 1.5


# ------------------------------------------------------------------ launcher mode


def serve(state_dir: Path, durability: str, sdk_stdio: bool = False) -> None:
    """build_server plus one bare tool, on stdio: phasegate's transport (what `phasegate serve`
    runs), or with `sdk_stdio` the SDK's own threaded one, for comparison."""
    from enforcer.config import Config, StoreConfig
    from server.app import AppState, ServeOptions, build_server
    from server.context import CallContext
    from server.router import ok_result
    from server.tools import _status as tools_status

    config = Config(store=StoreConfig(durability=durability))
    server = build_server(ServeOptions(state_dir=state_dir, config=config, actor="bench"))

    async def noop() -> None:
        return None

    server.add_tool(noop, name="noop", description="does nothing (benchmark floor)")

    async def task_status_unrouted(ctx: Context) -> Annotated[CallToolResult, TaskStatusResult]:
        # task_status's result for the benchmark task, built once and then returned as it is,
        # with task_status's output schema: the same answer, served without the router.
        if not _UNROUTED:
            state = cast(AppState, ctx.request_context.lifespan_context)
            report = await state.enforcer.task_status(TASK)
            call = CallContext(state.enforcer, state.caller(None), state.router, None)
            _UNROUTED.append(ok_result(tools_status(call, report)))
        return _UNROUTED[0]

    server.add_tool(
        task_status_unrouted,
        name="task_status_unrouted",
        description="task_status's result and schema without the router (benchmark diagnostic)",
    )
    if sdk_stdio:
        server.run()
    else:
        from server.stdio import run_stdio

        run_stdio(server)


_UNROUTED: list[CallToolResult] = []


# ------------------------------------------------------------------ client mode


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    return percentile(samples, 0.50) * 1000, percentile(samples, 0.99) * 1000


async def timed(calls: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        result = await call()
        out.append(time.perf_counter() - started)
        if getattr(result, "is_error", False):
            raise RuntimeError(f"benchmark call failed: {result.structured_content}")
    return out


async def advances(session: Any, count: int) -> tuple[list[float], list[float]]:
    """Time evidence_put (new bytes every time, as an agent writes them) and phase_advance; the
    backtrack after them is untimed."""
    out, puts = [], []
    back = {"task": TASK, "to": "STRATEGIZE", "reason": "benchmark loop"}
    for i in range(count):
        content = f"{STRATEGY}\nRevision {i} of {time.time_ns()}.\n"  # a new blob each time
        put = {"task": TASK, "name": "strategy.md", "content": content}
        started = time.perf_counter()
        await check(session.call_tool("evidence_put", put))
        puts.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = await session.call_tool("phase_advance", {"task": TASK})
        out.append(time.perf_counter() - started)
        if result.is_error:
            raise RuntimeError(f"phase_advance failed: {result.structured_content}")
        await check(session.call_tool("phase_backtrack", back))
    return out, puts


async def validations(session: Any, name: str, result: Any, count: int) -> list[float]:
    """The client's own cost: checking one result against the tool's output schema."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        await session.validate_tool_result(name, result)
        out.append(time.perf_counter() - started)
    return out


async def check(pending: Awaitable[Any]) -> Any:
    result = await pending
    if result.is_error:
        raise RuntimeError(f"benchmark setup call failed: {result.structured_content}")
    return result


async def measure(session: Any, args: argparse.Namespace) -> dict[str, list[float]]:
    """The timed calls on one server; `session` is the SDK's ClientSession or a RawSession."""
    await session.initialize()
    await check(session.call_tool("task_start", {"title": "bench", "task": TASK}))
    status = {"task": TASK}

    async def noop() -> Any:
        return await session.call_tool("noop", {})

    async def task_status() -> Any:
        return await session.call_tool("task_status", status)

    async def controls_status() -> Any:
        return await session.call_tool("controls_status", {})

    async def task_status_unrouted() -> Any:
        return await session.call_tool("task_status_unrouted", {})

    # Warm-up, then interleave the read kinds in short blocks so that the machine's drift
    # (large on a shared VM) hits all of them alike.
    reads = {
        "noop": noop,
        "controls_status": controls_status,
        "task_status": task_status,
        "task_status_unrouted": task_status_unrouted,
    }
    for call in reads.values():
        await timed(args.warmup, call)
    samples: dict[str, list[float]] = {name: [] for name in reads}
    block = max(1, min(args.block, args.calls))
    for _ in range(args.calls // block):
        for name, call in reads.items():
            samples[name] += await timed(block, call)
    await advances(session, max(1, args.warmup // 10))
    samples["phase_advance"], samples["evidence_put"] = await advances(session, args.advances)
    if not isinstance(session, RawSession):
        # Diagnostics: the client's own output-schema check of one result of each.
        for name, call in (("noop", noop), ("task_status", task_status)):
            samples[f"client validation of {name}"] = await validations(
                session, name, await call(), args.warmup
            )
    return samples


class RawSession:
    """A minimal JSON-RPC client on the server's pipes: one ``json.loads`` per answer, no
    output-schema check. The SDK's Python client spends 0.05-0.1 ms per call of its own on
    parsing and validating a result (jsonschema); a client with a compiled validator spends a
    few microseconds. This one shows what the server itself costs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin = proc.stdin
        self._stdout = proc.stdout
        self._next_id = 0

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        self._stdin.write((json.dumps(message) + "\n").encode())
        await self._stdin.drain()
        answer = json.loads(await self._stdout.readline())
        if answer.get("id") != self._next_id or "result" not in answer:
            raise RuntimeError(f"unexpected answer to {method}: {answer}")
        return answer["result"]

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench-raw", "version": "0"},
            },
        )
        self._stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        await self._stdin.drain()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        return SimpleNamespace(
            is_error=bool(result.get("isError")),
            structured_content=result.get("structuredContent"),
        )


@contextlib.asynccontextmanager
async def raw_session(argv: list[str], cwd: str, errlog: Any) -> AsyncIterator[RawSession]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=errlog,
        limit=1 << 24,
    )
    try:
        yield RawSession(proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def one_run(args: argparse.Namespace, run: int) -> dict[str, list[float]]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    state_dir = Path(tempfile.mkdtemp(prefix="phasegate-bench-"))
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--state-dir",
        str(state_dir),
        "--durability",
        args.durability,
        *(["--sdk-stdio"] if args.sdk_stdio else []),
    ]
    cwd = str(Path(__file__).resolve().parents[1])
    try:
        with (state_dir.parent / f"{state_dir.name}.log").open("w") as errlog:
            if args.raw:
                async with raw_session(argv, cwd, errlog) as raw:
                    samples = await measure(raw, args)
            else:
                params = StdioServerParameters(command=argv[0], args=argv[1:], cwd=cwd)
                async with (
                    stdio_client(params, errlog=errlog) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    samples = await measure(session, args)
        # Diagnostics: time inside the router, as the call journal records it.
        journal = state_dir / "evidence" / TASK / "journal.jsonl"
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        for tool in ("task_status", "phase_advance"):
            samples[f"router-side {tool}"] = [
                line["duration_ms"] / 1000 for line in lines if line["tool"] == tool
            ]
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        (state_dir.parent / f"{state_dir.name}.log").unlink(missing_ok=True)
    line = "  ".join(
        f"{name} p50 {summary(s)[0]:.3f} p99 {summary(s)[1]:.3f}"
        for name, s in samples.items()
        if name in MEASURED
    )
    print(f"run {run}: {line}  (ms)", flush=True)
    return samples


async def client(args: argparse.Namespace) -> int:
    print(
        f"phasegate stdio benchmark: python {platform.python_version()}, {args.runs} runs,"
        f" {args.calls} calls per read tool, {args.advances} advances per run,"
        f" durability {args.durability}, client {'raw JSON-RPC' if args.raw else 'MCP SDK'},"
        f" transport {'SDK (threads)' if args.sdk_stdio else 'phasegate (loop pipes)'}",
        flush=True,
    )
    runs = [await one_run(args, i + 1) for i in range(args.runs)]
    medians: dict[str, tuple[float, float]] = {}
    for name in sorted(runs[0], key=lambda n: n not in MEASURED):
        p50s = [summary(r[name])[0] for r in runs]
        p99s = [summary(r[name])[1] for r in runs]
        medians[name] = (statistics.median(p50s), statistics.median(p99s))
        if name == next(n for n in runs[0] if n not in MEASURED):
            print("diagnostics (where the difference goes):")
        print(
            f"{name:<32} p50 {medians[name][0]:7.3f} ms   p99 {medians[name][1]:7.3f} ms"
            "   (median of runs)"
        )
    noop50 = medians["noop"][0]
    status50 = medians["task_status"][0]
    unrouted50 = medians["task_status_unrouted"][0]
    read_ok = True
    print(f"router overhead on a read-only call, in % of noop (target <= {READ_TARGET_PCT:.0f} %):")
    for label, routed50, bare50 in (
        ("task_status over task_status_unrouted", status50, unrouted50),
        ("controls_status over noop", medians["controls_status"][0], noop50),
    ):
        overhead = (routed50 - bare50) / noop50 * 100
        ok = overhead <= READ_TARGET_PCT
        read_ok = read_ok and ok
        print(
            f"  {label:<38} {overhead:+6.1f} % ({routed50 - bare50:+.3f} ms)"
            f"  {'met' if ok else 'MISSED'}"
        )
    print(
        f"task_status over noop (p50): {(status50 - noop50) / noop50 * 100:+.1f} %"
        f" ({status50 - noop50:+.3f} ms): its larger result"
        f" {(unrouted50 - noop50) / noop50 * 100:+.1f} % (task_status_unrouted over noop),"
        f" the router {(status50 - unrouted50) / noop50 * 100:+.1f} %"
    )
    advance50 = medians["phase_advance"][0]
    advance_ok = advance50 <= ADVANCE_TARGET_MS
    print(
        f"phase_advance p50 {advance50:.3f} ms  target <= {ADVANCE_TARGET_MS} ms:"
        f" {'met' if advance_ok else 'MISSED'}"
    )
    put50 = medians["evidence_put"][0]
    put_ok = put50 <= PUT_TARGET_MS
    print(
        f"evidence_put p50 {put50:.3f} ms  target <= {PUT_TARGET_MS} ms:"
        f" {'met' if put_ok else 'MISSED'}"
    )
    return 0 if read_ok and advance_ok and put_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help="launcher mode: run the server")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--durability", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per read tool")
    parser.add_argument("--advances", type=int, default=500, help="timed phase_advance calls")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--block", type=int, default=20, help="calls per interleaved block")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--raw",
        action="store_true",
        help="time with a minimal JSON-RPC client instead of the SDK's (no schema checks)",
    )
    parser.add_argument(
        "--sdk-stdio",
        action="store_true",
        help="serve on the SDK's threaded stdio transport instead of phasegate's (comparison)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        if args.state_dir is None:
            parser.error("--serve needs --state-dir")
        serve(args.state_dir, args.durability, args.sdk_stdio)
        return 0
    return asyncio.run(client(args))


if __name__ == "__main__":
    sys.exit(main())
