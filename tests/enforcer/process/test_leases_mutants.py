"""Lease rules at the edges a weakened comparison would pass: holder identity is exactly actor
and instance (no ordering of names), and a lease extended for a run lasts at least as long as
asked, to the second."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from phasegate_testkit import enforcer_at

from enforcer.clock import ManualClock, rfc3339
from enforcer.config import Config, LeaseConfig
from enforcer.errors import LeaseHeldError
from enforcer.ledger.ops import Ops
from enforcer.model import Caller
from enforcer.process.leases import LeaseRow

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
