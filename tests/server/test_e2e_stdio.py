"""End to end over real stdio subprocesses (`python -m server.cli serve`), spoken to with the MCP
SDK's ClientSession: a whole task from STRATEGIZE to DONE, and two agents (two server
processes) sharing one state directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server_kit import (
    ARTIFACTS,
    files_under,
    ledger_rows,
    ledger_types,
    ok,
    put_artifact,
    refusal,
    stdio_session,
    write_toml,
)

from enforcer.phases import ORDER, Phase


async def test_one_task_goes_from_strategize_to_done_and_the_ledger_verifies_offline(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir, "alice") as s:
        status = ok(await s.call_tool("task_start", {"title": "cover negatives", "task": "E2E-1"}))
        assert status["phase"] == "STRATEGIZE"
        assert status["lease"]["holder"].startswith("alice/")
        for phase in ORDER[:-1]:
            status = ok(await s.call_tool("task_status", {"task": "E2E-1"}))
            assert status["phase"] == phase.value
            assert status["gate"]["passed"] is False
            await put_artifact(s, "E2E-1", phase)
            status = ok(await s.call_tool("task_status", {"task": "E2E-1"}))
            assert status["gate"]["passed"] is True, status["gate"]
            status = ok(await s.call_tool("phase_advance", {"task": "E2E-1"}))
            assert status["phase"] == phase.next
        assert status["phase"] == "DONE"
        assert status["next_phase"] is None

        listed = ok(await s.call_tool("evidence_list", {"task": "E2E-1"}))["evidence"]
        by_name = {r["name"]: r for r in listed}
        assert set(by_name) == {n for n, _ in ARTIFACTS.values()} | {
            "test_results.json",
            "build_output.log",
        }
        assert all(r["valid"] for r in listed)
        assert by_name["test_results.json"]["producer"] == "server"
        assert by_name["test_results.json"]["subject_sha256"] == by_name["git_diff.patch"]["sha256"]
        results = ok(
            await s.call_tool(
                "evidence_read", {"task": "E2E-1", "phase": "VERIFY", "name": "test_results.json"}
            )
        )
        counts = json.loads(results["content"])
        assert counts["passed"] == 2 and counts["failed"] == 0 and counts["exit_code"] == 0
        assert ok(await s.call_tool("ledger_verify", {}))["ok"] is True
    # `phasegate serve` spoke over the event loop's own pipes, not the SDK's threads.
    log = (state_dir.parent / "server-alice.log").read_text()
    assert "serving on the event loop's pipes" in log, log

    advanced = [e for e in ledger_rows(state_dir) if e["type"] == "phase.advanced"]
    assert [(e["data"]["from"], e["data"]["to"]) for e in advanced] == [
        (a.value, b.value) for a, b in zip(ORDER, ORDER[1:], strict=False)
    ]
    on_disk = files_under(state_dir / "evidence" / "E2E-1")
    for phase, (name, _) in ARTIFACTS.items():
        assert f"{phase.value}/{name}" in on_disk
    assert {"VERIFY/test_results.json", "VERIFY/build_output.log"} <= on_disk

    # The installed console script, exactly as a supervisor runs it.
    phasegate = Path(sys.executable).with_name("phasegate")
    done = subprocess.run(
        [str(phasegate), "ledger", "verify", "--state-dir", str(state_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["entries"] == len(ledger_rows(state_dir))


async def test_a_second_agent_process_is_refused_with_lease_held_naming_the_holder(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir, "alice") as alice, stdio_session(state_dir, "bob") as bob:
        started = ok(await alice.call_tool("task_start", {"title": "shared", "task": "T-shared"}))
        lease = started["lease"]
        assert lease["holder"].startswith("alice/")

        name, content = ARTIFACTS[Phase.STRATEGIZE]
        put = {"task": "T-shared", "name": name, "content": content}
        error = refusal(await bob.call_tool("evidence_put", put), "LEASE_HELD")
        assert error["details"]["holder"] == lease["holder"]
        assert error["details"]["expires_at"] == lease["expires_at"]
        assert error["details"]["phase"] == "STRATEGIZE"
        refusal(await bob.call_tool("phase_advance", {"task": "T-shared"}), "LEASE_HELD")
        refusal(await bob.call_tool("lease_acquire", {"task": "T-shared"}), "LEASE_HELD")

        # Bob can still look; nothing of his was recorded.
        seen = ok(await bob.call_tool("task_status", {"task": "T-shared"}))
        assert seen["lease"]["holder"] == lease["holder"]
        assert not (state_dir / "evidence" / "T-shared" / "STRATEGIZE").exists()
        contended = [e for e in ledger_rows(state_dir) if e["type"] == "lease.contended"]
        assert contended and all(e["actor"] == "bob" for e in contended)

        # Releasing hands the task over: bob's next write takes the free lease implicitly.
        ok(await alice.call_tool("lease_release", {"task": "T-shared"}))
        assert ok(await bob.call_tool("evidence_put", put))["valid"] is True
        error = refusal(await alice.call_tool("evidence_put", put), "LEASE_HELD")
        assert error["details"]["holder"].startswith("bob/")


async def test_an_agent_takes_over_at_once_when_the_lease_holders_process_is_gone(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir, "alice") as alice:
        ok(await alice.call_tool("task_start", {"title": "abandoned", "task": "T-gone"}))
    # alice's server process has exited; its lease (ttl 300 s) is still unexpired.
    async with stdio_session(state_dir, "bob") as bob:
        rec = await put_artifact(bob, "T-gone", Phase.STRATEGIZE)
        assert rec["valid"] is True
        status = ok(await bob.call_tool("task_status", {"task": "T-gone"}))
        assert status["lease"]["holder"].startswith("bob/")
        assert status["lease"]["fencing_token"] == 2
    grants = [e for e in ledger_rows(state_dir) if e["type"] == "lease.acquired"]
    assert grants[-1]["actor"] == "bob"
    assert grants[-1]["data"]["takeover"] == "holder_gone"
    assert "lease.contended" not in ledger_types(state_dir)
