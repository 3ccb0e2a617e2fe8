"""The ledger's head against the newest signed checkpoint (ledger/log.py, `Ledger.check`): a
ledger shorter than what was signed, or diverging from it, refuses every write — at start and
before any checkpoint is signed — while reads go on and nothing is signed over it.

The state is damaged the way an incident does it, through a separate sqlite3 connection
(ledger_kit.tampering): the tail lost (a WAL truncated after a SIGKILL), or lost and written
again with other entries by a writer that did not check (a forked chain reusing seqs).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ledger_kit import build_ledger, tampering
from phasegate_testkit import ALICE, enforcer_at

from enforcer.clock import rfc3339
from enforcer.errors import WritesRefusedError
from enforcer.ledger import checkpoint
from enforcer.ledger.entries import append_entry
from enforcer.store import SqliteTx

SIZE = 60
SIGNED = (40,)  # plus the final checkpoint at SIZE, signed when the runtime closes


@pytest.fixture
async def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    await build_ledger(state, SIZE, checkpoint_at=SIGNED)
    assert checkpoint.newest_size(state / "checkpoints") == SIZE
    return state


def truncate(state: Path, keep: int) -> None:
    with tampering(state) as conn:
        conn.execute("DELETE FROM ledger WHERE seq >= ?", (keep,))


def fork(state: Path, keep: int, total: int) -> None:
    """Keep `keep` entries, then chain other ones after them up to `total` (seqs reused)."""
    truncate(state, keep)
    conn = sqlite3.connect(state / "phasegate.db", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for i in range(keep, total):
            append_entry(
                SqliteTx(conn),
                ts=rfc3339(datetime(2026, 2, 1, tzinfo=UTC)),
                actor="mallory",
                type="evidence.recorded",
                subject={"task": "T1", "phase": "IMPLEMENT"},
                data={"n": i, "forked": True},
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def refused_at_start(state: Path) -> WritesRefusedError:
    async with enforcer_at(state) as e:
        with pytest.raises(WritesRefusedError) as raised:
            await e.task_start(ALICE, "after the incident", "T9")
        # Reads still work.
        assert len(await e.ledger.tail(5)) == 5
        assert await e.task_list() == []
        error = raised.value
        assert e.ledger.refusal is error
    # Nothing was signed over it, not even at close.
    assert checkpoint.newest_size(state / "checkpoints") == SIZE
    return error


async def test_a_ledger_shorter_than_its_newest_checkpoint_refuses_writes(state: Path) -> None:
    truncate(state, 50)
    error = await refused_at_start(state)
    assert error.code == "FROZEN"
    assert error.details == {"cause": "ledger", "fault": "truncated", "seq": 50}
    assert "unfreeze" in error.hint and "phasegate verify" in error.hint


async def test_a_ledger_that_diverged_from_its_newest_checkpoint_refuses_writes(
    state: Path,
) -> None:
    fork(state, 50, SIZE + 10)  # longer than what was signed, but not what was signed
    error = await refused_at_start(state)
    assert error.details == {"cause": "ledger", "fault": "root", "seq": SIZE - 1}


async def test_a_newest_checkpoint_that_does_not_verify_refuses_writes(state: Path) -> None:
    path = checkpoint.path_of(state / "checkpoints", SIZE)
    path.write_text(path.read_text().replace("phasegate/", "phasegate/x"))
    error = await refused_at_start(state)
    assert error.details["fault"] == "signature"


async def test_a_truncation_while_serving_is_found_before_the_next_checkpoint_is_signed(
    state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with enforcer_at(state) as e:
        await e.task_start(ALICE, "t", "T1")  # the first write checks the whole ledger
        await e.ledger.checkpoint()
        signed = checkpoint.newest_size(state / "checkpoints")
        assert signed is not None and signed > SIZE
        truncate(state, SIZE - 5)
        with caplog.at_level(logging.CRITICAL), pytest.raises(WritesRefusedError) as raised:
            await e.ledger.checkpoint()
        assert raised.value.details["fault"] == "truncated"
        with pytest.raises(WritesRefusedError):
            await e.evidence_put(ALICE, "T1", "strategy.md", "# Problem\nx\n# Objectives\n- y\n")
        assert (await e.task_status("T1")).task.task == "T1"
    assert checkpoint.newest_size(state / "checkpoints") == signed
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(lines) == 1 and "phasegate verify" in lines[0] and "\n" not in lines[0]


async def test_a_fork_written_by_another_process_is_found_before_signing(state: Path) -> None:
    async with enforcer_at(state) as e:
        await e.ledger.check()
        fork(state, SIZE - 5, SIZE + 5)  # the entry this process checked last is replaced
        with pytest.raises(WritesRefusedError) as raised:
            await e.ledger.checkpoint()
        assert raised.value.details == {"cause": "ledger", "fault": "link", "seq": SIZE - 1}


async def test_a_sound_ledger_is_checked_once_and_then_extended(state: Path) -> None:
    async with enforcer_at(state) as e:
        await e.task_start(ALICE, "t", "T1")
        for i in range(3):
            await e.task_start(ALICE, "t", f"T{i + 2}")
            await e.ledger.checkpoint()
        assert e.ledger.refusal is None
    assert checkpoint.newest_size(state / "checkpoints") == SIZE + 4 * 2
