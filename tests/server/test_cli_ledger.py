"""`phasegate ledger verify|tail|show|checkpoint`: exit codes 0 (holds), 1 (tampered) and
2 (unreadable), and the JSON they print; through `server.cli.main` and as a real subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enforcer.config import Config
from enforcer.ledger.keys import Signer
from enforcer.runtime import open_runtime
from server.cli import EXIT_FAULT, EXIT_OK, EXIT_UNREADABLE, main

COUNT = 6


def build(state: Path, count: int = COUNT) -> None:
    async def run() -> None:
        async with open_runtime(state, config=Config()) as rt:
            for i in range(count):
                await rt.ledger.append(
                    actor="alice",
                    type="task.started",
                    subject={"task": f"T{i % 2}"},
                    data={"i": i},
                    refs={"trace_id": f"{i:032x}"},
                )
                if i == 2:
                    await rt.ledger.checkpoint()

    asyncio.run(run())


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    build(state)
    return state


def edit_entry(state: Path, seq: int) -> None:
    """Change one entry's bytes underneath the application (triggers dropped first)."""
    conn = sqlite3.connect(state / "phasegate.db", isolation_level=None)
    try:
        conn.execute("DROP TRIGGER ledger_no_update")
        raw = conn.execute("SELECT entry FROM ledger WHERE seq = ?", (seq,)).fetchone()[0]
        conn.execute(
            "UPDATE ledger SET entry = ? WHERE seq = ?", (raw.replace(b'"i":', b'"j":'), seq)
        )
    finally:
        conn.close()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in argv else out


def test_verify_exits_0_and_reports_the_ledger_on_a_good_ledger(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_cli(capsys, "ledger", "verify", "--state-dir", str(ledger), "--json")
    assert code == EXIT_OK == 0
    assert report["ok"] is True
    assert report["entries"] == COUNT
    assert report["checkpoints"] == 2
    assert report["latest_checkpoint_size"] == COUNT
    assert len(report["root"]) == 64


def test_verify_exits_1_with_the_fault_kind_and_seq_on_tampering(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_entry(ledger, 4)
    code, report = run_cli(capsys, "ledger", "verify", "--state-dir", str(ledger), "--json")
    assert code == EXIT_FAULT == 1
    assert (report["ok"], report["fault"], report["seq"]) == (False, "hash", 4)


def test_verify_exits_1_on_a_forged_checkpoint(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ledger / "checkpoints" / "000000000003.txt"
    path.write_text(path.read_text().replace("\n3\n", "\n2\n", 1))
    code, report = run_cli(capsys, "ledger", "verify", "--state-dir", str(ledger), "--json")
    assert code == 1
    assert (report["fault"], report["seq"]) == ("signature", 3)


def test_verify_exits_2_when_the_database_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Signer.load_or_create(tmp_path / "keys", "phasegate")  # a key, but no database
    code, report = run_cli(capsys, "ledger", "verify", "--state-dir", str(tmp_path), "--json")
    assert code == EXIT_UNREADABLE == 2
    assert (report["ok"], report["fault"]) == (False, "unreadable")


def test_verify_exits_2_when_the_public_key_is_missing(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ledger / "keys" / "ed25519.pub").unlink()
    code, report = run_cli(capsys, "ledger", "verify", "--state-dir", str(ledger), "--json")
    assert code == 2
    assert report["fault"] == "unreadable"


def test_verify_exits_2_on_an_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli(capsys, "ledger", "verify", "--state-dir", str(tmp_path / "nothing"))
    assert code == 2
    assert not (tmp_path / "nothing").exists()  # verifying never creates state


def test_verify_prints_one_line_without_json(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(capsys, "ledger", "verify", "--state-dir", str(ledger))
    assert code == 0
    assert out.startswith("OK ") and out.count("\n") == 1
    edit_entry(ledger, 1)
    code, out = run_cli(capsys, "ledger", "verify", "--state-dir", str(ledger))
    assert code == 1
    assert out.startswith("FAIL hash ")


def test_the_state_directory_comes_from_the_environment_when_not_given(
    ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHASEGATE_STATE_DIR", str(ledger))
    code, report = run_cli(capsys, "ledger", "verify", "--json")
    assert (code, report["entries"]) == (0, COUNT)


def test_tail_lists_the_newest_entries_oldest_first(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, entries = run_cli(
        capsys, "ledger", "tail", "--state-dir", str(ledger), "--limit", "3", "--json"
    )
    assert code == 0
    assert [e["seq"] for e in entries] == [3, 4, 5]
    code, entries = run_cli(
        capsys, "ledger", "tail", "--state-dir", str(ledger), "--task", "T0", "--json"
    )
    assert [e["seq"] for e in entries] == [0, 2, 4]
    assert all(len(e["leaf_hash"]) == 64 for e in entries)


def test_show_prints_one_entry_and_exits_1_for_an_unknown_seq(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = run_cli(capsys, "ledger", "show", "2", "--state-dir", str(ledger), "--json")
    assert code == 0
    assert (found["seq"], found["data"], found["refs"]["trace_id"]) == (2, {"i": 2}, f"{2:032x}")
    assert main(["ledger", "show", "99", "--state-dir", str(ledger)]) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["ledger", "tail"],
        ["ledger", "show", "0"],
        ["status"],
        ["evidence", "list", "T1"],
        ["telemetry", "trace", "0" * 32],
    ],
)
def test_read_commands_on_a_missing_state_directory_exit_2_and_create_nothing(
    tmp_path: Path, argv: list[str]
) -> None:
    missing = tmp_path / "typo"
    assert main([*argv, "--state-dir", str(missing)]) == EXIT_UNREADABLE
    assert not missing.exists()


def test_read_commands_sign_no_checkpoint(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in (ledger / "checkpoints").iterdir())
    assert main(["ledger", "tail", "--state-dir", str(ledger)]) == EXIT_OK
    assert main(["status", "--state-dir", str(ledger)]) == EXIT_OK
    assert sorted(p.name for p in (ledger / "checkpoints").iterdir()) == before


def test_tail_over_a_tampered_row_reports_a_fault_not_a_traceback(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(ledger / "phasegate.db", isolation_level=None)
    try:
        conn.execute("DROP TRIGGER ledger_no_update")
        conn.execute("UPDATE ledger SET entry = 'not json' WHERE seq = 4")
    finally:
        conn.close()
    assert main(["ledger", "tail", "--state-dir", str(ledger), "--json"]) == EXIT_FAULT
    err = json.loads(capsys.readouterr().err)
    assert err["error"]["details"] == {"kind": "canonical", "seq": 4}


def test_checkpoint_signs_the_current_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    build(state, 4)
    for cp in (state / "checkpoints").iterdir():
        cp.unlink()
    code, result = run_cli(capsys, "ledger", "checkpoint", "--state-dir", str(state), "--json")
    assert code == 0
    assert result["size"] == 4
    assert (state / "checkpoints" / "000000000004.txt").is_file()
    code, report = run_cli(capsys, "ledger", "verify", "--state-dir", str(state), "--json")
    assert (code, report["root"]) == (0, result["root"])


# --- as a real process -----------------------------------------------------------------------


def phasegate(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_as_a_subprocess_exits_0_then_1_after_tampering_then_2_without_a_database(
    ledger: Path, tmp_path: Path
) -> None:
    done = phasegate("ledger", "verify", "--state-dir", str(ledger), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entries"] == COUNT

    edit_entry(ledger, 0)
    done = phasegate("ledger", "verify", "--state-dir", str(ledger), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert (json.loads(done.stdout)["fault"], json.loads(done.stdout)["seq"]) == ("hash", 0)

    for suffix in ("", "-wal", "-shm"):
        (ledger / f"phasegate.db{suffix}").unlink(missing_ok=True)
    done = phasegate("ledger", "verify", "--state-dir", str(ledger), "--json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["fault"] == "unreadable"
    assert "Traceback" not in done.stderr


def test_verify_as_a_subprocess_reads_a_ledger_another_process_wrote(tmp_path: Path) -> None:
    state = tmp_path / "state"
    build(state, 3)
    done = phasegate("ledger", "verify", "--state-dir", str(state), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK 3 entries")
    assert hashlib.sha256(b"").hexdigest() not in done.stdout
