"""The policy as an agent meets it over MCP, on a real stdio server the supervisor works
beside: APPROVAL_REQUIRED, the CLI's approval, and the same draft_promote going through; a
typo in phasegate.toml while the server runs (refused naming the key, the old policy kept);
install windows and the rollback window over the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from module_kit import MODULE, register
from server_kit import cli, ledger_rows, ok, refusal, stdio_session

from enforcer.phases import ORDER, Phase

GATES = "".join(f"[gates.{p.value}]\nartifacts = []\n" for p in ORDER if p is not Phase.DONE)


def big(n: int) -> str:
    return "# Big\n" + "".join(f"line {i}\n" for i in range(n - 1))


async def setup(tmp_path: Path, policy: str) -> tuple[Path, Path]:
    state = tmp_path / "state"
    state.mkdir()
    config = state / "phasegate.toml"  # the server finds it there
    config.write_text(GATES + policy)
    await register(state, tmp_path)
    return state, config


async def call(s: Any, name: str, **arguments: Any) -> Any:
    return await s.call_tool(name, arguments)


async def to_phase(s: Any, task: str, phase: Phase) -> None:
    while ok(await call(s, "task_status", task=task))["phase"] != phase.value:
        ok(await call(s, "phase_advance", task=task))


async def validated_draft(s: Any, files: dict[str, str]) -> str:
    ok(await call(s, "task_start", title="change the skills", task="T1"))
    await to_phase(s, "T1", Phase.IMPLEMENT)
    draft = ok(await call(s, "draft_create", task="T1", module=MODULE))["draft"]
    for path, content in files.items():
        ok(await call(s, "draft_write", draft=draft, path=path, content=content))
    assert ok(await call(s, "draft_validate", draft=draft))["state"] == "VALIDATED"
    return str(draft)


async def test_medium_waits_for_the_cli_then_the_same_promote_call_goes_through(
    tmp_path: Path,
) -> None:
    state, _ = await setup(tmp_path, "")
    async with stdio_session(state, "alice") as s:
        draft = await validated_draft(s, {"big.md": big(80)})
        await to_phase(s, "T1", Phase.PR)
        check = ok(await call(s, "policy_check", draft=draft))
        assert check["decision"] == "needs_approval" and check["risk"] == "MEDIUM"
        error = refusal(await call(s, "draft_promote", draft=draft), "APPROVAL_REQUIRED")
        approval = error["details"]["approval"]
        assert approval["id"] == check["approval"]["id"] == f"{draft}-r1"
        assert "phasegate approve" in error["hint"]
        shown = ok(await call(s, "draft_show", draft=draft))
        assert shown["approval"]["status"] == "PENDING"
        queue = cli("approvals", "--state-dir", str(state))
        assert approval["id"] in queue.stdout and "PENDING" in queue.stdout
        done = cli(
            "approve",
            approval["id"],
            "--note",
            "looks right",
            "--state-dir",
            str(state),
            "--actor",
            "carol",
        )
        assert f"{approval['id']}: APPROVED by carol" in done.stdout
        assert ok(await call(s, "draft_show", draft=draft))["approval"]["status"] == "APPROVED"
        promoted = ok(await call(s, "draft_promote", draft=draft))
        assert promoted["version"] == 2 and promoted["approval"] == approval["id"]
    rows = ledger_rows(state)
    types = [r["type"] for r in rows]
    assert types.count("promotion.requested") == 1  # no second request
    assert types.count("approval.approved") == 1 and types.count("promotion.promoted") == 1
    approved = next(r for r in rows if r["type"] == "approval.approved")
    assert approved["actor"] == "carol" and approved["data"]["note"] == "looks right"


async def test_a_typo_while_serving_is_refused_by_key_and_the_old_policy_stays(
    tmp_path: Path,
) -> None:
    state, config = await setup(tmp_path, '[policy.modules.skills]\nlocked_paths = ["SKILL.md"]\n')
    log = tmp_path / "server.log"
    async with stdio_session(state, "alice", log=log) as s:
        draft = await validated_draft(s, {"notes.md": "# Notes\n"})
        first = refusal(
            await call(s, "draft_write", draft=draft, path="SKILL.md", content="# x\n"),
            "POLICY_DENIED",
        )
        in_force = first["details"]["policy_set_hash"]
        config.write_text(GATES + '[policy.modules.skills]\nlokced_paths = ["SKILL.md"]\n')
        again = refusal(
            await call(s, "draft_write", draft=draft, path="SKILL.md", content="# x\n"),
            "POLICY_DENIED",
        )
        assert again["details"]["policy_set_hash"] == in_force
        fault = again["details"]["policy_file_error"]
        assert fault["keys"] == ["policy.modules.skills.lokced_paths"]
        check = ok(await call(s, "policy_check", draft=draft))
        assert check["details"]["policy_file_error"]["keys"] == fault["keys"]
        assert check["policy_set_hash"] == in_force
        failed = [r for r in ledger_rows(state) if r["type"] == "policy.reload_failed"]
        assert [r["data"]["keys"] for r in failed] == [["policy.modules.skills.lokced_paths"]]
        config.write_text(GATES)  # fixed: no lock at all now
        ok(await call(s, "draft_write", draft=draft, path="SKILL.md", content="# free\n"))
    assert "lokced_paths" in log.read_text() and "stays in force" in log.read_text()
    changed = [r for r in ledger_rows(state) if r["type"] == "policy.changed"]
    assert changed[-1]["data"]["previous"] == in_force


async def test_install_windows_and_the_rollback_window_over_the_wire(tmp_path: Path) -> None:
    closed_day = (datetime.now(UTC) + timedelta(days=2)).strftime("%a")
    policy = (
        "[policy]\nrollback_window_s = { LOW = 0, MEDIUM = 0, HIGH = 0 }\n"
        f'[policy.modules.skills]\ninstall_windows = ["{closed_day} 10:00-11:00"]\n'
    )
    state, config = await setup(tmp_path, policy)
    async with stdio_session(state, "alice") as s:
        draft = await validated_draft(s, {"notes.md": "# Notes\n"})
        await to_phase(s, "T1", Phase.PR)
        version = ok(await call(s, "draft_promote", draft=draft))["version"]
        shut = refusal(
            await call(s, "module_install", task="T1", module=MODULE, version=version),
            "POLICY_DENIED",
        )
        assert shut["details"]["rules"] == ["install_windows"]
        assert shut["details"]["next_window"][11:16] == "10:00"
        assert shut["details"]["next_window"] in shut["hint"]
        grant = cli(
            "exception",
            "grant",
            MODULE,
            "install_windows",
            "--until",
            "+1h",
            "--reason",
            "hotfix",
            "--state-dir",
            str(state),
        )
        assert grant.stdout.startswith("X1:")
        installed = ok(await call(s, "module_install", task="T1", module=MODULE, version=version))
        assert [x["id"] for x in installed["exceptions"]] == ["X1"]
        await to_phase(s, "T1", Phase.MONITOR)
        late = refusal(
            await call(s, "module_rollback", task="T1", module=MODULE, reason="smoke failed"),
            "FORBIDDEN",
        )
        assert "only an admin" in late["message"] and late["details"]["rules"] == [
            "rollback_window_s"
        ]
    back = cli("module", "rollback", MODULE, "--reason", "supervisor", "--state-dir", str(state))
    assert "rolled back to v1" in back.stdout
