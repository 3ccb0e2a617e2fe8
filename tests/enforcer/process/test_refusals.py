"""Refusal records (process/refusals.py): one caller's identical refusals add a bounded number of
ledger entries, every refusal is still counted, and a replay of the ledger equals the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from phasegate_testkit import ALICE, BOB, enforcer_at, entries

from enforcer.clock import ManualClock
from enforcer.config import Config, LedgerConfig
from enforcer.errors import EvidenceMissingError, PhaseSkipError
from enforcer.ledger.ops import Record


def config(window_s: float = 60) -> Config:
    return Config(ledger=LedgerConfig(refusal_window_s=window_s))


async def test_identical_refusals_in_a_window_are_one_entry_then_one_counted_entry(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with enforcer_at(tmp_path / "state", config(), clock) as e:
        await e.task_start(ALICE, "t", "T1")
        for _ in range(50):
            with pytest.raises(PhaseSkipError):
                await e.phase_advance(ALICE, "T1", "PLAN")
        skips = [x for x in await entries(e) if x.type == "phase.skip_blocked"]
        assert len(skips) == 1 and "refusals" not in skips[0].data
        clock.advance(61)
        await e.flush_refusals()
        skips = [x for x in await entries(e) if x.type == "phase.skip_blocked"]
        assert [x.data.get("refusals") for x in skips] == [None, 49]
        assert (await e.counters())["phase_skips_attempted"] == 50
        assert await e.replay_equals_store()


async def test_a_repeat_after_the_window_carries_the_count_of_those_before_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with enforcer_at(tmp_path / "state", config(), clock) as e:
        await e.task_start(ALICE, "t", "T1")
        for _ in range(3):
            with pytest.raises(EvidenceMissingError):
                await e.phase_advance(ALICE, "T1")
        clock.advance(60)
        with pytest.raises(EvidenceMissingError):
            await e.phase_advance(ALICE, "T1")
        failed = [x for x in await entries(e) if x.type == "evidence.gate_failed"]
        assert [x.data.get("refusals") for x in failed] == [None, 3]
        assert (await e.counters())["evidence_gate_failed"] == 4
        assert await e.replay_equals_store()


async def test_refusals_that_differ_in_caller_or_content_are_each_written(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path / "state", config()) as e:
        await e.task_start(ALICE, "t", "T1")
        for caller in (ALICE, BOB):
            for tool in ("a", "b"):
                await e.record_refusal(caller, Record("tool.rejected", {}, {"tool": tool}))
                await e.record_refusal(caller, Record("tool.rejected", {}, {"tool": tool}))
        rejected = [x for x in await entries(e) if x.type == "tool.rejected"]
        assert [(x.actor, x.data["tool"]) for x in rejected] == [
            ("alice", "a"),
            ("alice", "b"),
            ("bob", "a"),
            ("bob", "b"),
        ]
        await e.flush_refusals(everything=True)
        assert (await e.counters())["tool_calls_rejected"] == 8
        assert await e.replay_equals_store()


async def test_a_window_of_zero_writes_every_refusal(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path / "state", config(window_s=0)) as e:
        for _ in range(5):
            await e.record_refusal(ALICE, Record("tool.rejected", {}, {"tool": "x"}))
        assert len([x for x in await entries(e) if x.type == "tool.rejected"]) == 5
