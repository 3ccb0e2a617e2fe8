"""What telemetry costs a tool call: phase_advance p50 over stdio, telemetry on and off.

Each run starts two real servers (``python -m server.cli serve``), each in a fresh state
directory, as stdio subprocesses driven by the MCP SDK's ClientSession: one with telemetry on
(the default: the SDK's server span, phasegate's attributes and child spans, counters and the
duration histogram, written as JSON lines), one with it off (``[telemetry] enabled = false`` in
phasegate.toml).

Each timed iteration, on each server: ``evidence_put strategy.md`` (untimed), ``phase_advance``
(timed), ``phase_backtrack`` to STRATEGIZE (untimed). The two servers take turns iteration by
iteration, in an ABBA order, so drift and other load (caches, CPU frequency, fsync latency,
other processes) fall on both sides equally. Each run gives a p50 per side; the result is the
median of the runs' p50s for each side and their difference in percent, and the median of the
per-run differences (the sides paired within each run). Target: at most 10 % apart, by both.

    python scripts/bench_telemetry.py [--runs 5] [--iterations 300] [--warmup 30]
                                      [--durability FULL|NORMAL] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parents[1]
TASK = "BENCH-TEL"
STRATEGY = "# Problem\nBenchmark.\n\n# Objectives\n- measure telemetry\n"
TARGET_PCT = 10.0
ON, OFF = True, False


def _check(result: object) -> None:
    if getattr(result, "is_error", False):
        raise RuntimeError(f"tool call failed: {getattr(result, 'structured_content', result)}")


async def _server(
    stack: contextlib.AsyncExitStack, root: Path, telemetry: bool, durability: str
) -> ClientSession:
    state = root / ("on" if telemetry else "off")
    state.mkdir()
    toml = f'[store]\ndurability = "{durability}"\n'
    if not telemetry:
        toml += "[telemetry]\nenabled = false\n"
    (state / "phasegate.toml").write_text(toml)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.cli", "serve", "--state-dir", str(state), "--actor", "bench"],
        cwd=str(REPO),
    )
    errlog = stack.enter_context((root / f"server-{state.name}.log").open("w"))
    read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    _check(await session.call_tool("task_start", {"title": "bench", "task": TASK}))
    return session


async def one_run(iterations: int, warmup: int, durability: str) -> dict[bool, list[float]]:
    """phase_advance round trips in ms per side (after `warmup` untimed rounds)."""
    samples: dict[bool, list[float]] = {ON: [], OFF: []}
    put = {"task": TASK, "name": "strategy.md", "content": STRATEGY}
    advance = {"task": TASK}
    back = {"task": TASK, "to": "STRATEGIZE", "reason": "benchmark loop"}
    with tempfile.TemporaryDirectory(prefix="phasegate-bench-tel-") as tmp:
        root = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            sessions = {side: await _server(stack, root, side, durability) for side in (ON, OFF)}
            for i in range(warmup + iterations):
                for side in (ON, OFF) if i % 4 in (0, 3) else (OFF, ON):  # ABBA
                    session = sessions[side]
                    _check(await session.call_tool("evidence_put", put))
                    started = time.perf_counter()
                    result = await session.call_tool("phase_advance", advance)
                    elapsed = time.perf_counter() - started
                    _check(result)
                    if i >= warmup:
                        samples[side].append(elapsed * 1000)
                    _check(await session.call_tool("phase_backtrack", back))
        # The servers have exited (and flushed): telemetry really was on, and really off.
        if not list((root / "on" / "telemetry").glob("traces-*.jsonl")):
            raise RuntimeError("telemetry was on but no traces file was written")
        if (root / "off" / "telemetry").exists():
            raise RuntimeError("telemetry was off but the telemetry directory exists")
    return samples


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


async def main_async(args: argparse.Namespace) -> int:
    p50s: dict[bool, list[float]] = {ON: [], OFF: []}
    p95s: dict[bool, list[float]] = {ON: [], OFF: []}
    print(
        f"phase_advance over stdio, durability {args.durability}: {args.runs} runs, each"
        f" {args.iterations} timed advances per side (after {args.warmup} warm-up), the two"
        f" servers alternating ABBA; Python {platform.python_version()}"
    )
    for n in range(1, args.runs + 1):
        samples = await one_run(args.iterations, args.warmup, args.durability)
        for side in (ON, OFF):
            p50s[side].append(statistics.median(samples[side]))
            p95s[side].append(_p95(samples[side]))
        print(
            f"  run {n}: on p50 {p50s[ON][-1]:.3f} ms (p95 {p95s[ON][-1]:.3f})"
            f"   off p50 {p50s[OFF][-1]:.3f} ms (p95 {p95s[OFF][-1]:.3f})"
        )
    on, off = statistics.median(p50s[ON]), statistics.median(p50s[OFF])
    diff = (on - off) / off * 100
    sides: list[tuple[str, bool]] = [("on ", ON), ("off", OFF)]
    for label, side in sides:
        median, p95 = statistics.median(p50s[side]), statistics.median(p95s[side])
        print(f"telemetry {label}: p50 {median:.3f} ms, p95 {p95:.3f} ms (medians of the runs)")
    # The same comparison paired within each run (both sides saw the same load).
    paired = statistics.median((a - b) / b * 100 for a, b in zip(p50s[ON], p50s[OFF], strict=True))
    met = abs(diff) <= TARGET_PCT and abs(paired) <= TARGET_PCT
    verdict = "met" if met else "MISSED"
    print(f"difference: {diff:+.1f} % (median of the per-run differences: {paired:+.1f} %)")
    print(f"target: at most {TARGET_PCT:.0f} % apart: {verdict}")
    return 1 if args.check and not met else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    parser.add_argument("--iterations", type=int, default=300, help="timed advances per run")
    parser.add_argument("--warmup", type=int, default=30, help="untimed advances first")
    parser.add_argument(
        "--durability", choices=["FULL", "NORMAL"], default="FULL", help="[store] durability"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    if args.runs < 1 or args.iterations < 2 or args.warmup < 0:
        parser.error("--runs >= 1, --iterations >= 2, --warmup >= 0")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
