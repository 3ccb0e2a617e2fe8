"""The CLI as a supervisor meets it: it never guesses a state directory, never prints a
traceback, fits 80 columns, and says what to do next in CLI terms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_kit import REPO, cli

NO_STATE_COMMANDS = [
    ["status"],
    ["status", "T1"],
    ["verify"],
    ["ledger", "verify"],
    ["ledger", "tail"],
    ["ledger", "show", "1"],
    ["ledger", "checkpoint"],
    ["evidence", "list", "T1"],
    ["evidence", "show", "T1", "SPEC", "spec.md"],
    ["lease", "break", "T1", "--reason", "r"],
    ["freeze", "--reason", "r"],
    ["unfreeze", "--reason", "r"],
    ["pause", "--reason", "r"],
    ["resume", "--reason", "r"],
    ["attest", "rebaseline", "T1", "--reason", "r"],
    ["telemetry", "summary"],
    ["telemetry", "trace", "0" * 32],
]


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("cli") / "state"
    cli("demo", "--state-dir", str(state))
    return state


@pytest.mark.parametrize("argv", NO_STATE_COMMANDS, ids=" ".join)
def test_a_directory_without_state_is_refused_with_exit_2_and_is_not_created(
    tmp_path: Path, argv: list[str]
) -> None:
    typo = tmp_path / "typo"
    done = cli(*argv, "--state-dir", str(typo), check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    _no_traceback(done)
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert 1 <= len(said) <= 2 and str(typo) in said[0], said  # one line (and a hint)
    assert not typo.exists()
    as_json = cli(*argv, "--state-dir", str(typo), "--json", check=False)
    assert as_json.returncode == 2
    body = json.loads(as_json.stderr or as_json.stdout)
    code = body["error"]["code"] if "error" in body else body["fault"]
    assert code in ("NOT_FOUND", "unreadable"), body
    assert not typo.exists()


def test_an_unreadable_prompt_file_is_one_line_not_a_traceback(demo_state: Path) -> None:
    done = cli(
        "attest", "rebaseline", "T1", "--reason", "r", "--prompt-file", "/missing/prompt.txt",
        "--state-dir", str(demo_state), check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "/missing/prompt.txt" in done.stderr, done.stderr
    _no_traceback(done)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[tools]\nverify_runn = ["VERIFY"]\n', "verify_runn"),
        ('[store]\nduribility = "FULL"\n', "duribility"),
        ("[store\n", "TOML"),
    ],
)
@pytest.mark.parametrize("argv", [["status"], ["serve"], ["ledger", "tail"]], ids=" ".join)
def test_every_command_refuses_a_bad_configuration_alike_naming_the_key(
    demo_state: Path, tmp_path: Path, toml: str, named: str, argv: list[str]
) -> None:
    config = tmp_path / "phasegate.toml"
    config.write_text(toml)
    done = cli(*argv, "--state-dir", str(demo_state), "--config", str(config), check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr, done.stderr
    _no_traceback(done)


def test_demo_json_prints_one_json_object_per_step_and_writes_telemetry(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = cli("demo", "--state-dir", str(state), "--json")
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    names = [s["step"] for s in steps]  # with governed modules the demo registers one first
    assert names[-1] == "done" and names.index("started") < len(names) - 1
    assert {"refused", "recorded", "verified", "advanced"} <= set(names)
    summary = json.loads(cli("telemetry", "summary", "--state-dir", str(state), "--json").stdout)
    assert summary["transitions"] >= 9, summary


def _help_texts() -> list[list[str]]:
    return [
        [],
        ["serve"], ["demo"], ["verify"], ["status"], ["freeze"],
        ["evidence", "list"], ["evidence", "show"], ["lease", "break"], ["attest", "rebaseline"],
        ["telemetry", "summary"], ["telemetry", "trace"], ["token", "hash"],
        ["ledger", "verify"], ["ledger", "tail"], ["ledger", "show"], ["ledger", "checkpoint"],
    ]  # fmt: skip


@pytest.mark.parametrize("argv", _help_texts(), ids=lambda a: " ".join(a) or "top")
def test_help_fits_80_columns(argv: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *argv, "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wide = [line for line in done.stdout.splitlines() if len(line) > 80]
    assert wide == []


def test_status_and_ledger_tail_fit_80_columns_and_print_no_python_none(demo_state: Path) -> None:
    state = str(demo_state)
    board = cli("status", "--state-dir", state).stdout
    task = json.loads(cli("status", "--state-dir", state, "--json").stdout)["tasks"][0]["task"]
    detail = cli("status", task, "--state-dir", state).stdout
    tail = cli("ledger", "tail", "--limit", "50", "--state-dir", state).stdout
    for text in (board, detail, tail):
        assert [line for line in text.splitlines() if len(line) > 80] == []
        assert "None" not in text


def test_cli_errors_hint_at_commands_not_at_mcp_tools(demo_state: Path) -> None:
    done = cli("status", "NOPE", "--state-dir", str(demo_state), check=False)
    assert done.returncode == 1 and "NOPE" in done.stderr
    assert "task_list" not in done.stderr and "phasegate status" in done.stderr, done.stderr


@pytest.mark.parametrize("limit", ["0", "-1", "10001", "x"])
def test_ledger_tail_refuses_a_limit_outside_its_range(demo_state: Path, limit: str) -> None:
    done = cli("ledger", "tail", "--limit", limit, "--state-dir", str(demo_state), check=False)
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    _no_traceback(done)


def test_global_options_may_stand_before_the_command(demo_state: Path) -> None:
    before = cli("--state-dir", str(demo_state), "--json", "status").stdout
    after = cli("status", "--state-dir", str(demo_state), "--json").stdout
    assert json.loads(before) == json.loads(after)


HOSTILE = [
    ["ledger", "show", "99999999999999999999999"],
    ["ledger", "show", "-5"],
    ["evidence", "show", "T1", "SPEC", "../../etc/passwd"],
    ["evidence", "show", "T1", "NOPHASE", "a.md"],
    ["evidence", "list", "../T1"],
    ["status", "T1\n"],
    ["status", "\x1b[31mred"],
    ["status", "é" * 500],
    ["lease", "break", "T1", "--reason", ""],
    ["lease", "break", "T1", "--reason", "\x07bell"],
    ["telemetry", "trace", "not-hex"],
    ["freeze", "--reason", "x" * 100_000],
    ["attest", "rebaseline", "T1", "--reason", "r", "--phase", "NOPE"],
    ["token"],
    ["nonsense-command"],
]


@pytest.mark.parametrize("argv", HOSTILE, ids=lambda a: " ".join(a)[:40])
def test_no_input_a_user_can_type_prints_a_traceback(demo_state: Path, argv: list[str]) -> None:
    done = cli(*argv, "--state-dir", str(demo_state), check=False)
    _no_traceback(done)
    assert done.returncode in (1, 2), (done.returncode, done.stdout, done.stderr)
