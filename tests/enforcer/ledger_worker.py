"""Child process for the multi-process ledger tests (run as a script, never imported by pytest).

    python ledger_worker.py STATE_DIR ACTOR COUNT [PEER]

Opens the runtime on STATE_DIR (creating the key and database if this is the first process),
prints ``ready``, waits for one line on stdin (the parent releases every child at once), then
appends COUNT entries as ACTOR, printing each seq after its append has returned, i.e. after the
commit. COUNT 0 means: keep appending until killed (at most a million entries). With PEER, after
its first append it waits (bounded, 60 s) until PEER has appended too, so the two writers are
certain to overlap however the scheduler and SQLite's busy back-off treat them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from enforcer.config import Config
from enforcer.runtime import Runtime, open_runtime


async def wait_for(rt: Runtime, peer: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await rt.store.read(
            lambda tx: tx.one(
                "SELECT 1 FROM ledger WHERE instr(entry, ?) > 0", (f'"actor":"{peer}"'.encode(),)
            )
        )
        if found:
            return
        await asyncio.sleep(0.005)
    raise SystemExit(f"{peer} never appended")


async def main(state_dir: Path, actor: str, count: int, peer: str | None) -> None:
    async with open_runtime(state_dir, config=Config()) as rt:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count or 1_000_000):
            entry = await rt.ledger.append(
                actor=actor, type="task.started", subject={"task": "T1"}, data={"i": i}
            )
            print(entry.seq, flush=True)
            if i == 0 and peer is not None:
                await wait_for(rt, peer)


if __name__ == "__main__":
    peer = sys.argv[4] if len(sys.argv) > 4 else None
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), peer))
