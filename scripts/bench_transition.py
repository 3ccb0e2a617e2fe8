"""Phase transition benchmark: the full durable latency of one `phase_advance`, FULL and NORMAL.

    python scripts/bench_transition.py                 # 5 runs x 1,000 transitions; 2,000 tasks
    python scripts/bench_transition.py --runs 3 --transitions 300 --tasks 500
    python scripts/bench_transition.py --checkpoint-every 100    # what a tighter bound costs

What one timed transition is: `Enforcer.phase_advance` SPEC -> PLAN, where SPEC's gate is
configured to need two artifacts (spec.md and notes.md), so the call does the lease check, reads
and checks both evidence records (present, current epoch, valid), checks prompt attestation for
drift, appends the ledger entry, applies it to the projection and commits — one SQLite
transaction — plus a signed checkpoint whenever the checkpoint policy says one is due.

Each iteration records both artifacts and attests the prompt (untimed), times only the advance,
then backtracks to SPEC (untimed; a backtrack raises the epoch, so the next iteration must record
fresh evidence, as an agent would). Every run uses a fresh state directory; the table reports
the median over the runs of each run's percentile. transitions/s is 1 / mean advance latency.

Sustained: that many tasks are brought to SPEC with their evidence and attestation (untimed),
then all are advanced back-to-back — by one agent, and by --agents agents at once (each its own
share), as when many agents share one server; transitions/s = tasks / elapsed, median over
the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from enforcer.config import Config, GateConfig, LedgerConfig, StoreConfig
from enforcer.model import Caller
from enforcer.phases import Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

STRATEGY = "# Problem\nThe parser is slow.\n\n# Objectives\n- parse 1 MB in 10 ms\n"
SPEC = "# Spec\n\n## Acceptance Criteria\n- parses 1 MB in 10 ms\n- no regressions\n"
NOTES = "Talked to the owner; the hot loop is in tokenize().\n"
PROMPT = "You are the implementer. Follow the plan; never skip a phase.\n"
AGENT = Caller("bench", instance="bench-1")


# --checkpoint-every sets it (the cost of a tighter bound on entries no checkpoint covers).
SETTINGS = {"checkpoint_every": LedgerConfig().checkpoint_every}


def config(durability: str) -> Config:
    return Config(
        store=StoreConfig(durability="FULL" if durability == "FULL" else "NORMAL"),
        ledger=LedgerConfig(checkpoint_every=SETTINGS["checkpoint_every"]),
        gates={"SPEC": GateConfig(artifacts=["spec.md", "notes.md"])},
    )


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def to_spec(e: Enforcer, task: str, agent: Caller = AGENT) -> None:
    await e.task_start(agent, "benchmark", task)
    await e.evidence_put(agent, task, "strategy.md", STRATEGY)
    await e.phase_advance(agent, task)


async def ready(e: Enforcer, task: str, agent: Caller = AGENT) -> None:
    """Everything SPEC's gate and the attestation check need (untimed)."""
    for name, content in (("spec.md", SPEC), ("notes.md", NOTES)):
        rec = await e.evidence_put(agent, task, name, content)
        assert rec.valid, rec.problems
    await e.prompt_attest(agent, task, PROMPT)


async def latency_run(state: Path, durability: str, count: int) -> tuple[float, ...]:
    """(p50 ms, p95 ms, p99 ms, transitions/s) of `count` timed advances."""
    latencies: list[float] = []
    async with open_runtime(state, config=config(durability)) as rt:
        e = Enforcer(rt)
        assert e.required(Phase.SPEC) == ("spec.md", "notes.md")
        await to_spec(e, "B1")
        clock = time.perf_counter
        for _ in range(count):
            await ready(e, "B1")
            t0 = clock()
            moved = await e.phase_advance(AGENT, "B1")
            latencies.append(clock() - t0)
            assert moved.task.phase is Phase.PLAN
            await e.phase_backtrack(AGENT, "B1", "SPEC", "benchmark: once more")
    latencies.sort()
    mean = statistics.fmean(latencies)
    return (
        percentile(latencies, 0.50) * 1e3,
        percentile(latencies, 0.95) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        1 / mean,
    )


async def sustained_run(state: Path, durability: str, tasks: int, agents: int) -> float:
    """Transitions/s advancing `tasks` prepared tasks: `agents` agents at once, each advancing
    its own share back-to-back (agents > 1 is a server shared by many agents; the store then
    groups their commits)."""
    crew = [Caller(f"agent{a}", instance=f"i{a}") for a in range(agents)]
    shares: list[list[str]] = [[] for _ in crew]
    for i in range(tasks):
        shares[i % agents].append(f"S{i:05d}")
    async with open_runtime(state, config=config(durability)) as rt:
        e = Enforcer(rt)
        for agent, share in zip(crew, shares, strict=True):
            for task in share:
                await to_spec(e, task, agent)
                await ready(e, task, agent)

        async def advance_all(agent: Caller, share: list[str]) -> None:
            for task in share:
                await e.phase_advance(agent, task)

        started = time.perf_counter()
        await asyncio.gather(*(advance_all(a, sh) for a, sh in zip(crew, shares, strict=True)))
        elapsed = time.perf_counter() - started
        assert all(t["phase"] == "PLAN" for t in await e.task_list())
    return tasks / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="runs per durability")
    parser.add_argument("--transitions", type=int, default=1000, help="timed advances per run")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks in the sustained run")
    parser.add_argument("--agents", type=int, default=16, help="concurrent agents, sustained")
    parser.add_argument("--dir", type=Path, default=None, help="where state dirs are made")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=SETTINGS["checkpoint_every"],
        help="sign a checkpoint every N entries (the cost of a tighter bound)",
    )
    args = parser.parse_args(argv)
    SETTINGS["checkpoint_every"] = args.checkpoint_every

    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cpus, {platform.machine()}, {platform.system()} {platform.release()}"
    )
    print(
        "timed: phase_advance SPEC -> PLAN (lease check, gate over 2 artifacts, attestation"
        " check, ledger append, projection, commit)"
    )
    print(f"a checkpoint signed every {args.checkpoint_every:,} entries")
    print()
    print(
        f"latency: {args.runs} runs x {args.transitions:,} transitions per durability,"
        " fresh state each run; medians across runs"
    )
    print(
        f"{'durability':<12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'transitions/s':>15}"
        f"{'p50 range ms':>18}"
    )
    with tempfile.TemporaryDirectory(prefix="phasegate-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        for durability in ("FULL", "NORMAL"):
            runs = [
                asyncio.run(
                    latency_run(root / f"lat-{durability}-{r}", durability, args.transitions)
                )
                for r in range(args.runs)
            ]
            p50, p95, p99, rate = (statistics.median(r[i] for r in runs) for i in range(4))
            spread = f"{min(r[0] for r in runs):.3f}-{max(r[0] for r in runs):.3f}"
            print(f"{durability:<12}{p50:>9.3f}{p95:>9.3f}{p99:>9.3f}{rate:>15,.0f}{spread:>18}")

        print()
        print(
            f"sustained: {args.tasks:,} tasks advanced back-to-back by 1 agent, then by"
            f" {args.agents} agents at once; {args.runs} runs; median (min-max)"
        )
        print(f"{'durability':<12}{'agents':>7}{'transitions/s':>15}{'range':>18}")
        for durability in ("FULL", "NORMAL"):
            for agents in (1, args.agents):
                rates = [
                    asyncio.run(
                        sustained_run(
                            root / f"sus-{durability}-{agents}-{r}", durability, args.tasks, agents
                        )
                    )
                    for r in range(args.runs)
                ]
                spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
                print(f"{durability:<12}{agents:>7}{statistics.median(rates):>15,.0f}{spread:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
