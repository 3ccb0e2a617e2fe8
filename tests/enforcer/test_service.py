"""Phases, evidence and gates through the Enforcer facade, on a real state directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from phasegate_testkit import (
    ALICE,
    BOB,
    DIFF,
    DIFF_2,
    INVALID,
    VALID,
    advance_to,
    enforcer_at,
    entries,
    files_under,
    put_valid,
    types,
    verify_config,
    write_sample_project,
)

from enforcer.clock import ManualClock
from enforcer.config import Config
from enforcer.errors import PhasegateError
from enforcer.ledger.projection import refusals_of
from enforcer.ledger.verify import verify_state
from enforcer.phases import ORDER, Phase

REFUSALS = {
    "lease.contended",
    "lease.expired",
    "phase.skip_blocked",
    "evidence.gate_failed",
    "phase.advance_blocked",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The sample project's pytest needs none of the plugins installed here; not loading them
    # makes each real verify run take a fraction of a second instead of two.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return write_sample_project(tmp_path / "project")


async def test_a_task_walks_every_phase_to_done_and_the_ledger_verifies(
    tmp_path: Path, project: Path
) -> None:
    state = tmp_path / "state"
    async with enforcer_at(state, Config(verify=verify_config(project))) as e:
        status = await e.task_start(ALICE, "Fix the parser", "T1")
        assert status.task.phase is Phase.STRATEGIZE
        assert status.lease is not None and status.lease.holder == "alice/a1"
        await advance_to(e, ALICE, "T1", Phase.DONE)
        done = await e.task_status("T1")
        assert done.task.phase is Phase.DONE and done.next_phase is None
        moves = [x.data for x in await entries(e, "T1") if x.type == "phase.advanced"]
        assert [(m["from"], m["to"]) for m in moves] == [
            (a.value, b.value) for a, b in zip(ORDER, ORDER[1:], strict=False)
        ]
        verify_records = {r.name: r for r in await e.evidence_list("T1", "VERIFY")}
        assert {r.producer for r in verify_records.values()} == {"server"}
        assert await e.replay_equals_store()
    report = verify_state(state)
    assert report.entries > 0 and report.latest_checkpoint_size == report.entries


async def test_advancing_without_the_required_artifact_is_refused_as_evidence_missing(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await types(e)
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_MISSING"
        problems = err.value.details["gate"]["problems"]
        assert [(p["artifact"], p["code"]) for p in problems] == [
            ("strategy.md", "EVIDENCE_MISSING")
        ]
        assert await types(e) == [*before, "evidence.gate_failed"]
        assert (await e.task_status("T1")).task.phase is Phase.STRATEGIZE
        counters = await e.counters()
        assert counters["evidence_gate_failed"] == 1
        assert counters["phase_validations_failed"] == 1
        assert await e.replay_equals_store()


async def test_an_invalid_artifact_is_recorded_with_its_problems_but_fails_the_gate(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        rec = await e.evidence_put(ALICE, "T1", "strategy.md", INVALID["strategy.md"])
        assert not rec.valid and rec.problems
        status = await e.task_status("T1")
        assert not status.gate.passed
        assert status.as_dict()["hints"], "the status tells the agent what the artifact needs"
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_INVALID"
        # Recording it again, valid, passes the gate.
        await put_valid(e, ALICE, "T1", Phase.STRATEGIZE)
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.SPEC


async def test_a_skip_is_refused_counted_and_ledgered_and_the_task_stays(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await put_valid(e, ALICE, "T1", Phase.STRATEGIZE)
        for target in ("PLAN", "IMPLEMENT", "DONE"):
            with pytest.raises(PhasegateError) as err:
                await e.phase_advance(ALICE, "T1", target)
            assert err.value.code == "PHASE_SKIP"
            assert err.value.details["next"] == "SPEC"
        skips = [x for x in await entries(e, "T1") if x.type == "phase.skip_blocked"]
        assert [s.data["to"] for s in skips] == ["PLAN", "IMPLEMENT", "DONE"]
        assert (await e.counters())["phase_skips_attempted"] == 3
        assert (await e.task_status("T1")).task.phase is Phase.STRATEGIZE
        # The explicit next phase is not a skip.
        assert (await e.phase_advance(ALICE, "T1", "spec")).task.phase is Phase.SPEC
        assert await e.replay_equals_store()


@pytest.mark.parametrize("target", ["STRATEGIZE", "SPEC", "NOWHERE", ""])
async def test_advance_to_a_phase_not_ahead_or_not_a_phase_is_an_invalid_argument(
    tmp_path: Path, target: str
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.SPEC)
        before = await types(e)
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1", target)
        assert err.value.code == "INVALID_ARGUMENT"
        assert await types(e) == before


async def test_after_a_backtrack_evidence_from_the_old_epoch_no_longer_satisfies_a_gate(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.PLAN)
        back = await e.phase_backtrack(ALICE, "T1", "STRATEGIZE", "the problem was misread")
        assert back.task.phase is Phase.STRATEGIZE and back.task.epoch == 1
        # strategy.md is still on record, valid, but from epoch 0.
        old = (await e.evidence_list("T1", "STRATEGIZE"))[0]
        assert old.valid and old.epoch == 0
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_MISSING"
        await put_valid(e, ALICE, "T1", Phase.STRATEGIZE)
        await e.phase_advance(ALICE, "T1")
        # Downstream phases re-run with fresh evidence too: SPEC's old spec.md is stale.
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_MISSING"
        backtracks = [x for x in await entries(e, "T1") if x.type == "phase.backtracked"]
        assert len(backtracks) == 1
        assert backtracks[0].data["reason"] == "the problem was misread"
        assert (backtracks[0].data["from"], backtracks[0].data["to"]) == ("PLAN", "STRATEGIZE")
        assert (await e.counters())["phase_backtracks"] == 1
        assert await e.replay_equals_store()


@pytest.mark.parametrize("target", ["PLAN", "IMPLEMENT", "NOWHERE"])
async def test_backtrack_to_a_phase_not_behind_is_an_invalid_argument(
    tmp_path: Path, target: str
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.PLAN)
        before = await types(e)
        with pytest.raises(PhasegateError) as err:
            await e.phase_backtrack(ALICE, "T1", target, "why not")
        assert err.value.code == "INVALID_ARGUMENT"
        assert await types(e) == before


async def test_a_backtrack_needs_a_reason(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.SPEC)
        for reason in ("", "   ", "bad\x00reason", "x" * 5000):
            with pytest.raises(PhasegateError) as err:
                await e.phase_backtrack(ALICE, "T1", "STRATEGIZE", reason)
            assert err.value.code == "INVALID_ARGUMENT"
        assert (await e.task_status("T1")).task.epoch == 0


async def test_agent_written_test_results_do_not_satisfy_verify_even_with_good_numbers(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)
        diff_sha = (await e.evidence_list("T1", "IMPLEMENT"))[0].sha256
        forged = {
            "passed": 120,
            "failed": 0,
            "errors": 0,
            "skipped": 0,
            "exit_code": 0,
            "duration_s": 3.5,
            "subject_sha256": diff_sha,
            "command": ["python", "-m", "pytest"],
        }
        rec = await e.evidence_put(ALICE, "T1", "test_results.json", json.dumps(forged))
        assert rec.valid and rec.producer == "agent"  # the shape is fine; the producer is not
        await e.evidence_put(ALICE, "T1", "build_output.log", "120 passed\n")
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_INVALID"
        problems = err.value.details["gate"]["problems"]
        assert {p["artifact"] for p in problems} == {"test_results.json", "build_output.log"}
        assert (await e.task_status("T1")).task.phase is Phase.VERIFY


async def test_server_results_for_an_older_diff_are_refused_once_the_diff_changes(
    tmp_path: Path, project: Path
) -> None:
    async with enforcer_at(tmp_path / "state", Config(verify=verify_config(project))) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.IMPLEMENT)
        await e.evidence_put(ALICE, "T1", "git_diff.patch", DIFF)
        first = await e.verify_run(ALICE, "T1")  # verify_run is allowed in IMPLEMENT
        assert first["passed"] and first["results"]["passed"] == 1
        # The change moves on after the run, still in IMPLEMENT: the results speak of DIFF.
        new_diff = await e.evidence_put(ALICE, "T1", "git_diff.patch", DIFF_2)
        await e.phase_advance(ALICE, "T1")
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_INVALID"
        again = await e.verify_run(ALICE, "T1")
        assert again["results"]["subject_sha256"] == new_diff.sha256
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.REVIEW


async def test_verify_results_are_stale_after_a_backtrack_and_a_new_diff_until_verify_reruns(
    tmp_path: Path, project: Path
) -> None:
    async with enforcer_at(tmp_path / "state", Config(verify=verify_config(project))) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.REVIEW)
        await e.phase_backtrack(ALICE, "T1", "IMPLEMENT", "review found a bug")
        new_diff = await e.evidence_put(ALICE, "T1", "git_diff.patch", DIFF_2)
        await e.phase_advance(ALICE, "T1")
        status = await e.task_status("T1")
        assert status.task.phase is Phase.VERIFY and not status.gate.passed
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        # The results on record are from epoch 0, about the old diff.
        assert err.value.code == "EVIDENCE_MISSING"
        assert (await e.task_status("T1")).task.phase is Phase.VERIFY
        run = await e.verify_run(ALICE, "T1")
        assert run["passed"] and run["results"]["subject_sha256"] == new_diff.sha256
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.REVIEW
        assert await e.replay_equals_store()


BAD_NAMES = ["../x", "a/b", "", "..", ".hidden", "x" * 10240, "a\\b", "spec.md/", "name\x00"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n[:12]))
async def test_evidence_names_that_are_not_plain_file_names_are_refused_and_write_nothing(
    tmp_path: Path, name: str
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await entries(e)
        with pytest.raises(PhasegateError) as err:
            await e.evidence_put(ALICE, "T1", name, "# Problem\n# Objectives\n")
        assert err.value.code == "INVALID_ARGUMENT"
        assert await entries(e) == before
        assert files_under(tmp_path / "evidence") == []
        assert files_under(tmp_path / "blobs") == []
        assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


async def test_recorded_evidence_carries_its_digest_size_epoch_and_producer(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        name, content = VALID[Phase.STRATEGIZE]
        rec = await e.evidence_put(ALICE, "T1", name, content)
        data = content.encode()
        assert (rec.task, rec.phase, rec.name, rec.epoch) == ("T1", "STRATEGIZE", name, 0)
        assert rec.size == len(data) and rec.producer == "agent" and rec.valid
        assert (tmp_path / "evidence" / "T1" / "STRATEGIZE" / name).read_bytes() == data
        got, raw = await e.evidence_read("T1", "strategize", name)
        assert got == rec and raw == data
        entry = (await entries(e, "T1"))[-1]
        assert entry.type == "evidence.recorded" and entry.data["sha256"] == rec.sha256
        assert entry.refs["lease_token"] == 1
        with pytest.raises(PhasegateError) as err:
            await e.evidence_read("T1", "SPEC", name)
        assert err.value.code == "NOT_FOUND"


async def test_oversized_or_absurdly_nested_content_is_refused_cleanly(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        with pytest.raises(PhasegateError) as err:
            await e.evidence_put(ALICE, "T1", "notes.md", "x" * (2 * 1024 * 1024 + 1))
        assert err.value.code == "INVALID_ARGUMENT"
        # JSON nested past the parser's recursion limit is an invalid artifact, not a crash.
        rec = await e.evidence_put(ALICE, "T1", "review_rubric.json", "[" * 200_000)
        assert not rec.valid and rec.problems
        assert await e.replay_equals_store()


async def test_a_mutating_call_from_another_agent_is_refused_while_the_lease_is_held(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.SPEC)
        await put_valid(e, ALICE, "T1", Phase.SPEC)
        before = await entries(e, "T1")
        blobs = files_under(tmp_path / "blobs")
        calls = [
            e.evidence_put(BOB, "T1", "spec.md", "# Acceptance Criteria\n- mine\n"),
            e.phase_advance(BOB, "T1"),
            e.phase_backtrack(BOB, "T1", "STRATEGIZE", "I prefer my own strategy"),
            e.prompt_attest(BOB, "T1", "I am bob"),
            e.lease_renew(BOB, "T1"),
        ]
        for call in calls:
            with pytest.raises(PhasegateError) as err:
                await call
            assert err.value.code == "LEASE_HELD"
            assert err.value.details["holder"] == "alice/a1"
        assert (await e.lease_release(BOB, "T1"))["released"] is False
        await e.flush_refusals(everything=True)
        after = await entries(e, "T1")
        assert after[: len(before)] == before
        # Bob's refusals are identical records: the first, then one entry counting the rest.
        added = after[len(before) :]
        assert {x.type for x in added} == {"lease.contended"}
        assert sum(refusals_of(x) for x in added) == len(calls)
        # The refused evidence left no blob behind, not even under a temporary name.
        assert files_under(tmp_path / "blobs") == blobs
        assert (await e.counters())["lease_contention"] == len(calls)
        status = await e.task_status("T1")
        assert status.task.phase is Phase.SPEC and status.task.epoch == 0
        assert await e.replay_equals_store()


async def test_task_start_refuses_a_duplicate_id_a_bad_id_and_a_bad_title(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        cases = [
            ("t", "T1", "CONFLICT"),
            ("t", "../T2", "INVALID_ARGUMENT"),
            ("", "T3", "INVALID_ARGUMENT"),
            ("bell\x07", "T4", "INVALID_ARGUMENT"),
        ]
        for title, task, code in cases:
            with pytest.raises(PhasegateError) as err:
                await e.task_start(BOB, title, task)
            assert err.value.code == code
        generated = await e.task_start(BOB, "no id given")
        assert generated.task.task.startswith("T-")
        listed = {t["task"]: t for t in await e.task_list()}
        assert set(listed) == {"T1", generated.task.task}
        assert listed["T1"]["holder"] == "alice/a1"
        for call in (e.task_status("T9"), e.phase_advance(ALICE, "T9")):
            with pytest.raises(PhasegateError) as err:
                await call
            assert err.value.code == "NOT_FOUND"


async def test_task_list_filters_by_phase_and_shows_no_holder_once_the_lease_expired(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with enforcer_at(tmp_path, clock=clock) as e:
        await e.task_start(ALICE, "a", "T1")
        await e.task_start(ALICE, "b", "T2")
        await advance_to(e, ALICE, "T2", Phase.SPEC)
        assert [t["task"] for t in await e.task_list("SPEC")] == ["T2"]
        clock.advance(301)
        assert all(t["holder"] is None for t in await e.task_list())
        with pytest.raises(PhasegateError) as err:
            await e.task_list("LATER")
        assert err.value.code == "INVALID_ARGUMENT"


async def test_task_status_sees_every_change_at_once_though_it_caches(tmp_path: Path) -> None:
    # task_status reuses a status while SQLite's data_version is unchanged: a write by this
    # process, a write by another process's connection, and the lapse of time (the lease
    # expiring) must each show in the very next status.
    clock = ManualClock()
    state = tmp_path / "state"
    async with enforcer_at(state, clock=clock) as e:
        await e.task_start(ALICE, "cache", "T1")
        first = await e.task_status("T1")
        assert first.gate.passed is False and first.lease is not None and first.lease.active
        assert await e.task_status("T1") is first  # unchanged: served from the cache

        await put_valid(e, ALICE, "T1", Phase.STRATEGIZE)
        assert (await e.task_status("T1")).gate.passed is True  # our own write

        async with enforcer_at(state, clock=clock) as other:  # its own connections
            await other.phase_advance(ALICE, "T1")
        assert (await e.task_status("T1")).task.phase is Phase.SPEC  # another connection's

        lease = (await e.task_status("T1")).lease
        assert lease is not None and lease.active and lease.expires_at is not None
        clock.advance(seconds=e.config.leases.ttl_s + 1)  # nothing written: only time passes
        lapsed = (await e.task_status("T1")).lease
        assert lapsed is not None and not lapsed.active
