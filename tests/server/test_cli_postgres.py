"""The supervisor's commands over a PostgreSQL store (`--store URL`, or `[store] url`): they
read and change the state every server shares, and refuse what is not phasegate state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from phasegate_testkit import ALICE, enforcer_at
from server_kit import cli

from enforcer.errors import PhasegateError


@pytest.fixture
def pg_state(tmp_path: Path, pg_url: str) -> Path:
    """A state directory whose database is PostgreSQL's: one task, started by a server."""
    state = tmp_path / "state"

    async def start() -> None:
        async with enforcer_at(state, store_url=pg_url) as e:
            await e.task_start(ALICE, "shared", "T1")

    asyncio.run(start())
    return state


def test_status_freeze_and_verify_act_on_the_shared_database(pg_state: Path, pg_url: str) -> None:
    where = ["--state-dir", str(pg_state), "--store", pg_url]
    status = json.loads(cli("status", *where, "--json").stdout)
    assert [t["task"] for t in status["tasks"]] == ["T1"]
    assert not (pg_state / "phasegate.db").exists()  # nothing went to SQLite
    cli("freeze", "--reason", "incident", *where)

    async def write() -> str:
        async with enforcer_at(pg_state, store_url=pg_url) as e:
            try:
                await e.evidence_put(ALICE, "T1", "notes.md", "x")
            except PhasegateError as err:
                return err.code
        return "written"

    assert asyncio.run(write()) == "FROZEN"
    assert "OK" in cli("ledger", "verify", *where).stdout
    assert cli("verify", *where, "--json", check=False).returncode == 0
    out = pg_state.parent / "export"
    cli("export", "--out", str(out), *where)
    assert cli("export", "verify", str(out), check=False).returncode == 0


def test_the_url_in_phasegate_toml_serves_as_store(pg_state: Path, pg_url: str) -> None:
    (pg_state / "phasegate.toml").write_text(f"[store]\nurl = {json.dumps(pg_url)}\n")
    status = json.loads(cli("status", "--state-dir", str(pg_state), "--json").stdout)
    assert [t["task"] for t in status["tasks"]] == ["T1"]


def test_a_directory_without_keys_or_a_url_of_another_database_is_refused(
    tmp_path: Path, pg_url: str
) -> None:
    empty = tmp_path / "empty"
    done = cli("status", "--state-dir", str(empty), "--store", pg_url, check=False)
    assert done.returncode == 2 and not empty.exists()
    empty.mkdir()
    (empty / "phasegate.toml").write_text('[store]\nurl = "mysql://db/x"\n')
    done = cli("status", "--state-dir", str(empty), check=False)
    assert done.returncode == 2 and "store.url" in done.stderr
