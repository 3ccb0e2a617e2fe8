"""Prompt attestation: baselines per (task, phase), drift as WARN or ERROR, admin re-baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from phasegate_testkit import (
    ALICE,
    BOB,
    NO_GATES,
    ROOT,
    advance_to,
    enforcer_at,
    entries,
    put_valid,
)

from enforcer.config import AttestationConfig, Config, GateConfig
from enforcer.errors import PhasegateError
from enforcer.phases import ORDER, Phase
from enforcer.process.attestation import MAX_PROMPT_BYTES, normalise, prompt_sha256

PROMPT = "You are the implementer.\nFollow the plan.\nNever skip a phase.\n"
OTHER = "You are the implementer.\nShip it, skip the tests.\n"

# VERIFY's gate is an ordinary artifact here, so these tests need no test run.
CONFIG = Config(
    gates={"VERIFY": GateConfig(artifacts=["verify_notes.md"], require_server_results=False)}
)


async def code_of(call: Any) -> str | None:
    try:
        await call
    except PhasegateError as err:
        return err.code
    return None


def test_normalisation_unifies_newlines_and_strips_trailing_space_and_blank_lines() -> None:
    assert normalise("a  \r\nb\t\rc\n\n\n") == "a\nb\nc"
    assert normalise("  indented\n") == "  indented"
    assert prompt_sha256("x\r\n") == prompt_sha256("x") == prompt_sha256("x   \n\n")
    assert prompt_sha256("x") != prompt_sha256(" x")


async def test_the_first_attestation_sets_the_baseline_and_the_same_prompt_matches(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        first = await e.prompt_attest(ALICE, "T1", PROMPT)
        assert (first.status, first.baseline_version, first.severity) == ("baseline", 1, None)
        assert first.sha256 == first.baseline_sha256 == prompt_sha256(PROMPT)
        before = await entries(e)
        again = await e.prompt_attest(ALICE, "T1", PROMPT)
        assert again.status == "match" and again.as_dict()["blocks_advance"] is False
        assert await entries(e) == before  # a match is not a state change
        assert before[-1].type == "prompt.baseline_set"
        assert before[-1].data == {"sha256": first.sha256, "version": 1}


async def test_newline_and_trailing_space_differences_are_not_drift(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)  # an ERROR phase: drift would block
        await e.prompt_attest(ALICE, "T1", PROMPT)
        variants = [
            PROMPT.replace("\n", "\r\n"),
            PROMPT.replace("\n", "\r"),
            PROMPT.replace("\n", "   \n"),
            PROMPT.replace("\n", " \t\r\n") + "\n\n\n",
            PROMPT.rstrip("\n"),
        ]
        for variant in variants:
            assert (await e.prompt_attest(ALICE, "T1", variant)).status == "match"
        assert "prompt.drift" not in [x.type for x in await entries(e)]
        assert (await e.task_status("T1")).drift is None
        await e.evidence_put(ALICE, "T1", "verify_notes.md", "ok")
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.REVIEW


async def test_drift_in_plan_is_ledgered_as_a_warning_and_the_advance_goes_on(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.PLAN)
        await e.prompt_attest(ALICE, "T1", PROMPT)
        drift = await e.prompt_attest(ALICE, "T1", OTHER)
        assert (drift.status, drift.severity) == ("drift", "WARN")
        assert drift.baseline_sha256 == prompt_sha256(PROMPT)
        last = (await entries(e))[-1]
        assert last.type == "prompt.drift" and last.data["severity"] == "WARN"
        assert last.subject == {"task": "T1", "phase": "PLAN"}
        assert (await e.counters())["prompt_drift_detected"] == 1
        assert (await e.task_status("T1")).drift == "WARN"
        await put_valid(e, ALICE, "T1", Phase.PLAN)
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.THINK
        assert await e.replay_equals_store()


async def test_drift_in_verify_blocks_the_advance_until_an_admin_rebaselines(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)
        await e.evidence_put(ALICE, "T1", "verify_notes.md", "all green")
        await e.prompt_attest(ALICE, "T1", PROMPT)
        drift = await e.prompt_attest(ALICE, "T1", OTHER)
        assert (drift.status, drift.severity) == ("drift", "ERROR")
        assert drift.as_dict()["blocks_advance"] is True
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "PROMPT_DRIFT"
        last = (await entries(e))[-1]
        assert last.type == "phase.advance_blocked" and last.data == {"reason": "prompt_drift"}
        # Only an admin re-baselines.
        for caller in (ALICE, BOB):
            assert await code_of(e.prompt_rebaseline(caller, "T1", "fine")) == "FORBIDDEN"
        assert await code_of(e.prompt_rebaseline(ROOT, "T1", "  ")) == "INVALID_ARGUMENT"
        rebased = await e.prompt_rebaseline(ROOT, "T1", "the new header was approved")
        assert rebased == {
            "task": "T1",
            "phase": "VERIFY",
            "version": 2,
            "sha256": prompt_sha256(OTHER),  # the drifted prompt is accepted
        }
        last = (await entries(e))[-1]
        assert last.type == "prompt.rebaselined" and last.actor == "root"
        assert last.data["reason"] == "the new header was approved"
        assert (await e.task_status("T1")).drift is None
        assert (await e.prompt_attest(ALICE, "T1", OTHER)).status == "match"
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.REVIEW
        versions = await e.store.read(
            lambda tx: tx.all(
                "SELECT version, actor FROM baselines WHERE task = 'T1' AND phase = 'VERIFY'"
                " ORDER BY version"
            )
        )
        assert versions == [(1, "alice"), (2, "root")]
        counters = await e.counters()
        assert counters["prompt_drift_detected"] == 1
        assert counters["phase_validations_failed"] == 1
        assert await e.replay_equals_store()


async def test_going_back_to_the_baseline_prompt_does_not_clear_recorded_drift(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)
        await e.evidence_put(ALICE, "T1", "verify_notes.md", "all green")
        await e.prompt_attest(ALICE, "T1", PROMPT)
        await e.prompt_attest(ALICE, "T1", OTHER)
        assert (await e.prompt_attest(ALICE, "T1", PROMPT)).status == "match"
        assert (await e.task_status("T1")).drift == "ERROR"
        assert await code_of(e.phase_advance(ALICE, "T1")) == "PROMPT_DRIFT"
        await e.prompt_rebaseline(ROOT, "T1", "back on the approved header", prompt=PROMPT)
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.REVIEW


async def test_a_rebaseline_with_an_explicit_prompt_makes_that_prompt_the_baseline(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.prompt_attest(ALICE, "T1", PROMPT)
        assert (await e.prompt_attest(ALICE, "T1", OTHER)).status == "drift"
        third = "A third header\n"
        done = await e.prompt_rebaseline(ROOT, "T1", "switching header", prompt=third)
        assert done["version"] == 2 and done["sha256"] == prompt_sha256(third)
        now = await e.prompt_attest(ALICE, "T1", third + "  \r\n")
        assert (now.status, now.baseline_version) == ("match", 2)
        assert (await e.prompt_attest(ALICE, "T1", OTHER)).status == "drift"
        done = await e.prompt_rebaseline(ROOT, "T1", "and back")
        assert done["version"] == 3 and done["sha256"] == prompt_sha256(OTHER)


async def test_a_phase_never_attested_can_be_baselined_only_with_an_explicit_prompt(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        assert await code_of(e.prompt_rebaseline(ROOT, "T1", "why")) == "NOT_FOUND"
        done = await e.prompt_rebaseline(ROOT, "T1", "preset", prompt=PROMPT, phase="review")
        assert (done["phase"], done["version"]) == ("REVIEW", 1)
        assert await code_of(e.prompt_rebaseline(ROOT, "T1", "x", phase="LATER")) == (
            "INVALID_ARGUMENT"
        )


async def test_baselines_belong_to_one_phase(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.prompt_attest(ALICE, "T1", PROMPT)
        await advance_to(e, ALICE, "T1", Phase.SPEC)
        first = await e.prompt_attest(ALICE, "T1", OTHER)
        assert (first.status, first.baseline_version) == ("baseline", 1)


@pytest.mark.parametrize("phase", [p for p in ORDER if p is not Phase.DONE], ids=str)
async def test_drift_blocks_only_in_verify_review_and_monitor_by_default(
    tmp_path: Path, phase: Phase
) -> None:
    async with enforcer_at(tmp_path, Config(gates=NO_GATES)) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", phase)
        await e.prompt_attest(ALICE, "T1", PROMPT)
        result = await e.prompt_attest(ALICE, "T1", OTHER)
        blocking = phase in (Phase.VERIFY, Phase.REVIEW, Phase.MONITOR)
        assert result.severity == ("ERROR" if blocking else "WARN")
        code = await code_of(e.phase_advance(ALICE, "T1"))
        assert code == ("PROMPT_DRIFT" if blocking else None)


async def test_the_error_phases_come_from_configuration(tmp_path: Path) -> None:
    config = Config(gates=NO_GATES, attestation=AttestationConfig(error_phases=["PLAN"]))
    async with enforcer_at(tmp_path, config) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.PLAN)
        await e.prompt_attest(ALICE, "T1", PROMPT)
        assert (await e.prompt_attest(ALICE, "T1", OTHER)).severity == "ERROR"
        assert await code_of(e.phase_advance(ALICE, "T1")) == "PROMPT_DRIFT"
        await e.prompt_rebaseline(ROOT, "T1", "ok")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)
        await e.prompt_attest(ALICE, "T1", PROMPT)
        assert (await e.prompt_attest(ALICE, "T1", OTHER)).severity == "WARN"
        assert await code_of(e.phase_advance(ALICE, "T1")) is None


@pytest.mark.parametrize("prompt", [None, 42, "x" * (MAX_PROMPT_BYTES + 1)], ids=str)
async def test_a_prompt_that_is_not_a_string_or_too_big_is_an_invalid_argument(
    tmp_path: Path, prompt: Any
) -> None:
    async with enforcer_at(tmp_path, CONFIG) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await entries(e)
        assert await code_of(e.prompt_attest(ALICE, "T1", prompt)) == "INVALID_ARGUMENT"
        assert await entries(e) == before
