"""The store contract for governed modules (DESIGN.md, Scale-out): versions, drafts and the
active pointer, on SQLite and on PostgreSQL (`store_url`), through several servers over one
database and one state directory.

What must hold whichever store is below: a version promoted through one server is installed and
rolled back through another; two servers promoting at once never record the same version
twice; and however installs through two servers interleave, the install path ends at the
version the ledger's last move names (the swap is the last step of the transaction that
records it, and every write passes the store's one chain lock).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from modules_kit import ADMIN, ME, make_module_dir, validator
from phasegate_testkit import NO_GATES, entries
from phasegate_testkit import servers as kit_servers

from enforcer.clock import ManualClock
from enforcer.config import Config
from enforcer.errors import PhasegateError
from enforcer.integrity import check_integrity
from enforcer.service import Enforcer

START = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = Config(gates=NO_GATES)
MODULE = "skills"


def servers(
    state: Path, url: str | None, count: int
) -> contextlib.AbstractAsyncContextManager[list[Enforcer]]:
    """`count` enforcers over one database and state directory, sharing one clock."""
    return kit_servers(state, url, count, ManualClock(START), CONFIG)


async def registered(e: Enforcer, tmp_path: Path) -> Path:
    """`skills` registered through `e` (v1 installed); its install path."""
    install = tmp_path / "live" / MODULE
    source = make_module_dir(tmp_path / "src")
    await e.modules.module_add(ADMIN, MODULE, source, install, validator())
    return install


async def to_phase(e: Enforcer, task: str, phase: str) -> None:
    while (await e.task_status(task)).task.phase.value != phase:
        await e.phase_advance(ME, task)


async def validated_draft(e: Enforcer, task: str, text: str) -> str:
    """A draft of `skills` on `task` with SKILL.md changed, validated; the task left at PR."""
    await e.task_start(ME, f"change {task}", task)
    await to_phase(e, task, "IMPLEMENT")
    draft = str((await e.modules.draft_create(ME, task, MODULE))["draft"])
    await e.modules.draft_write(ME, draft, "SKILL.md", text)
    validated = await e.modules.draft_validate(ME, draft)
    assert validated["state"] == "VALIDATED", validated["report"]
    await to_phase(e, task, "PR")
    return draft


def skill_text(install: Path) -> str:
    return (install / "SKILL.md").read_text()


async def moves(e: Enforcer) -> list[tuple[str, int]]:
    """The module's pointer moves, as the ledger records them, in order."""
    kinds = {"module.installed", "module.rolled_back"}
    return [(x.type, int(x.data["version"])) for x in await entries(e) if x.type in kinds]


async def test_a_version_promoted_through_one_server_is_installed_and_rolled_back_through_another(
    tmp_path: Path, store_url: str | None
) -> None:
    state = tmp_path / "state"
    async with servers(state, store_url, 2) as (one, two):
        install = await registered(one, tmp_path)
        draft = await validated_draft(one, "T1", "# Review skill v2\n")
        promoted = await one.modules.draft_promote(ME, draft)
        assert promoted["version"] == 2

        listed = await two.modules.module_versions(MODULE)  # the other server sees it
        assert [v["version"] for v in listed["versions"]] == [1, 2]
        await two.modules.module_install(ME, MODULE, 2, task="T1")
        assert skill_text(install) == "# Review skill v2\n"
        seen = await one.modules.module_versions(MODULE)
        assert seen["active"] == 2 and seen["consistent"] is True

        await one.modules.module_rollback(ME, MODULE, "v2 reads worse", task="T1")
        assert skill_text(install).startswith("# Review skill\n")
        seen = await two.modules.module_versions(MODULE)
        assert seen["active"] == 1 and seen["consistent"] is True
        assert await moves(two) == [
            ("module.installed", 1),
            ("module.installed", 2),
            ("module.rolled_back", 1),
        ]
        assert await one.replay_equals_store() and await two.replay_equals_store()
    report = check_integrity(state, store_url)  # raises on any fault
    assert (report.modules.modules, report.modules.versions) == (1, 2)
    assert report.modules.trees == 2  # both kept trees, whole


async def test_two_servers_promoting_at_once_never_record_one_version_twice(
    tmp_path: Path, store_url: str | None
) -> None:
    async with servers(tmp_path / "state", store_url, 2) as (one, two):
        await registered(one, tmp_path)
        first = await validated_draft(one, "T1", "# Review skill, one\n")
        second = await validated_draft(two, "T2", "# Review skill, two\n")

        async def promote(e: Enforcer, draft: str) -> dict[str, Any] | str:
            try:
                return await e.modules.draft_promote(ME, draft)
            except PhasegateError as err:
                return err.code

        results = await asyncio.gather(promote(one, first), promote(two, second))
        won = [r for r in results if isinstance(r, dict)]
        lost = [r for r in results if not isinstance(r, dict)]
        # Both drafts are based on v1: the first to commit makes v2, the other is behind it.
        assert [r["version"] for r in won] == [2], results
        assert lost == ["CONFLICT"], results
        listed = await two.modules.module_versions(MODULE)
        assert [v["version"] for v in listed["versions"]] == [1, 2]
        promoted = [x for x in await entries(one) if x.type == "promotion.promoted"]
        assert [x.data["version"] for x in promoted] == [2]


@pytest.mark.parametrize("rounds", [6])
async def test_installs_racing_through_two_servers_leave_the_path_at_the_ledgers_last_move(
    tmp_path: Path, store_url: str | None, rounds: int
) -> None:
    async with servers(tmp_path / "state", store_url, 2) as (one, two):
        install = await registered(one, tmp_path)
        draft = await validated_draft(one, "T1", "# Review skill v2\n")
        await one.modules.draft_promote(ME, draft)
        texts = {1: "# Review skill\n\nRead the diff.\nName each risk.\n", 2: "# Review skill v2\n"}

        async def installs(e: Enforcer, version: int) -> None:
            for _ in range(rounds):
                await e.modules.module_install(ADMIN, MODULE, version)

        await asyncio.gather(installs(one, 2), installs(two, 1))
        last = (await moves(one))[-1][1]
        for e in (one, two):
            seen = await e.modules.module_versions(MODULE)
            assert seen["active"] == last and seen["consistent"] is True, seen
        assert skill_text(install) == texts[last]
        assert len(await moves(two)) == 1 + 2 * rounds
        assert await one.replay_equals_store()
