"""The store contract: every `Store` implementation passes these same tests (DESIGN.md,
Scale-out). Each runs once on SQLite and once on PostgreSQL (`store_url`, tests/conftest.py).

"Servers" here are separate runtimes — separate stores, separate connections — over one
database and one state directory, as several `phasegate serve` processes are; they share an
injected clock so that expiry is decided by the test, not by sleeping.

Governed modules (drafts, versions, installs through several servers) have their contract in
test_contract_modules.py, on the same two stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from phasegate_testkit import (
    ALICE,
    BOB,
    ROOT,
    VALID,
    advance_to,
    entries,
    verify_config,
    write_sample_project,
)
from phasegate_testkit import (
    servers as kit_servers,
)

from enforcer.clock import ManualClock
from enforcer.config import Config, LeaseConfig
from enforcer.errors import InvalidArgumentError, PhasegateError, StoreError
from enforcer.integrity import check_integrity
from enforcer.ledger.verify import verify_state
from enforcer.model import Caller
from enforcer.phases import Phase
from enforcer.runtime import MIGRATIONS, open_runtime
from enforcer.service import Enforcer
from enforcer.store import Store, Tx, open_store

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 1, 1, tzinfo=UTC)
TTL = 60
CONFIG = Config(leases=LeaseConfig(ttl_s=TTL))


def servers(
    state: Path, url: str | None, count: int, clock: ManualClock, config: Config = CONFIG
) -> contextlib.AbstractAsyncContextManager[list[Enforcer]]:
    """`count` enforcers over one database and state directory, sharing `clock`."""
    return kit_servers(state, url, count, clock, config)


@contextlib.asynccontextmanager
async def bare_store(tmp_path: Path, url: str | None) -> AsyncIterator[Store]:
    store = await open_store(db=tmp_path / "phasegate.db", url=url, migrations=MIGRATIONS)
    try:
        yield store
    finally:
        await store.close()


def _insert(tx: Tx, seq: int) -> int:
    return tx.execute(
        "INSERT INTO ledger (seq, prev, leaf_hash, entry, ts, type) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, f"{seq:064x}", f"{seq:064x}", b"{}", "2026-01-01T00:00:00.000000Z", "task.started"),
    )


# ---------------------------------------------------------------- schema and units of work


async def test_migrations_are_applied_once_and_a_newer_schema_is_refused(
    tmp_path: Path, store_url: str | None
) -> None:
    for _ in range(2):
        async with bare_store(tmp_path, store_url) as store:
            versions = await store.read(lambda tx: tx.all("SELECT version FROM schema_version"))
            assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))
    async with bare_store(tmp_path, store_url) as store:
        await store.write(lambda tx: tx.execute("INSERT INTO schema_version VALUES (99)"))
    with pytest.raises(StoreError):
        await open_store(db=tmp_path / "phasegate.db", url=store_url, migrations=MIGRATIONS)


async def test_a_failed_unit_leaves_nothing_and_a_database_error_is_a_store_error(
    tmp_path: Path, store_url: str | None
) -> None:
    async with bare_store(tmp_path, store_url) as store:

        def half_then_fail(tx: Tx) -> None:
            _insert(tx, 0)
            raise InvalidArgumentError("refused halfway")

        with pytest.raises(InvalidArgumentError):
            await store.write(half_then_fail)
        assert await store.read(lambda tx: tx.one("SELECT count(*) FROM ledger")) == (0,)
        assert await store.write(lambda tx: _insert(tx, 0)) == 1
        with pytest.raises(StoreError):
            await store.write(lambda tx: _insert(tx, 0))  # a duplicate seq
        # Units queued together commit or fail each on their own.
        outcomes = await asyncio.gather(
            *(store.write(lambda tx, s=s: _insert(tx, s)) for s in (1, 1, 2)),
            return_exceptions=True,
        )
        assert [isinstance(o, StoreError) for o in outcomes] == [False, True, False]
        assert await store.peek_one("SELECT count(*) FROM ledger") == (3,)


async def test_the_ledger_refuses_update_and_delete(tmp_path: Path, store_url: str | None) -> None:
    async with bare_store(tmp_path, store_url) as store:
        await store.write(lambda tx: _insert(tx, 0))
        for sql in ("UPDATE ledger SET type = 'x.y'", "DELETE FROM ledger"):
            with pytest.raises(StoreError):
                await store.write(lambda tx, sql=sql: tx.execute(sql))
        assert await store.peek_one("SELECT type FROM ledger") == ("task.started",)


async def test_the_data_version_changes_with_every_commit_of_any_server(
    tmp_path: Path, store_url: str | None
) -> None:
    async with bare_store(tmp_path, store_url) as one, bare_store(tmp_path, store_url) as two:
        seen = [await one.data_version()]
        for seq in range(3):
            await (one if seq % 2 else two).write(lambda tx, s=seq: _insert(tx, s))
            seen.append(await one.data_version())
        assert len(set(seen)) == len(seen)
        assert await one.data_version() == seen[-1]  # nothing committed: the same


# ---------------------------------------------------------------- the ledger


async def test_appends_from_three_servers_at_once_form_one_contiguous_chain(
    tmp_path: Path, store_url: str | None
) -> None:
    async with servers(tmp_path, store_url, 3, ManualClock(START)) as trio:
        await asyncio.gather(
            *(
                e.ledger.append(actor=f"s{i}", type="test.appended", data={"n": n})
                for n in range(40)
                for i, e in enumerate(trio)
            )
        )
        for e in trio:  # every server signs what it sees: the checkpoints agree
            await e.ledger.checkpoint()
        log = await entries(trio[0])
    assert [x.seq for x in log] == list(range(120))
    assert all(b.prev == a.leaf_hash for a, b in zip(log, log[1:], strict=False))
    assert sorted(x.actor for x in log) == sorted(f"s{i}" for i in range(3) for _ in range(40))
    report = verify_state(tmp_path, store_url)
    assert report.entries == 120 and report.latest_checkpoint_size == 120


# ---------------------------------------------------------------- leases


async def test_of_many_callers_on_three_servers_one_gets_the_lease_and_tokens_only_grow(
    tmp_path: Path, store_url: str | None
) -> None:
    clock = ManualClock(START)
    async with servers(tmp_path, store_url, 3, clock) as trio:
        await trio[0].task_start(ROOT, "contended", "T1")
        await trio[0].lease_release(ROOT, "T1")
        agents = [(trio[i % 3], Caller(f"agent{i}", instance=f"i{i}")) for i in range(12)]
        tokens, winners = [], []
        for _round in range(3):
            contenders = [(e, a) for e, a in agents if a not in winners]
            results = await asyncio.gather(
                *(e.lease_acquire(a, "T1") for e, a in contenders), return_exceptions=True
            )
            won = [
                (a, r)
                for (_, a), r in zip(contenders, results, strict=True)
                if not isinstance(r, BaseException)
            ]
            lost = [r for r in results if isinstance(r, BaseException)]
            assert len(won) == 1, results
            assert all(isinstance(r, PhasegateError) and r.code == "LEASE_HELD" for r in lost)
            winners.append(won[0][0])
            tokens.append(won[0][1].fencing_token)
            clock.advance(TTL + 1)  # the winner goes silent: another takes over next round
        log = await entries(trio[1], "T1")
    assert tokens == [2, 3, 4]
    takeovers = [x.data.get("takeover") for x in log if x.type == "lease.acquired"]
    assert takeovers == [None, None, "expired", "expired"]
    assert [x.type for x in log].count("lease.contended") == 11 + 10 + 9


async def test_a_holder_taken_over_on_another_server_lands_nothing_with_its_old_token(
    tmp_path: Path, store_url: str | None
) -> None:
    clock = ManualClock(START)
    async with servers(tmp_path, store_url, 2, clock) as (one, two):
        started = await one.task_start(ALICE, "fenced", "T1")
        assert started.lease is not None
        old = started.lease.fencing_token
        clock.advance(TTL + 1)
        taken = await two.lease_acquire(BOB, "T1")
        assert taken.fencing_token == old + 1
        name, content = VALID[Phase.STRATEGIZE]
        for call in (
            one.evidence_put(ALICE, "T1", name, content, old),
            one.phase_advance(ALICE, "T1", token=old),
            one.prompt_attest(ALICE, "T1", "prompt", old),
        ):
            with pytest.raises(PhasegateError) as caught:
                await call
            assert caught.value.code == "STALE_TOKEN"
        rec = await two.evidence_put(BOB, "T1", name, content, taken.fencing_token)
        assert rec.valid
        log = await entries(one, "T1")
    recorded = [x for x in log if x.type == "evidence.recorded"]
    assert [(x.actor, x.refs["lease_token"]) for x in recorded] == [("bob", old + 1)]


# ---------------------------------------------------------------- evidence, controls, status


async def test_evidence_recorded_through_one_server_is_read_through_another(
    tmp_path: Path, store_url: str | None
) -> None:
    async with servers(tmp_path, store_url, 2, ManualClock(START)) as (one, two):
        await one.task_start(ALICE, "evidence", "T1")
        name, content = VALID[Phase.STRATEGIZE]
        rec = await one.evidence_put(ALICE, "T1", name, content)
        found, data = await two.evidence_read("T1", "STRATEGIZE", name)
        assert found == rec and data == content.encode()
        assert [r.sha256 for r in await two.evidence_list("T1")] == [rec.sha256]


async def test_a_freeze_set_through_one_server_refuses_writes_through_another(
    tmp_path: Path, store_url: str | None
) -> None:
    async with servers(tmp_path, store_url, 2, ManualClock(START)) as (one, two):
        await two.task_start(ALICE, "frozen", "T1")
        await one.set_control(ROOT, "freeze", True, "incident")
        with pytest.raises(PhasegateError) as caught:
            await two.evidence_put(ALICE, "T1", *VALID[Phase.STRATEGIZE])
        assert caught.value.code == "FROZEN"
        assert (await two.controls())["frozen"] is True
        await one.set_control(ROOT, "freeze", False, "over")
        assert (await two.evidence_put(ALICE, "T1", *VALID[Phase.STRATEGIZE])).valid


async def test_writes_racing_a_freeze_set_through_another_server_never_land_after_it(
    tmp_path: Path, store_url: str | None
) -> None:
    async with servers(tmp_path, store_url, 2, ManualClock(START)) as (one, two):
        await two.task_start(ALICE, "race", "T1")
        landed = 0

        async def writer(w: int) -> str:
            nonlocal landed
            for i in range(2000):  # bounded: the freeze comes long before
                try:
                    await two.evidence_put(ALICE, "T1", f"w{w}-{i}.md", f"- {i}\n")
                except PhasegateError as e:
                    return e.code
                landed += 1
            return "never refused"

        writers = [asyncio.ensure_future(writer(w)) for w in range(4)]
        while landed < 8 and not any(w.done() for w in writers):  # the writers are under way
            await asyncio.sleep(0)
        frozen = await one.set_control(ROOT, "freeze", True, "race")
        codes = await asyncio.gather(*writers)
        log = await entries(one)
    assert codes == ["FROZEN"] * 4
    after = [x.type for x in log if x.seq > frozen["freeze"]["seq"]]
    assert "evidence.recorded" not in after, after


async def test_a_status_cached_by_one_server_follows_a_change_made_through_another(
    tmp_path: Path, store_url: str | None
) -> None:
    async with servers(tmp_path, store_url, 2, ManualClock(START)) as (one, two):
        await one.task_start(ALICE, "cached", "T1")
        assert (await two.task_status("T1")).gate.passed is False
        assert (await two.task_status("T1")).gate.passed is False  # from the cache
        await one.evidence_put(ALICE, "T1", *VALID[Phase.STRATEGIZE])
        assert (await two.task_status("T1")).gate.passed is True
        await one.phase_advance(ALICE, "T1")
        assert (await two.task_status("T1")).task.phase is Phase.SPEC


# ---------------------------------------------------------------- replay and integrity


async def test_a_task_driven_to_done_replays_to_the_store_and_passes_the_integrity_check(
    tmp_path: Path, store_url: str | None
) -> None:
    config = Config(verify=verify_config(write_sample_project(tmp_path / "project")))
    state = tmp_path / "state"
    async with servers(state, store_url, 2, ManualClock(START), config) as (one, two):
        await one.task_start(ALICE, "all the way", "T1")
        await advance_to(one, ALICE, "T1", Phase.REVIEW)
        await two.phase_backtrack(ALICE, "T1", "IMPLEMENT", "one more change")
        await advance_to(two, ALICE, "T1", Phase.DONE)
        assert await one.replay_equals_store() and await two.replay_equals_store()
    report = check_integrity(state, store_url)
    assert report.blobs_checked >= 10 and report.ledger.latest_checkpoint_size == (
        report.ledger.entries
    )
    # The CLI and CI's integrity script read the same store (exit 0), and see tampering (1).
    store_args = [] if store_url is None else ["--store", store_url]
    script = [sys.executable, "scripts/integrity.py", "--state-dir", str(state), *store_args]
    assert subprocess.run(script, cwd=REPO, capture_output=True).returncode == 0
    async with open_runtime(state, config=config, store_url=store_url) as rt:
        await rt.store.write(lambda tx: tx.execute("UPDATE tasks SET phase = 'REVIEW'"))
    cli = [sys.executable, "-m", "server.cli", "verify", "--state-dir", str(state), *store_args]
    done = subprocess.run(cli, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and "projection" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------- modules
# Governed modules: their store contract (versions, drafts, the active pointer moved in the
# same transaction as its ledger entry) is in test_contract_modules.py, on the same stores.
