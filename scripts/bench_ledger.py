"""Ledger benchmark: append latency and throughput under FULL and NORMAL durability, and the
offline verifier's throughput on a large ledger.

    python scripts/bench_ledger.py                   # 5 runs x 2,000 appends; 100,000 to verify
    python scripts/bench_ledger.py --runs 3 --appends 500 --entries 20000
    python scripts/bench_ledger.py --runs 1 --appends 10 --entries 1000 --bounds 10 100 1000

Appends go through `Ledger.append` (one transaction each) on a fresh state directory per run;
medians over the runs are reported. The verification ledger is built once with NORMAL
durability (entries appended in batches with `append_entry`, a signed checkpoint every 1,000
entries), then `verify_state` — every check: parse, canonical form, leaf hash, link, seq, and the
signed root at each checkpoint — is timed several times. Last, what a checkpoint costs for
each bound on the entries no checkpoint covers (``--bounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from enforcer.clock import SystemClock, rfc3339
from enforcer.config import Config, StoreConfig
from enforcer.ledger.entries import append_entry
from enforcer.ledger.verify import verify_state
from enforcer.runtime import open_runtime
from enforcer.store import Tx

VERIFY_TARGET = 100_000  # entries per second


def entry_args(i: int) -> dict[str, Any]:
    """A typical entry (about 500 bytes canonical): evidence recorded for a task."""
    return {
        "actor": "agent-7",
        "type": "evidence.recorded",
        "subject": {"task": f"T{i % 50}", "phase": "IMPLEMENT"},
        "data": {
            "name": "plan.md",
            "sha256": hashlib.sha256(i.to_bytes(8, "big", signed=True)).hexdigest(),
            "bytes": 1024 + i % 4096,
            "check": "passed: 3 sections, 2 risks",
        },
        "refs": {"trace_id": hashlib.md5(i.to_bytes(8, "big", signed=True)).hexdigest()},  # noqa: S324
    }


def config(durability: str) -> Config:
    return Config(store=StoreConfig(durability="FULL" if durability == "FULL" else "NORMAL"))


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def append_run(state: Path, durability: str, count: int) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, appends/s) of `count` appends, one transaction each."""
    latencies: list[float] = []
    async with open_runtime(state, config=config(durability)) as rt:
        await rt.ledger.append(**entry_args(-1))  # warm-up: schema, key, first page
        clock = time.perf_counter
        started = clock()
        for i in range(count):
            t0 = clock()
            await rt.ledger.append(**entry_args(i))
            latencies.append(clock() - t0)
        elapsed = clock() - started
    latencies.sort()
    return percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.99) * 1e3, count / elapsed


async def build_ledger(state: Path, entries: int, batch: int = 500) -> float:
    """Build an `entries`-long ledger with NORMAL durability; returns seconds taken."""
    started = time.perf_counter()
    clock = SystemClock()
    async with open_runtime(state, config=config("NORMAL")) as rt:
        done = 0
        while done < entries:
            n = min(batch, entries - done)
            ts = rfc3339(clock.now())

            def unit(tx: Tx, first: int = done, n: int = n, ts: str = ts) -> None:
                for i in range(first, first + n):
                    append_entry(tx, ts=ts, **entry_args(i))

            await rt.store.write(unit)
            done += n
            if done % 1000 == 0:
                await rt.ledger.checkpoint()
    return time.perf_counter() - started


async def checkpoint_costs(state: Path, bound: int, rounds: int) -> tuple[float, float, float]:
    """(p50 wall ms, p50 CPU ms, p50 start-check ms) of signing a checkpoint after `bound` new
    entries (FULL): what each checkpoint costs the call that triggers it, and the check of a
    ledger of `bound * rounds` entries against its newest checkpoint that a server makes at
    start."""
    clock = SystemClock()
    wall: list[float] = []
    cpu: list[float] = []
    async with open_runtime(state, config=config("FULL")) as rt:
        for r in range(rounds):
            ts = rfc3339(clock.now())

            def unit(tx: Tx, first: int = r * bound, ts: str = ts) -> None:
                for i in range(first, first + bound):
                    append_entry(tx, ts=ts, **entry_args(i))

            await rt.store.write(unit)
            w0, c0 = time.perf_counter(), time.process_time()
            await rt.ledger.checkpoint()
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    async with open_runtime(state, config=config("FULL"), checkpoint_on_close=False) as rt:
        w0 = time.perf_counter()
        await rt.ledger.check()
        start_check = time.perf_counter() - w0
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3, start_check * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="append runs per durability")
    parser.add_argument("--appends", type=int, default=2000, help="appends per run")
    parser.add_argument("--entries", type=int, default=100_000, help="entries to verify")
    parser.add_argument("--verify-runs", type=int, default=5, help="timed verifications")
    parser.add_argument(
        "--bounds",
        type=int,
        nargs="*",
        default=[10, 100, 250, 1000],
        help="checkpoint every N entries: what each costs (issue 13: the window no checkpoint"
        " covers)",
    )
    parser.add_argument("--bound-rounds", type=int, default=40, help="checkpoints per bound")
    args = parser.parse_args(argv)

    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cpus, {platform.machine()}"
    )
    print()
    print(f"appends: {args.runs} runs x {args.appends:,} appends, fresh state each run; medians")
    print(f"{'durability':<12}{'p50 ms':>10}{'p99 ms':>10}{'appends/s':>12}")
    with tempfile.TemporaryDirectory(prefix="phasegate-bench-") as tmp:
        root = Path(tmp)
        for durability in ("FULL", "NORMAL"):
            runs = [
                asyncio.run(append_run(root / f"{durability}-{r}", durability, args.appends))
                for r in range(args.runs)
            ]
            p50 = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            rate = statistics.median(r[2] for r in runs)
            print(f"{durability:<12}{p50:>10.3f}{p99:>10.3f}{rate:>12,.0f}")

        state = root / "verify"
        built = asyncio.run(build_ledger(state, args.entries))
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(args.verify_runs):
            w0, c0 = time.perf_counter(), time.process_time()
            report = verify_state(state)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        assert report.entries == args.entries
        n = args.entries
        print()
        print(
            f"verify: {n:,} entries, {report.checkpoints} checkpoints "
            f"(built in {built:.1f} s with NORMAL); {args.verify_runs} runs"
        )
        print(f"{'':<8}{'wall s':>9}{'entries/s':>12}{'cpu s':>9}{'entries/cpu-s':>15}")
        for label, pick in (("median", statistics.median), ("best", min)):
            w, c = pick(wall), pick(cpu)
            print(f"{label:<8}{w:>9.3f}{n / w:>12,.0f}{c:>9.3f}{n / c:>15,.0f}")
        rate = n / statistics.median(wall)
        verdict = "meets" if rate >= VERIFY_TARGET else "BELOW"
        print(f"target {VERIFY_TARGET:,} entries/s: {verdict} (median wall time)")
        if args.bounds:
            print()
            print(
                f"checkpoints: one signed after every N new entries (FULL), {args.bound_rounds}"
                " per bound; what it costs the call that triggers it, per entry, and the"
                " start-up check of the ledger so built"
            )
            print(f"{'N':>6}{'p50 ms':>9}{'cpu ms':>9}{'per entry µs':>14}{'start check ms':>16}")
            for bound in args.bounds:
                wall_ms, cpu_ms, check_ms = asyncio.run(
                    checkpoint_costs(root / f"cp-{bound}", bound, args.bound_rounds)
                )
                print(
                    f"{bound:>6}{wall_ms:>9.3f}{cpu_ms:>9.3f}{wall_ms / bound * 1e3:>14.1f}"
                    f"{check_ms:>16.1f}"
                )
        print(f"load average during the run: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
