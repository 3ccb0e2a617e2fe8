"""Helpers for the ledger tests: building real ledgers, changing their SQLite files underneath
the application the way an attacker with file access would, and driving child processes.

Nothing of phasegate is replaced. Tampering goes through a separate ``sqlite3`` connection that
first drops the append-only triggers; hashes are recomputed here with ``hashlib`` (not with
``enforcer.merkle``), so the tests do not trust the code they check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from enforcer.config import Config, StoreConfig
from enforcer.ledger import canonical
from enforcer.runtime import open_runtime

WORKER = Path(__file__).with_name("ledger_worker.py")
GENESIS = "0" * 64


def leaf_hex(raw: bytes) -> str:
    """RFC 6962 leaf hash, computed independently of enforcer.ledger.merkle."""
    return hashlib.sha256(b"\x00" + raw).hexdigest()


def config(durability: str = "FULL") -> Config:
    return Config(store=StoreConfig(durability="FULL" if durability == "FULL" else "NORMAL"))


async def build_ledger(state_dir: Path, count: int, checkpoint_at: tuple[int, ...] = ()) -> None:
    """Append `count` entries, signing a checkpoint after each size in `checkpoint_at`; closing
    the runtime signs the final checkpoint at `count`."""
    async with open_runtime(state_dir, config=config()) as rt:
        for i in range(count):
            await rt.ledger.append(
                actor="alice" if i % 2 else "bob",
                type="task.started" if i == 0 else "evidence.recorded",
                subject={"task": "T1", "phase": "IMPLEMENT"},
                data={
                    "n": i,
                    "note": f"entry {i}",
                    "sha256": hashlib.sha256(b"%d" % i).hexdigest(),
                },
                refs={"trace_id": f"{i:032x}"},
            )
            if i + 1 in checkpoint_at:
                await rt.ledger.checkpoint()


@contextlib.contextmanager
def tampering(state_dir: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the state's database with the append-only triggers dropped,
    as an attacker with write access to the file would have it. Changes commit on exit."""
    conn = sqlite3.connect(state_dir / "phasegate.db", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DROP TRIGGER ledger_no_update")
        conn.execute("DROP TRIGGER ledger_no_delete")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def rows(state_dir: Path) -> list[tuple[int, str, str, bytes]]:
    """Every ledger row (seq, prev, leaf_hash, entry), read through a separate connection."""
    conn = sqlite3.connect(state_dir / "phasegate.db")
    try:
        return conn.execute(
            "SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


def entry(conn: sqlite3.Connection, seq: int) -> bytes:
    row = conn.execute("SELECT entry FROM ledger WHERE seq = ?", (seq,)).fetchone()
    assert row is not None
    return bytes(row[0])


def rechain(
    conn: sqlite3.Connection,
    start: int,
    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    encoder: Callable[[dict[str, Any]], bytes] = canonical.encode,
) -> None:
    """Rewrite every entry from `start` on with consistent hashes: `edit` changes the fields of
    the entry at `start`, `encoder` produces its bytes; each later entry gets the new ``prev``
    (in the JSON and in the column) and is re-encoded canonically, and every leaf hash is
    recomputed. The result is a chain that links perfectly, as a careful attacker would leave
    it."""
    head = conn.execute("SELECT leaf_hash FROM ledger WHERE seq = ?", (start - 1,)).fetchone()
    prev = GENESIS if head is None else str(head[0])
    later = conn.execute(
        "SELECT seq, entry FROM ledger WHERE seq >= ? ORDER BY seq", (start,)
    ).fetchall()
    for seq, raw in later:
        fields = json.loads(raw)
        fields["prev"] = prev
        if seq == start and edit is not None:
            fields = edit(fields)
        new_raw = encoder(fields) if seq == start else canonical.encode(fields)
        leaf = leaf_hex(new_raw)
        conn.execute(
            "UPDATE ledger SET entry = ?, prev = ?, leaf_hash = ? WHERE seq = ?",
            (new_raw, prev, leaf, seq),
        )
        prev = leaf


def child_env() -> dict[str, str]:
    """The environment for child processes, without any PHASEGATE_* setting of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}


class Child:
    """A real child process whose stdout lines are collected by a thread, so every wait on it
    is bounded by a deadline instead of blocking on a pipe."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = 30.0) -> str | None:
        """The next stdout line; None at end of output. Raises queue.Empty after `timeout`."""
        return self._lines.get(timeout=timeout)

    def release(self) -> None:
        """Send the go line the child waits for after printing ``ready``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.proc.stdin.close()

    def rest(self, timeout: float = 60.0) -> list[str]:
        """Every remaining line until the output ends (bounded by `timeout` in total)."""
        deadline = time.monotonic() + timeout
        out: list[str] = []
        while (line := self.line(max(0.01, deadline - time.monotonic()))) is not None:
            out.append(line)
        self._reader.join(timeout=max(0.01, deadline - time.monotonic()))
        return out

    def finish(self, timeout: float = 60.0) -> tuple[list[str], int, str]:
        """Every remaining line, the exit code and stderr, once the child has ended."""
        lines = self.rest(timeout)
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.close()
        return lines, code, err

    def close(self) -> None:
        """Kill the child if it still runs and close every pipe (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Collects the children a test starts and ends them all when it finishes, pass or fail."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.close()


def worker(state_dir: Path, actor: str, count: int, cwd: Path, peer: str | None = None) -> Child:
    """Start ledger_worker.py: it opens the runtime, prints ``ready``, waits for ``go``, then
    appends `count` entries (0: until killed) printing each committed seq; with `peer`, it
    waits after its first entry until `peer` has written one too."""
    extra = [] if peer is None else [peer]
    return Child([sys.executable, str(WORKER), str(state_dir), actor, str(count), *extra], cwd)


def python(code: str, *args: str, cwd: Path) -> Child:
    return Child([sys.executable, "-c", code, *args], cwd)
