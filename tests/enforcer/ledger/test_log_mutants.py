"""The ledger service's reads and its checkpoint bookkeeping at their edges: `tail` below its
lower bound, and what a checkpoint leaves the policy believing (nothing pending once signed,
however the entries arrived)."""

from __future__ import annotations

from pathlib import Path

from ledger_kit import build_ledger

from enforcer.clock import ManualClock
from enforcer.config import Config, LedgerConfig
from enforcer.runtime import open_runtime

POLICY = Config(ledger=LedgerConfig(checkpoint_every=1000, checkpoint_interval_s=60))


async def test_a_tail_of_zero_or_less_is_the_newest_entry(tmp_path: Path) -> None:
    await build_ledger(tmp_path, 4)
    async with open_runtime(tmp_path, config=POLICY) as rt:
        for limit in (0, -5, 1):
            assert [e.seq for e in await rt.ledger.tail(limit)] == [3], limit
        assert [e.seq for e in await rt.ledger.tail(2)] == [2, 3]


async def test_after_a_checkpoint_of_entries_another_process_wrote_nothing_is_pending(
    tmp_path: Path,
) -> None:
    await build_ledger(tmp_path, 6)  # another process's entries, signed when it closed
    clock = ManualClock()
    async with open_runtime(tmp_path, config=POLICY, clock=clock) as rt:
        assert rt.ledger.size_hint == 0  # this process has seen nothing yet
        cp = await rt.ledger.checkpoint()
        assert cp is not None and cp.size == 6
        assert rt.ledger.size_hint == 6  # seen: seq 0..5
        clock.advance(61)
        assert not rt.ledger.checkpoint_due()  # nothing new since the signature
        assert await rt.ledger.maybe_checkpoint() is None
        await rt.ledger.append(actor="a", type="task.started", subject={"task": "T2"})
        assert rt.ledger.size_hint == 7
        assert rt.ledger.checkpoint_due()  # one new entry, the interval passed
