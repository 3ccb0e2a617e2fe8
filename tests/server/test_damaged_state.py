"""State damaged the ways a real incident does it, and what a user sees: one useful line and no
traceback for a database that cannot be opened; a missing controls table fails closed with a
hint that does not point at a command that would fail too; and task_status during a freeze lists
only the tools that still work."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from server_kit import REPO, cli, ok, refusal, serve_args, stdio_session, write_toml

INITIALIZE = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}\n'
)


@pytest.mark.parametrize("damage", ["garbage", "a directory", "cut short"])
def test_a_database_that_cannot_be_opened_is_one_line_at_start_and_no_traceback(
    state_dir: Path, sample_project: Path, damage: str
) -> None:
    write_toml(state_dir, sample_project)
    db = state_dir / "phasegate.db"
    if damage == "garbage":
        db.write_bytes(b"not a database, just bytes\n" * 400)
    elif damage == "a directory":
        db.mkdir()
    else:
        cli("demo", "--state-dir", str(state_dir))
        data = db.read_bytes()
        (state_dir / "phasegate.db-wal").unlink(missing_ok=True)
        db.write_bytes(data[:100] + b"\xff" * 200 + data[300:1024])
    done = subprocess.run(
        [sys.executable, *serve_args(state_dir, "alice")],
        cwd=REPO,
        input=INITIALIZE,
        capture_output=True,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(db) in errors[0], err
    assert "restore the state directory from a backup" in err


def drop_controls(state_dir: Path) -> None:
    conn = sqlite3.connect(state_dir / "phasegate.db", isolation_level=None)
    try:
        conn.execute("DROP TABLE controls")
    finally:
        conn.close()


async def test_a_missing_controls_table_fails_closed_and_names_what_a_supervisor_must_do(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        ok(await s.call_tool("task_start", {"title": "controls", "task": "T1"}))
    drop_controls(state_dir)
    async with stdio_session(state_dir) as s:
        controls = ok(await s.call_tool("controls_status", {}))
        assert controls["frozen"] is True and controls["promotions_paused"] is True
        assert controls["readable"] is False
        assert "no such table: controls" in controls["freeze"]["reason"]
        error = refusal(await s.call_tool("lease_release", {"task": "T1"}), "FROZEN")
        assert error["details"]["cause"] == "controls"
        assert "cannot help" in error["hint"] and "restores the state directory" in error["hint"]
        status = ok(await s.call_tool("task_status", {"task": "T1"}))
        assert "lease_release" not in status["tools_allowed"]
        assert "task_status" in status["tools_allowed"]


async def test_task_status_during_a_freeze_lists_only_the_tools_that_still_work(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        ok(await s.call_tool("task_start", {"title": "frozen", "task": "T1"}))
        before = ok(await s.call_tool("task_status", {"task": "T1"}))
        assert "evidence_put" in before["tools_allowed"]
        cli("freeze", "--reason", "incident 42", "--state-dir", str(state_dir))
        during = ok(await s.call_tool("task_status", {"task": "T1"}))
        mutating = {"evidence_put", "phase_advance", "phase_backtrack", "prompt_attest"}
        assert not mutating & set(during["tools_allowed"])
        assert {"task_status", "evidence_list", "controls_status"} <= set(during["tools_allowed"])
        assert any("frozen" in hint for hint in during["hints"])
        cli("unfreeze", "--reason", "over", "--state-dir", str(state_dir))
        after = ok(await s.call_tool("task_status", {"task": "T1"}))
        assert after["tools_allowed"] == before["tools_allowed"]
