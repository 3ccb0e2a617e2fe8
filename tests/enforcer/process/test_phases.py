"""The phase graph: one step forward at a time, backtracks to any earlier phase, DONE terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from phasegate_testkit import ALICE, NO_GATES, advance_to, enforcer_at, entries, types

from enforcer.config import Config
from enforcer.errors import PhasegateError
from enforcer.phases import ORDER, Move, Phase, classify

DESIGN_ORDER = [
    "STRATEGIZE",
    "SPEC",
    "PLAN",
    "THINK",
    "IMPLEMENT",
    "VERIFY",
    "REVIEW",
    "PR",
    "MONITOR",
    "DONE",
]
GRAPH_ONLY = Config(gates=NO_GATES)  # every gate empty: only the graph's rules apply


async def code_of(call: Any) -> str | None:
    try:
        await call
    except PhasegateError as err:
        return err.code
    return None


def test_the_phases_are_the_ten_of_the_design_in_order() -> None:
    assert [p.value for p in ORDER] == DESIGN_ORDER
    assert [p.position for p in ORDER] == list(range(10))


def test_each_phase_leads_to_the_following_one_and_done_leads_nowhere() -> None:
    for here, there in zip(ORDER, ORDER[1:], strict=False):
        assert here.next is there
    assert Phase.DONE.next is None


@pytest.mark.parametrize("current", ORDER, ids=str)
def test_classify_names_every_move_from_a_phase(current: Phase) -> None:
    for target in ORDER:
        i, j = DESIGN_ORDER.index(current.value), DESIGN_ORDER.index(target.value)
        if current is Phase.DONE:
            expected = Move.TERMINAL
        elif j == i:
            expected = Move.STAY
        elif j < i:
            expected = Move.BACKTRACK
        elif j == i + 1:
            expected = Move.FORWARD
        else:
            expected = Move.SKIP
        assert classify(current, target) is expected, (current, target)


async def test_done_is_terminal_nothing_moves_out_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, GRAPH_ONLY) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.DONE)
        status = await e.task_status("T1")
        assert status.task.phase is Phase.DONE and status.next_phase is None
        assert status.lease is None  # reaching DONE hands out no lease
        before = await entries(e)
        assert await code_of(e.phase_advance(ALICE, "T1")) == "OUT_OF_PHASE"
        assert await code_of(e.phase_advance(ALICE, "T1", "DONE")) == "OUT_OF_PHASE"
        assert await code_of(e.phase_advance(ALICE, "T1", "MONITOR")) == "OUT_OF_PHASE"
        assert await code_of(e.evidence_put(ALICE, "T1", "late.md", "x")) == "OUT_OF_PHASE"
        for target in DESIGN_ORDER:
            assert await code_of(e.phase_backtrack(ALICE, "T1", target, "reopen")) == (
                "INVALID_ARGUMENT"
            )
        assert await entries(e) == before
        assert (await e.task_status("T1")).task.phase is Phase.DONE


async def test_every_skip_from_every_phase_is_refused_counted_and_ledgered(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, GRAPH_ONLY) as e:
        await e.task_start(ALICE, "t", "T1")
        expected = 0
        for here in ORDER[:-1]:
            for target in ORDER[here.position + 2 :]:
                assert await code_of(e.phase_advance(ALICE, "T1", target.value)) == "PHASE_SKIP"
                expected += 1
            assert (await e.task_status("T1")).task.phase is here
            await e.phase_advance(ALICE, "T1")
        assert expected == 36
        assert (await e.counters())["phase_skips_attempted"] == expected
        assert (await types(e, "T1")).count("phase.skip_blocked") == expected
        moves = [x.data for x in await entries(e, "T1") if x.type == "phase.advanced"]
        assert all(ORDER.index(Phase(m["to"])) == ORDER.index(Phase(m["from"])) + 1 for m in moves)
        assert await e.replay_equals_store()


async def test_a_backtrack_to_any_earlier_phase_raises_the_epoch_each_time(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, GRAPH_ONLY) as e:
        await e.task_start(ALICE, "t", "T1")
        for epoch, target in enumerate(ORDER[:-2], start=1):
            await advance_to(e, ALICE, "T1", Phase.MONITOR)
            back = await e.phase_backtrack(ALICE, "T1", target.value, f"redo {target.value}")
            assert (back.task.phase, back.task.epoch) == (target, epoch)
        assert (await e.counters())["phase_backtracks"] == 8
        moved = [x.data for x in await entries(e, "T1") if x.type == "phase.backtracked"]
        assert [m["epoch"] for m in moved] == list(range(1, 9))
        assert all(m["from"] == "MONITOR" for m in moved)
        assert await e.replay_equals_store()


async def test_the_next_phase_is_the_default_target_and_names_are_case_insensitive(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, GRAPH_ONLY) as e:
        await e.task_start(ALICE, "t", "T1")
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.SPEC
        assert (await e.phase_advance(ALICE, "T1", "plan")).task.phase is Phase.PLAN
        assert (await e.phase_backtrack(ALICE, "T1", "Spec", "r")).task.phase is Phase.SPEC
