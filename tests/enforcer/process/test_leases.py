"""Leases with fencing tokens: one holder per (task, phase), checked inside every write."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from phasegate_testkit import ALICE, BOB, ROOT, VALID, advance_to, enforcer_at, entries, files_under

from enforcer.clock import ManualClock
from enforcer.config import Config, LeaseConfig
from enforcer.errors import PhasegateError
from enforcer.ledger.projection import refusals_of
from enforcer.ledger.verify import verify_state
from enforcer.model import Caller
from enforcer.phases import Phase

HOST = socket.gethostname()
START = datetime(2026, 1, 1, tzinfo=UTC)
TTL = 60
CONFIG = Config(leases=LeaseConfig(ttl_s=TTL))


async def code_of(call: Any) -> str | None:
    try:
        await call
    except PhasegateError as err:
        return err.code
    return None


def tokens_granted(log: list[Any], task: str, phase: str) -> list[int]:
    """Every fencing token granted on (task, phase), in ledger order."""
    out = []
    for x in log:
        if x.subject.get("task") != task:
            continue
        if x.type == "lease.acquired" and x.subject["phase"] == phase:
            out.append(x.data["token"])
        elif (
            x.type in ("phase.advanced", "phase.backtracked")
            and x.data["to"] == phase
            and x.data.get("lease") is not None
        ):
            out.append(x.data["lease"]["token"])
    return out


# ---------------------------------------------------------------- contention


async def test_sixteen_concurrent_acquirers_get_exactly_one_lease_and_tokens_only_grow(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        await e.task_start(ROOT, "contended", "T1")
        await e.lease_release(ROOT, "T1")
        agents = [Caller(f"agent{i}", instance=f"i{i}") for i in range(16)]
        winners_tokens = []
        for _round in range(4):
            results = await asyncio.gather(
                *(e.lease_acquire(a, "T1") for a in agents), return_exceptions=True
            )
            won = [
                (a, r)
                for a, r in zip(agents, results, strict=True)
                if not isinstance(r, BaseException)
            ]
            lost = [r for r in results if isinstance(r, BaseException)]
            assert len(won) == 1
            assert len(lost) == 15
            assert all(isinstance(r, PhasegateError) and r.code == "LEASE_HELD" for r in lost)
            winner, lease = won[0]
            assert lease.holder == winner.holder and lease.active
            winners_tokens.append(lease.fencing_token)
            # Half the rounds the winner lets go, the other half its lease runs out.
            if _round % 2 == 0:
                assert (await e.lease_release(winner, "T1"))["released"] is True
            else:
                clock.advance(TTL + 1)
        assert winners_tokens == sorted(set(winners_tokens))
        assert winners_tokens[0] == 2  # task_start took token 1
        await e.flush_refusals(everything=True)
        log = await entries(e, "T1")
        # A loser refused by the same winner twice is one entry counting both.
        assert sum(refusals_of(x) for x in log if x.type == "lease.contended") == 4 * 15
        assert tokens_granted(log, "T1", "STRATEGIZE") == [1, *winners_tokens]
        assert (await e.counters())["lease_contention"] == 60
        assert await e.replay_equals_store()


ACQUIRE_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, socket, sys
    from datetime import datetime
    from pathlib import Path

    from enforcer.clock import ManualClock
    from enforcer.config import Config
    from enforcer.errors import PhasegateError
    from enforcer.model import Caller
    from enforcer.runtime import open_runtime
    from enforcer.service import Enforcer


    async def main() -> None:
        state, task, index, start = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
        clock = ManualClock(datetime.fromisoformat(start))
        async with open_runtime(Path(state), config=Config(), clock=clock) as rt:
            e = Enforcer(rt)
            pid = os.getpid()
            me = Caller(f"agent{index}", instance=f"p{pid}", pid=pid, host=socket.gethostname())
            print("ready", flush=True)
            sys.stdin.readline()  # the start barrier: every process is open and waiting
            try:
                lease = await e.lease_acquire(me, task)
                out = {"ok": True, "token": lease.fencing_token, "holder": lease.holder}
            except PhasegateError as err:
                out = {"ok": False, "code": err.code}
            print(json.dumps(out), flush=True)
            sys.stdin.readline()  # stay alive (a live holder pid) until every process has tried


    asyncio.run(main())
    """
)


@pytest.mark.timeout(90)
def test_sixteen_processes_racing_for_one_lease_get_exactly_one_winner(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def setup() -> None:
        async with enforcer_at(state, CONFIG, ManualClock(START)) as e:
            await e.task_start(ROOT, "contended", "T1")
            await e.lease_release(ROOT, "T1")

    asyncio.run(setup())
    script = tmp_path / "acquire.py"
    script.write_text(ACQUIRE_SCRIPT)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(state), "T1", str(i), START.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for i in range(16)
    ]
    outcomes: list[dict[str, Any]] = []
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
        for p in procs:  # release the barrier: all at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line, p.stderr.read() if p.stderr else ""
            outcomes.append(json.loads(line))
    finally:
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            p.wait(timeout=60)
            if p.stdout is not None:
                p.stdout.close()
            if p.stderr is not None:
                p.stderr.close()
    assert all(p.returncode == 0 for p in procs)
    winners = [o for o in outcomes if o["ok"]]
    assert len(winners) == 1
    assert winners[0]["token"] == 2
    assert sorted(o.get("code", "") for o in outcomes if not o["ok"]) == ["LEASE_HELD"] * 15

    async def check() -> None:
        async with enforcer_at(state, CONFIG, ManualClock(START)) as e:
            status = await e.task_status("T1")
            assert status.lease is not None and status.lease.holder == winners[0]["holder"]
            log = await entries(e, "T1")
            assert tokens_granted(log, "T1", "STRATEGIZE") == [1, 2]
            assert [x.type for x in log].count("lease.contended") == 15
            assert await e.replay_equals_store()

    asyncio.run(check())
    assert verify_state(state).entries > 0


# ---------------------------------------------------------------- expiry and fencing


async def test_a_holder_paused_past_its_ttl_is_refused_with_lease_expired_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await entries(e, "T1")
        clock.advance(TTL + 1)
        name, content = VALID[Phase.STRATEGIZE]
        for call in (
            e.evidence_put(ALICE, "T1", name, content),
            e.phase_advance(ALICE, "T1"),
            e.prompt_attest(ALICE, "T1", "the prompt"),
            e.lease_renew(ALICE, "T1"),
        ):
            assert await code_of(call) == "LEASE_EXPIRED"
        after = await entries(e, "T1")
        assert after[: len(before)] == before
        assert {x.type for x in after[len(before) :]} == {"lease.expired"}
        assert await e.evidence_list("T1") == []
        assert files_under(tmp_path / "evidence") == []
        status = await e.task_status("T1")
        assert (status.task.phase, status.task.epoch) == (Phase.STRATEGIZE, 0)
        # A fresh lease (a new token) puts the holder back to work.
        lease = await e.lease_acquire(ALICE, "T1")
        assert lease.fencing_token == 2
        assert (await e.evidence_put(ALICE, "T1", name, content)).valid
        assert await e.replay_equals_store()


async def test_a_paused_holder_presenting_its_old_token_after_a_takeover_gets_stale_token(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        old = (await e.task_start(ALICE, "t", "T1")).lease
        assert old is not None
        clock.advance(TTL + 1)
        name, content = VALID[Phase.STRATEGIZE]
        taken = await e.evidence_put(BOB, "T1", name, content)  # bob takes the free lease
        status = await e.task_status("T1")
        assert status.lease is not None and status.lease.holder == "bob/b1"
        assert status.lease.fencing_token == old.fencing_token + 1
        before = await entries(e)
        token = old.fencing_token
        for call in (
            e.evidence_put(ALICE, "T1", name, "# Problem\nmine\n# Objectives\n", token=token),
            e.phase_advance(ALICE, "T1", token=token),
            e.prompt_attest(ALICE, "T1", "p", token=token),
            e.evidence_put(BOB, "T1", name, content, token=token),  # anyone's, not just hers
        ):
            assert await code_of(call) == "STALE_TOKEN"
        assert await entries(e) == before  # a stale token leaves nothing at all
        # Without the token, alice meets bob's lease.
        assert await code_of(e.evidence_put(ALICE, "T1", name, content)) == "LEASE_HELD"
        (rec,) = await e.evidence_list("T1")
        assert rec.sha256 == taken.sha256
        assert (tmp_path / "evidence" / "T1" / "STRATEGIZE" / name).read_text() == content
        # Bob's own token works.
        assert (await e.phase_advance(BOB, "T1", token=token + 1)).task.phase is Phase.SPEC


async def test_fencing_tokens_strictly_increase_per_phase_and_are_never_reused(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        await e.task_start(ALICE, "t", "T1")  # 1
        await e.lease_release(ALICE, "T1")
        await e.lease_acquire(BOB, "T1")  # 2
        clock.advance(TTL + 1)
        await e.lease_acquire(ALICE, "T1")  # 3, after expiry
        await e.lease_break(ROOT, "T1", "stuck agent")
        await e.lease_acquire(BOB, "T1")  # 4, after a break
        clock.advance(TTL + 1)
        await e.lease_acquire(BOB, "T1")  # 5, the same holder after its own expiry
        await advance_to(e, BOB, "T1", Phase.SPEC)  # SPEC: 1 (handed over)
        await e.phase_backtrack(BOB, "T1", "STRATEGIZE", "again")  # 6 (handed back)
        await advance_to(e, BOB, "T1", Phase.SPEC)  # SPEC: 2
        log = await entries(e, "T1")
        assert tokens_granted(log, "T1", "STRATEGIZE") == [1, 2, 3, 4, 5, 6]
        assert tokens_granted(log, "T1", "SPEC") == [1, 2]
        ids = [x.data["lease_id"] for x in log if x.type == "lease.acquired"]
        assert len(ids) == len(set(ids))
        assert await e.replay_equals_store()


# ---------------------------------------------------------------- break, renew, release


async def test_an_admin_lease_break_is_ledgered_and_a_non_admin_break_is_forbidden(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        token = (await e.task_start(ALICE, "t", "T1")).lease
        assert token is not None
        before = await entries(e)
        for caller in (ALICE, BOB, Caller("viewer", role="viewer")):
            assert await code_of(e.lease_break(caller, "T1", "mine now")) == "FORBIDDEN"
        assert await entries(e) == before
        broken = await e.lease_break(ROOT, "T1", "agent stuck for an hour")
        assert broken == {"task": "T1", "phase": "STRATEGIZE", "broken": True, "holder": "alice/a1"}
        last = (await entries(e))[-1]
        assert last.type == "lease.broken" and last.actor == "root"
        assert last.data["reason"] == "agent stuck for an hour"
        assert last.data["holder"] == "alice/a1"
        status = await e.task_status("T1")
        assert status.lease is not None and status.lease.holder is None
        # Breaking a free lease is a no-op, not an error.
        assert (await e.lease_break(ROOT, "T1", "again"))["broken"] is False
        # The broken holder's token fences its writes; another agent takes over.
        name, content = VALID[Phase.STRATEGIZE]
        old = token.fencing_token
        assert await code_of(e.evidence_put(ALICE, "T1", name, content, token=old)) == (
            "STALE_TOKEN"
        )
        assert await e.evidence_list("T1") == []
        assert (await e.lease_acquire(BOB, "T1")).fencing_token == old + 1
        assert await e.replay_equals_store()


async def test_renew_extends_a_live_lease_and_fails_once_it_expired(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with enforcer_at(tmp_path, CONFIG, clock) as e:
        first = (await e.task_start(ALICE, "t", "T1")).lease
        assert first is not None
        clock.advance(TTL - 1)
        renewed = await e.lease_renew(ALICE, "T1", ttl_s=120)
        assert renewed.fencing_token == first.fencing_token
        assert renewed.expires_at == "2026-01-01T00:02:59.000000Z"
        clock.advance(100)  # past the original expiry, within the renewed one
        assert (await e.evidence_put(ALICE, "T1", "notes.md", "still mine")).valid
        assert await code_of(e.lease_renew(BOB, "T1")) == "LEASE_HELD"
        clock.advance(21)
        assert await code_of(e.lease_renew(ALICE, "T1")) == "LEASE_EXPIRED"
        assert await code_of(e.lease_renew(BOB, "T1")) == "LEASE_REQUIRED"
        await e.lease_release(ALICE, "T1")
        assert await code_of(e.lease_renew(ALICE, "T1")) == "LEASE_REQUIRED"
        assert await e.replay_equals_store()


@pytest.mark.parametrize("ttl", [0, -5, 86_401, 10**12, "60", 1.5, True])
async def test_a_ttl_outside_one_second_to_one_day_is_an_invalid_argument(
    tmp_path: Path, ttl: Any
) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await entries(e)
        assert await code_of(e.lease_acquire(ALICE, "T1", ttl)) == "INVALID_ARGUMENT"
        assert await code_of(e.lease_renew(ALICE, "T1", ttl)) == "INVALID_ARGUMENT"
        assert await entries(e) == before


async def test_acquiring_a_lease_already_held_returns_it_unchanged(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        first = (await e.task_start(ALICE, "t", "T1")).lease
        before = await entries(e)
        again = await e.lease_acquire(ALICE, "T1")
        assert first is not None and again.fencing_token == first.fencing_token
        assert await entries(e) == before
        assert await code_of(e.lease_acquire(ALICE, "T404")) == "NOT_FOUND"


async def test_release_is_idempotent_and_hands_the_task_to_another_agent(tmp_path: Path) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.SPEC)
        status = await e.task_status("T1")
        assert status.lease is not None and status.lease.holder == "alice/a1"  # handed over
        assert (await e.lease_release(ALICE, "T1"))["released"] is True
        assert (await e.lease_release(ALICE, "T1"))["released"] is False
        assert [x.type for x in await entries(e, "T1")].count("lease.released") == 1
        # Bob works without managing leases: his first write takes the free lease.
        await advance_to(e, BOB, "T1", Phase.PLAN)
        status = await e.task_status("T1")
        assert status.lease is not None and status.lease.holder == "bob/b1"
        assert await code_of(e.evidence_put(ALICE, "T1", "plan.md", "1. a\n2. b\n")) == (
            "LEASE_HELD"
        )
        assert await e.replay_equals_store()


# ---------------------------------------------------------------- dead holders


async def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_over_at_once(
    tmp_path: Path,
) -> None:
    live = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
            await e.task_start(ROOT, "t", "T1")
            await e.lease_release(ROOT, "T1")
            carol = Caller("carol", instance="c1", pid=live.pid, host=HOST)
            held = await e.lease_acquire(carol, "T1")
            # Alive: the lease holds.
            assert await code_of(e.lease_acquire(BOB, "T1")) == "LEASE_HELD"
            live.stdin.close()  # type: ignore[union-attr]
            live.wait()
            # Gone (same host, pid no longer alive): taken over at once, no TTL to wait out.
            taken = await e.lease_acquire(BOB, "T1")
            assert taken.holder == "bob/b1" and taken.fencing_token == held.fencing_token + 1
            last = (await entries(e, "T1"))[-1]
            assert last.type == "lease.acquired" and last.data["takeover"] == "holder_gone"
            # The same for an implicit take by a write.
            await e.lease_release(BOB, "T1")
            await e.lease_acquire(carol, "T1")
            name, content = VALID[Phase.STRATEGIZE]
            assert (await e.evidence_put(ALICE, "T1", name, content)).valid
            # A dead pid on another host proves nothing: that lease holds.
            await e.lease_release(ALICE, "T1")
            remote = Caller("dave", instance="d1", pid=live.pid, host=HOST + ".elsewhere")
            await e.lease_acquire(remote, "T1")
            assert await code_of(e.lease_acquire(BOB, "T1")) == "LEASE_HELD"
            assert await e.replay_equals_store()
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()


# ---------------------------------------------------------------- the phase moves


async def test_advancing_hands_the_mover_the_next_phase_lease_and_frees_the_old_one(
    tmp_path: Path,
) -> None:
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.SPEC)
        rows = await e.store.read(
            lambda tx: tx.all("SELECT phase, actor, token FROM leases WHERE task = 'T1'")
        )
        assert sorted(rows) == [("SPEC", "alice", 1), ("STRATEGIZE", None, 1)]
        moved = [x for x in await entries(e, "T1") if x.type == "phase.advanced"][0]
        assert moved.data["released_token"] == 1 and moved.data["lease"]["token"] == 1
        back = await e.phase_backtrack(ALICE, "T1", "STRATEGIZE", "rethink")
        assert back.lease is not None and back.lease.holder == "alice/a1"
        assert back.lease.fencing_token == 2
        assert await e.replay_equals_store()


async def test_a_refused_write_undoes_its_implicit_lease_too(tmp_path: Path) -> None:
    """The implicit take and the write it guards commit together or not at all."""
    async with enforcer_at(tmp_path, CONFIG, ManualClock(START)) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.lease_release(ALICE, "T1")
        before = await entries(e, "T1")
        assert await code_of(e.phase_advance(BOB, "T1")) == "EVIDENCE_MISSING"
        status = await e.task_status("T1")
        assert status.lease is not None and status.lease.holder is None
        assert [x.type for x in (await entries(e, "T1"))[len(before) :]] == ["evidence.gate_failed"]
