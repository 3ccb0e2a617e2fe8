"""Child process for the multi-process ledger tests (run as a script, never imported by pytest).

    python ledger_worker.py STATE_DIR ACTOR COUNT

Opens the runtime on STATE_DIR (creating the key and database if this is the first process),
prints ``ready``, waits for one line on stdin (the parent releases every child at once), then
appends COUNT entries as ACTOR, printing each seq after its append has returned, i.e. after the
commit. COUNT 0 means: keep appending until killed (at most a million entries).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from enforcer.config import Config
from enforcer.runtime import open_runtime


async def main(state_dir: Path, actor: str, count: int) -> None:
    async with open_runtime(state_dir, config=Config()) as rt:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count or 1_000_000):
            entry = await rt.ledger.append(
                actor=actor, type="task.started", subject={"task": "T1"}, data={"i": i}
            )
            print(entry.seq, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
