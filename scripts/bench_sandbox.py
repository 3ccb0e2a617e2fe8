"""Sandbox overhead: a trivial validator run bare (an asyncio subprocess) and through
`run_sandboxed`, at every isolation level that works on this host.

    python scripts/bench_sandbox.py              # 20 runs of each
    python scripts/bench_sandbox.py --runs 50 --files 200

Each sandboxed run includes everything a validation pays: copying the module tree (``--files``
small files), the isolating command, the launcher that sets the limits (a Python started with
``-I -S``), reading the output and removing the copy. Medians are printed in milliseconds, with
the overhead over the bare run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from enforcer.modules.sandbox import LEVELS, isolation_works, run_sandboxed

VALIDATORS = {"python -c pass": [sys.executable, "-c", "pass"], "true": ["true"]}


async def bare(argv: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await proc.communicate()
    assert proc.returncode == 0


async def median_ms(runs: int, once: Callable[[], Awaitable[None]]) -> float:
    await once()  # warm-up: probes, page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main(runs: int, files: int) -> None:
    levels = [level for level in LEVELS if await isolation_works(level)]
    who = "root" if os.geteuid() == 0 else "not root"
    print(f"sandbox overhead, median of {runs} runs ({who}; levels here: {', '.join(levels)})")
    with tempfile.TemporaryDirectory(prefix="phasegate-bench-") as tmp:
        tree = Path(tmp)
        for i in range(files):
            (tree / f"file{i}.txt").write_text("x" * 1000)
        for name, argv in VALIDATORS.items():
            base = await median_ms(runs, functools.partial(bare, argv))
            cells = [f"bare {base:6.1f} ms"]
            for level in levels:

                async def sandboxed(argv: list[str] = argv, level: str = level) -> None:
                    report = await run_sandboxed(argv, tree, isolation=level)
                    assert report.passed, report

                ms = await median_ms(runs, sandboxed)
                cells.append(f"{level} {ms:6.1f} ms (overhead {ms - base:+6.1f})")
            print(f"  {name:15} " + "   ".join(cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each (default 20)")
    parser.add_argument("--files", type=int, default=20, help="files in the module tree")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.files))
