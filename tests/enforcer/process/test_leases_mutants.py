"""Lease rules at the edges a weakened comparison would pass: holder identity is exactly actor
and instance (no ordering of names), and a lease extended for a run lasts at least as long as
asked, to the second."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE

import pytest
from phasegate_testkit import ALICE, BOB, enforcer_at, entries

from enforcer.clock import ManualClock, rfc3339
from enforcer.config import Config, GateConfig, LeaseConfig
from enforcer.errors import (
    InvalidArgumentError,
    LeaseHeldError,
    LeaseRequiredError,
    StaleTokenError,
)
from enforcer.ledger.ops import Ops
from enforcer.model import Caller
from enforcer.phases import ORDER, Phase
from enforcer.process.leases import LeaseRow, pid_alive

START = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = Config(leases=LeaseConfig(ttl_s=60))


@pytest.mark.parametrize(
    ("holder", "other"),
    [
        (Caller("bob", instance="i1"), Caller("alice", instance="i1")),  # other sorts first
        (Caller("alice", instance="i1"), Caller("bob", instance="i1")),  # other sorts after
        (Caller("alice", instance="i2"), Caller("alice", instance="i1")),
        (Caller("alice", instance="i1"), Caller("alice", instance="i2")),
    ],
    ids=["actor-below", "actor-above", "instance-below", "instance-above"],
)
async def test_only_the_same_actor_and_instance_hold_a_lease(
    tmp_path: Path, holder: Caller, other: Caller
) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(holder, "t", "T1")
        with pytest.raises(LeaseHeldError) as raised:
            await e.evidence_put(other, "T1", "notes.md", "- x\n")
        assert raised.value.details["holder"] == f"{holder.actor}/{holder.instance}"
        with pytest.raises(LeaseHeldError):
            await e.lease_acquire(other, "T1")
        assert await e.evidence_list("T1") == []
        rec = await e.evidence_put(holder, "T1", "notes.md", "- x\n")  # the holder still may
        assert rec.name == "notes.md"


@pytest.mark.parametrize(("seconds", "lasts"), [(10.5, 11), (10.0, 11), (0.2, 1), (600.9, 601)])
async def test_a_lease_extended_for_a_run_lasts_at_least_that_long(
    tmp_path: Path, seconds: float, lasts: int
) -> None:
    caller = Caller("alice", instance="i1")
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(caller, "t", "T1")
        ts = rfc3339(START)
        short = LeaseRow("T1", "STRATEGIZE", "alice", "i1", None, None, "x", 1, ts)
        row = await e.store.write(
            lambda tx: e.leases.extend_to(tx, Ops(ts=ts, caller=caller), short, seconds)
        )
        want = rfc3339(START.replace(second=lasts % 60, minute=lasts // 60))
        assert row.expires_at == want
        assert row.expires_at is not None and row.expires_at > rfc3339(START)


def _dead_pid_below_ours() -> int:
    """A pid smaller than this process's that names no process (pids below ours were used
    before us; most of them have ended)."""
    for pid in range(os.getpid() - 1, 300, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.fail("no free pid below ours")


async def test_a_lease_of_a_dead_process_with_a_smaller_pid_is_taken_over(tmp_path: Path) -> None:
    # pids are not ordered by age in any useful way: a dead holder is gone whatever its pid.
    gone = Caller("carol", instance="c1", pid=_dead_pid_below_ours(), host=socket.gethostname())
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(gone, "t", "T1")
        taken = await e.lease_acquire(BOB, "T1")
        assert taken.holder == "bob/b1"
        last = (await entries(e, "T1"))[-1]
        assert last.type == "lease.acquired" and last.data["takeover"] == "holder_gone"


@pytest.mark.parametrize("offset", [1, 5, -1])
async def test_a_token_other_than_the_current_one_is_stale(tmp_path: Path, offset: int) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        status = await e.task_start(ALICE, "t", "T1")
        assert status.lease is not None
        current = status.lease.fencing_token
        with pytest.raises(StaleTokenError) as raised:
            await e.evidence_put(ALICE, "T1", "notes.md", "- x\n", token=current + offset)
        assert raised.value.details == {"current": current}
        assert await e.evidence_list("T1") == []
        await e.evidence_put(ALICE, "T1", "notes.md", "- x\n", token=current)


async def test_acquiring_a_released_or_own_expired_lease_is_no_takeover(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.lease_release(ALICE, "T1")
        await e.lease_acquire(BOB, "T1")  # a released lease: free, nobody's to take over
        assert "takeover" not in (await entries(e, "T1"))[-1].data
        clock.advance(61)
        await e.lease_acquire(BOB, "T1")  # bob's own lease, expired: his again, no takeover
        last = (await entries(e, "T1"))[-1]
        assert last.type == "lease.acquired" and "takeover" not in last.data
        clock.advance(61)
        await e.lease_acquire(ALICE, "T1")  # bob's expired lease taken by alice
        assert (await entries(e, "T1"))[-1].data["takeover"] == "expired"


async def test_a_lease_that_already_lasts_long_enough_is_not_extended(tmp_path: Path) -> None:
    caller = Caller("alice", instance="i1")
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(caller, "t", "T1")
        ts = rfc3339(START)
        before = await entries(e)
        for lasts in (11, 3600):  # exactly what is asked (10 s + the rounding second), and more
            until = rfc3339(START + timedelta(seconds=lasts))
            long = LeaseRow("T1", "STRATEGIZE", "alice", "i1", None, None, "x", 1, until)
            row = await e.store.write(
                lambda tx, r=long: e.leases.extend_to(tx, Ops(ts=ts, caller=caller), r, 10.0)
            )
            assert row == long  # unchanged, never shortened
        assert await entries(e) == before  # and nothing was ledgered


@pytest.mark.parametrize(("ttl_s", "ok"), [(1, True), (86_400, True), (0, False), (86_401, False)])
async def test_a_lease_ttl_is_from_1_second_to_a_day(tmp_path: Path, ttl_s: int, ok: bool) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.lease_release(ALICE, "T1")  # a held lease is returned as it is: start afresh
        for call in (e.lease_acquire, e.lease_renew):
            if ok:
                view = await call(ALICE, "T1", ttl_s)
                assert view.expires_at == rfc3339(START + timedelta(seconds=ttl_s))
            else:
                with pytest.raises(InvalidArgumentError):
                    await call(ALICE, "T1", ttl_s)


def _dead_pid_above_ours() -> int:
    for pid in range(os.getpid() + 1, os.getpid() + 100_000):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.fail("no free pid above ours")


async def test_a_lease_of_a_dead_process_with_a_greater_pid_is_taken_over(tmp_path: Path) -> None:
    gone = Caller("carol", instance="c1", pid=_dead_pid_above_ours(), host=socket.gethostname())
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(gone, "t", "T1")
        assert (await e.lease_acquire(BOB, "T1")).holder == "bob/b1"


# A holder that records every catchable signal it receives, and says which once its stdin
# closes (a signal sent before the close is handled before the read sees the end).
_RECORDER = """
import signal, sys
got = []
for n in range(1, signal.NSIG):
    if n not in (signal.SIGKILL, signal.SIGSTOP):
        try:
            signal.signal(n, lambda s, f: got.append(s))
        except (OSError, ValueError):
            pass
sys.stdin.read()
print(got)
"""


async def test_asking_whether_a_holder_lives_never_signals_it(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", _RECORDER], stdin=PIPE, stdout=PIPE, text=True)
    try:
        carol = Caller("carol", instance="c1", pid=live.pid, host=socket.gethostname())
        async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
            await e.task_start(carol, "t", "T1")
            for _ in range(3):
                with pytest.raises(LeaseHeldError):
                    await e.lease_acquire(BOB, "T1")
        assert live.poll() is None  # checked with signal 0: still running
        out, _ = live.communicate(input="", timeout=30)
        assert out.strip() == "[]"  # and no signal at all reached it
    finally:
        if live.poll() is None:
            live.kill()
            live.wait(timeout=30)


def test_a_process_this_one_may_not_signal_is_alive() -> None:
    """A holder's process owned by another user cannot be signalled (EPERM), but it exists: its
    lease is not taken over. As root every process may be signalled, so a child that gave up
    root asks about pid 1 (init, root's)."""
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            os.kill(1, 0)
        assert pid_alive(1)
        return
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status only
        code = 2
        try:
            os.setgid(65534)
            os.setuid(65534)  # nobody
            try:
                os.kill(1, 0)
                code = 3  # not the case under test
            except PermissionError:
                code = 0 if pid_alive(1) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


async def test_implicit_and_explicit_grants_say_which_and_what_they_took_over(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.lease_release(ALICE, "T1")
        await e.evidence_put(BOB, "T1", "notes.md", "- x\n")  # a free lease, taken by a write
        first = [x for x in await entries(e, "T1") if x.type == "lease.acquired"][-1]
        assert first.data["implicit"] is True and "takeover" not in first.data
        clock.advance(61)
        await e.evidence_put(ALICE, "T1", "notes.md", "- y\n")  # bob's, expired
        taken = [x for x in await entries(e, "T1") if x.type == "lease.acquired"][-1]
        assert taken.data["implicit"] is True and taken.data["takeover"] == "expired"
        await e.lease_release(ALICE, "T1")
        await e.lease_acquire(BOB, "T1")
        asked = [x for x in await entries(e, "T1") if x.type == "lease.acquired"][-1]
        assert asked.data["implicit"] is False and "takeover" not in asked.data


def test_a_lease_row_cannot_be_changed() -> None:
    row = LeaseRow("T1", "SPEC", "alice", "i1", None, None, "x", 1, rfc3339(START))
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.token = 2  # type: ignore[misc]


async def test_releasing_someone_elses_lease_releases_nothing(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await entries(e, "T1")
        await e.lease_release(BOB, "T1")  # idempotent for bob: nothing of his to release
        assert await entries(e, "T1") == before
        with pytest.raises(LeaseHeldError):
            await e.evidence_put(BOB, "T1", "notes.md", "- x\n")


async def test_a_lease_is_over_at_its_expiry_instant(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        await e.task_start(ALICE, "t", "T1")
        clock.advance(59)
        with pytest.raises(LeaseHeldError):
            await e.lease_acquire(BOB, "T1")
        clock.advance(1)  # exactly the TTL: expires_at == now, the lease is over
        assert (await e.lease_acquire(BOB, "T1")).holder == "bob/b1"


# No gate anywhere: a task reaches DONE by advancing, and DONE's lease row never exists (the
# move into DONE grants none).
UNGATED = Config(
    leases=LeaseConfig(ttl_s=60),
    gates={p.value: GateConfig(artifacts=[]) for p in ORDER if p is not Phase.DONE},
)


async def test_a_phase_with_no_lease_row_has_nothing_to_renew_or_release_and_is_free(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, UNGATED, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        while (await e.task_status("T1")).task.phase is not Phase.DONE:
            await e.phase_advance(ALICE, "T1")
        rows = await e.store.read(
            lambda tx: tx.all("SELECT phase FROM leases WHERE task = 'T1' AND phase = 'DONE'")
        )
        assert rows == []
        before = await entries(e)
        with pytest.raises(LeaseRequiredError) as raised:
            await e.lease_renew(ALICE, "T1")
        assert raised.value.code == "LEASE_REQUIRED"
        assert raised.value.message == "no lease on T1 DONE to renew"
        assert await e.lease_release(ALICE, "T1") == {
            "task": "T1",
            "phase": "DONE",
            "released": False,
        }
        assert await entries(e) == before  # neither wrote anything
        granted = await e.lease_acquire(BOB, "T1")
        assert (granted.holder, granted.fencing_token, granted.active) == ("bob/b1", 1, True)
        (acquired,) = (await entries(e))[len(before) :]
        assert acquired.type == "lease.acquired" and "takeover" not in acquired.data


@pytest.mark.parametrize("expired", [False, True], ids=["active", "expired"])
async def test_a_move_never_takes_the_next_phase_from_another_live_holder(
    tmp_path: Path, expired: bool
) -> None:
    """No tool lets an agent hold a phase the task is not in, but a race between a move and an
    acquire could leave one: here bob's lease on SPEC is granted through the real lease rules
    while the task is still in STRATEGIZE. alice's move to SPEC then leaves bob's live lease
    alone (she gets none); an expired one is hers, with the next token."""
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, UNGATED, clock) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.leasing.work.transact(
            BOB, lambda tx, ops: e.leases.acquire(tx, ops, "T1", "SPEC", 600)
        )
        if expired:
            await e.lease_renew(ALICE, "T1", ttl_s=3600)  # alice's own lease outlives bob's
            clock.advance(601)
        moved = await e.phase_advance(ALICE, "T1")
        assert moved.task.phase is Phase.SPEC
        advanced = [x for x in await entries(e, "T1") if x.type == "phase.advanced"][-1]
        assert advanced.data["released_token"] == 1
        status = await e.task_status("T1")
        assert status.lease is not None
        if expired:
            assert advanced.data["lease"]["token"] == 2
            assert advanced.data["lease"]["implicit"] is True  # granted by the move, not asked
            assert (status.lease.holder, status.lease.fencing_token) == ("alice/a1", 2)
        else:
            assert advanced.data["lease"] is None
            assert (status.lease.holder, status.lease.fencing_token) == ("bob/b1", 1)
            with pytest.raises(LeaseHeldError):
                await e.evidence_put(ALICE, "T1", "notes.md", "- x\n")
        assert await e.replay_equals_store()
