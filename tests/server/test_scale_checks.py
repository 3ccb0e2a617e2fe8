"""The scale-out checks themselves: a real ledger passes them, and each forged fault — a second
holder while a lease is live, a stale token, a write by someone else, a gap, an acknowledged
call with no entry — is caught and named."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from phasegate_testkit import ALICE, BOB, VALID, enforcer_at
from scale_checks import check_acks, check_ledger, read_entries
from scale_kit import Ack, Agent

from enforcer.clock import ManualClock
from enforcer.config import Config, LeaseConfig
from enforcer.ledger.entries import LedgerEntry
from enforcer.phases import Phase


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> list[LedgerEntry]:
    """Alice moves T1 on and lets go, Bob takes over; Alice's lease on T2 expires, Bob's again."""
    state = tmp_path_factory.mktemp("checks")
    clock = ManualClock()

    async def build() -> None:
        async with enforcer_at(state, Config(leases=LeaseConfig(ttl_s=60)), clock) as e:
            await e.task_start(ALICE, "one", "T1")
            await e.evidence_put(ALICE, "T1", *VALID[Phase.STRATEGIZE])
            await e.phase_advance(ALICE, "T1")
            await e.lease_release(ALICE, "T1")
            await e.evidence_put(BOB, "T1", *VALID[Phase.SPEC])
            await e.task_start(ALICE, "two", "T2")
            clock.advance(61)
            await e.lease_acquire(BOB, "T2")

    asyncio.run(build())
    return read_entries(state, None)


def forged(entries: list[LedgerEntry], seq: int, **changes: Any) -> list[LedgerEntry]:
    """`entries` with the fields of entry `seq` changed (a top-level key each)."""
    out = list(entries)
    out[seq] = dataclasses.replace(out[seq], fields={**out[seq].fields, **changes})
    return out


def test_a_real_ledger_passes_and_its_takeover_after_expiry_is_counted(
    ledger: list[LedgerEntry],
) -> None:
    report = check_ledger(ledger)
    assert report.transitions == 1
    assert [(old, new) for _, old, new in report.takeovers] == [("alice", "bob")]


def test_a_second_holder_while_the_lease_is_live_is_a_double_lease(
    ledger: list[LedgerEntry],
) -> None:
    last = ledger[-1]
    assert last.type == "lease.acquired"
    early = forged(ledger, last.seq, ts=ledger[-2].ts)  # Bob takes T2 before Alice's expiry
    with pytest.raises(AssertionError, match="while alice held it"):
        check_ledger(early)


def test_a_stale_token_or_another_writer_or_a_gap_is_caught(ledger: list[LedgerEntry]) -> None:
    put = next(e for e in ledger if e.type == "evidence.recorded" and e.actor == "bob")
    with pytest.raises(AssertionError, match="stale token"):
        check_ledger(forged(ledger, put.seq, refs={**put.refs, "lease_token": 1}))
    with pytest.raises(AssertionError, match="wrote on"):
        check_ledger(forged(ledger, put.seq, actor="mallory"))
    with pytest.raises(AssertionError, match="contiguous"):
        check_ledger(ledger[:3] + ledger[4:])


def test_an_acknowledged_call_missing_from_the_ledger_is_caught(
    ledger: list[LedgerEntry],
) -> None:
    bob = Agent("bob", "http://unused")
    put = next(e for e in ledger if e.type == "evidence.recorded" and e.actor == "bob")
    result = {"seq": put.seq, "sha256": put.data["sha256"], "task": "T1"}
    bob.acks.append(Ack("evidence_put", {}, result, 0.0))
    assert check_acks(ledger, [bob]) == 1
    moved = {"task": "T1", "phase": "PLAN", "epoch": 0}
    bob.acks.append(Ack("phase_advance", {}, moved, 0.0))
    with pytest.raises(AssertionError, match="not in the ledger"):
        check_acks(ledger, [bob])
