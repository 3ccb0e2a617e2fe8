"""A server over a ledger it can tell was truncated serves reads and refuses writes, over a real
stdio pipe: the refusal is FROZEN with the cause and the recovery in the hint, the server log
says so in one line, `ledger_verify` and `phasegate verify` name the fault, and nothing is
signed over the damaged ledger (issue 13: the server used to reuse seqs and sign a fork)."""

from __future__ import annotations

import json
from pathlib import Path

from ledger_kit import tampering
from server_kit import advance_to, cli, ledger_rows, ok, refusal, stdio_session, write_toml

from enforcer.ledger import checkpoint
from enforcer.phases import Phase


async def test_a_truncated_ledger_is_served_read_only_until_a_supervisor_restores_it(
    state_dir: Path, sample_project: Path, tmp_path: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        ok(await s.call_tool("task_start", {"title": "before", "task": "T1"}))
        await advance_to(s, "T1", Phase.THINK)
    signed = checkpoint.newest_size(state_dir / "checkpoints")
    assert signed == len(ledger_rows(state_dir))
    with tampering(state_dir) as conn:  # the tail is lost, as a truncated WAL loses it
        conn.execute("DELETE FROM ledger WHERE seq >= ?", (signed - 3,))

    log = tmp_path / "after.log"
    async with stdio_session(state_dir, log=log) as s:
        status = ok(await s.call_tool("task_status", {"task": "T1"}))
        assert status["task"] == "T1"
        assert ok(await s.call_tool("ledger_tail", {"limit": 3}))["entries"]
        verified = ok(await s.call_tool("ledger_verify", {}))
        assert verified["ok"] is False and verified["fault"] == "truncated"
        for tool, arguments in (
            ("task_start", {"title": "after"}),
            ("evidence_put", {"task": "T1", "name": "plan.md", "content": "# Plan\n1. a\n2. b\n"}),
            ("phase_advance", {"task": "T1"}),
        ):
            error = refusal(await s.call_tool(tool, arguments), "FROZEN")
            assert error["details"]["cause"] == "ledger", tool
            assert error["details"]["fault"] == "truncated"
            assert "phasegate verify" in error["hint"]
    assert len(ledger_rows(state_dir)) == signed - 3  # nothing written, not even a refusal
    assert checkpoint.newest_size(state_dir / "checkpoints") == signed  # nothing signed
    text = log.read_text()
    assert "Traceback" not in text
    faults = [line for line in text.splitlines() if "CRITICAL" in line]
    assert len(faults) == 1 and "restore the state directory from a backup" in faults[0]

    done = cli("verify", "--json", "--state-dir", str(state_dir), check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout)["fault"] == "truncated"
