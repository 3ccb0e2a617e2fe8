"""The router's freeze check fails closed: when the controls cannot be read, every mutating call
is refused FROZEN by the router itself, before any handler runs, and nothing is written but the
record of the refusal.

The controls are made unreadable for real: the `controls` table of the server's own SQLite file
is renamed away by another connection while the server runs. The write transactions check the
freeze too, but there an unreadable table surfaces as a database error (INTERNAL) or, for a call
on no known task, the router would answer NOT_FOUND: only the router's fail-closed reading gives
FROZEN, so a router that took unreadable controls for "not frozen" fails these tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from server_kit import files_under, journal, ledger_rows, memory_client, ok, refusal

from enforcer.config import Config

MUTATING: list[tuple[str, dict[str, Any]]] = [
    ("task_start", {"title": "new", "task": "T2"}),
    ("task_start", {"title": "generated id"}),
    ("evidence_put", {"task": "T1", "name": "strategy.md", "content": "# Problem\n"}),
    ("phase_advance", {"task": "T1"}),
    ("phase_backtrack", {"task": "T1", "to": "STRATEGIZE", "reason": "why"}),
    ("prompt_attest", {"task": "T1", "prompt": "p"}),
    ("lease_acquire", {"task": "T1"}),
    ("lease_renew", {"task": "T1"}),
    ("lease_release", {"task": "T1"}),
    ("verify_run", {"task": "T1"}),
    ("evidence_put", {"task": "NOPE", "name": "x.md", "content": "- x\n"}),  # no such task
]


def _rename(db: Path, old: str, new: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        conn.close()


def _tasks(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM tasks ORDER BY task").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("tool", "arguments"), MUTATING, ids=[f"{t}-{i}" for i, (t, _) in enumerate(MUTATING)]
)
async def test_unreadable_controls_refuse_a_mutating_call_as_frozen_and_write_nothing(
    state_dir: Path, config: Config, tool: str, arguments: dict[str, Any]
) -> None:
    db = state_dir / "phasegate.db"
    async with memory_client(state_dir, config) as client:
        ok(await client.call_tool("task_start", {"title": "t", "task": "T1"}))
        seq = ledger_rows(state_dir)[-1]["seq"]
        tasks = _tasks(db)
        _rename(db, "controls", "controls_unreadable")

        error = refusal(await client.call_tool(tool, arguments), "FROZEN")
        assert error["details"] == {"cause": "controls"}  # not a freeze someone set

        # Read-only calls still work: the freeze (real or assumed) never blocks them.
        assert ok(await client.call_tool("task_status", {"task": "T1"}))["phase"] == "STRATEGIZE"
        _rename(db, "controls_unreadable", "controls")
        after = [e for e in ledger_rows(state_dir) if e["seq"] > seq]
        assert [(e["type"], e["data"]["tool"], e["data"]["code"]) for e in after] == [
            ("tool.rejected", tool, "FROZEN")
        ]
        assert _tasks(db) == tasks
        assert files_under(state_dir / "evidence" / "T1" / "STRATEGIZE") == set()
        # The refusal was the router's: journaled as refused FROZEN (on no task: the task's phase
        # could not be read either).
        line = journal(state_dir, None)[-1]
        assert (line["tool"], line["outcome"], line["code"]) == (tool, "refused", "FROZEN")

        # Readable again and not frozen: the same kind of call goes through.
        ok(await client.call_tool("task_start", {"title": "later", "task": "T3"}))


async def test_unreadable_controls_are_logged_as_the_reason_for_refusing(
    state_dir: Path, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    db = state_dir / "phasegate.db"
    async with memory_client(state_dir, config) as client:
        ok(await client.call_tool("task_start", {"title": "t", "task": "T1"}))
        _rename(db, "controls", "gone")
        with caplog.at_level("ERROR", logger="server.router"):
            result = await client.call_tool("lease_acquire", {"task": "T1"})
        _rename(db, "gone", "controls")
    refusal(result, "FROZEN")
    messages = [r.getMessage() for r in caplog.records if r.name == "server.router"]
    assert any("controls unreadable" in m and "no such table" in m for m in messages), messages
