"""`phasegate approvals`, `approve|reject`, `exception grant|list|revoke` and `policy check`:
what a supervisor types and reads (80 columns, --json on reads, one-line refusals), over a
state an agent's enforcer is using at the same time."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from policy_kit import ALICE, PolicyWorld, lines, policy_world, refusal

from server.cli import EXIT_FAULT, EXIT_OK, EXIT_UNREADABLE, main

REPO = Path(__file__).resolve().parents[2]


async def cli(
    capsys: pytest.CaptureFixture[str], w: PolicyWorld, *argv: str
) -> tuple[int, str, str]:
    """`phasegate ARGV --state-dir S --config F`, in a thread (it runs its own event loop)."""
    full = [*argv, "--state-dir", str(w.state), "--config", str(w.config)]
    code = await asyncio.to_thread(main, full)
    out, err = capsys.readouterr()
    if "--json" not in argv:
        for line in out.splitlines():
            assert len(line) <= 80, line
    return code, out, err


async def pending(w: PolicyWorld) -> tuple[str, str]:
    draft = await w.draft({"a.md": lines(80)})
    err = await refusal(w.e.modules.draft_promote(ALICE, draft))
    return draft, err.details["approval"]["id"]


def now() -> datetime:
    return datetime.now(UTC)  # the CLI runs on the system clock


async def test_the_queue_then_approve_then_the_same_promotion_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with policy_world(tmp_path, start=now()) as w:
        draft, approval = await pending(w)
        code, out, _ = await cli(capsys, w, "approvals")
        assert code == EXIT_OK
        head, row, detail = out.splitlines()[:3]
        assert head.split()[:3] == ["ID", "STATE", "RISK"]
        assert row.split()[:5] == [approval, "PENDING", "MEDIUM", "1f", "+80"]
        assert f"draft {draft} of skills, task T1" in detail
        code, out, _ = await cli(capsys, w, "approvals", "--json")
        assert [a["id"] for a in json.loads(out)] == [approval]
        code, out, _ = await cli(
            capsys, w, "approve", approval, "--note", "read the diff", "--actor", "carol"
        )
        assert code == EXIT_OK
        assert out.strip() == f"{approval}: APPROVED by carol (MEDIUM, {draft}, 1 file(s) +80 -0)"
        promoted = await w.e.modules.draft_promote(ALICE, draft)
        assert promoted["approval"] == approval and promoted["version"] == 2
        code, out, _ = await cli(capsys, w, "approvals")
        assert "EXECUTED" in out and "approved by carol; promoted as v2: read the diff" in out


async def test_self_approval_and_deciding_twice_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with policy_world(tmp_path, start=now()) as w:
        _, approval = await pending(w)
        code, out, err = await cli(
            capsys, w, "approve", approval, "--note", "x", "--actor", "alice"
        )
        assert code == EXIT_FAULT and out == ""
        assert err.splitlines()[0] == f"error: alice requested {approval} and may not approve it"
        code, out, _ = await cli(capsys, w, "reject", approval, "--note", "no", "--actor", "root")
        assert code == EXIT_OK and f"{approval}: REJECTED by root" in out
        code, _, err = await cli(
            capsys, w, "approve", approval, "--note", "x", "--actor", "root", "--json"
        )
        assert code == EXIT_FAULT and json.loads(err)["error"]["code"] == "CONFLICT"
        code, _, err = await cli(capsys, w, "approve", "nope-r9", "--note", "x")
        assert code == EXIT_FAULT and "no approval request 'nope-r9'" in err


async def test_exceptions_grant_list_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with policy_world(tmp_path, start=now()) as w:
        code, out, _ = await cli(
            capsys,
            w,
            "exception",
            "grant",
            "skills",
            "install_windows",
            "--until",
            "+2h",
            "--reason",
            "INC-42 hotfix",
            "--actor",
            "root",
        )
        assert code == EXIT_OK and out.startswith("X1: install_windows lifted for skills until")
        code, out, _ = await cli(capsys, w, "exception", "list")
        first, second = out.splitlines()
        assert first.split()[:4] == ["X1", "ACTIVE", "skills", "install_windows"]
        assert second.strip() == "INC-42 hotfix (granted by root)"
        code, out, _ = await cli(capsys, w, "exception", "revoke", "X1", "--reason", "shipped")
        assert code == EXIT_OK and out.startswith("X1: REVOKED by")
        code, out, _ = await cli(capsys, w, "exception", "list", "--all", "--json")
        assert [x["status"] for x in json.loads(out)] == ["REVOKED"]
        code, _, err = await cli(
            capsys, w, "exception", "grant", "skills", "typo_rule", "--until", "1h", "--reason", "x"
        )
        assert code == EXIT_UNREADABLE and "install_windows" in err  # the hint lists the rules


async def test_policy_check_says_what_promotion_would_meet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with policy_world(tmp_path, start=now()) as w:
        draft = await w.draft({"a.md": lines(80)})
        code, out, _ = await cli(capsys, w, "policy", "check", draft)
        assert code == EXIT_OK
        text = out.splitlines()
        assert text[0] == f"{draft} (VALIDATED): needs_approval"
        assert "risk MEDIUM (raised by medium_changed_lines)" in out
        assert f"approval: {draft}-r1 would open" in out and "install now: allow" in out
        assert "today: skills 0/20, alice 0/20" in out
        code, out, _ = await cli(capsys, w, "policy", "check", draft, "--json")
        check: dict[str, Any] = json.loads(out)
        assert check["decision"] == "needs_approval" and check["risk"] == "MEDIUM"
        assert await w.ledger("promotion.requested") == []  # a dry run records nothing


@pytest.mark.parametrize(
    "argv",
    [
        ["approvals"],
        ["approve", "x-r1", "--note", "n"],
        ["reject", "x-r1", "--note", "n"],
        ["exception", "list"],
        ["exception", "grant", "m", "approval", "--until", "1h", "--reason", "r"],
        ["exception", "revoke", "X1", "--reason", "r"],
        ["policy", "check", "m-d1"],
    ],
)
def test_every_policy_command_refuses_a_directory_without_state(
    tmp_path: Path, argv: list[str]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", *argv, "--state-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == EXIT_UNREADABLE, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("error: no phasegate state in")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "none").exists()


async def test_the_freeze_stops_approvals_and_grants_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with policy_world(tmp_path, start=now()) as w:
        _, approval = await pending(w)
        code, _, _ = await cli(capsys, w, "freeze", "--reason", "incident")
        assert code == EXIT_OK
        for argv in (
            ["approve", approval, "--note", "ok", "--actor", "root"],
            ["exception", "grant", "skills", "approval", "--until", "1h", "--reason", "r"],
        ):
            code, _, err = await cli(capsys, w, *argv, "--json")
            assert code == EXIT_FAULT and json.loads(err)["error"]["code"] == "FROZEN", argv
        assert (await w.e.approvals.show(approval))["status"] == "PENDING"
        code, out, _ = await cli(capsys, w, "approvals")  # reading still works
        assert code == EXIT_OK and "PENDING" in out
