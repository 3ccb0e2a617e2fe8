"""The ledger service's reads and its checkpoint bookkeeping at their edges: `tail` below its
lower bound, and what a checkpoint leaves the policy believing (nothing pending once signed,
however the entries arrived)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from ledger_kit import build_ledger, tampering

from enforcer.clock import ManualClock
from enforcer.config import Config, LedgerConfig
from enforcer.errors import WritesRefusedError
from enforcer.ledger.log import CheckpointPolicy
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
        clock.advance(61)
        assert not rt.ledger.checkpoint_due()  # signed by the other process: nothing pending
        cp = await rt.ledger.checkpoint()
        assert cp is not None and cp.size == 6
        assert rt.ledger.size_hint == 6  # seen: seq 0..5
        clock.advance(61)
        assert not rt.ledger.checkpoint_due()  # nothing new since the signature
        assert await rt.ledger.maybe_checkpoint() is None
        await rt.ledger.append(actor="a", type="task.started", subject={"task": "T2"})
        assert rt.ledger.size_hint == 7
        assert rt.ledger.checkpoint_due()  # one new entry, the interval passed


def test_the_default_policy_signs_every_1000_entries_or_30_seconds() -> None:
    assert CheckpointPolicy() == CheckpointPolicy(every=1000, interval_s=30.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CheckpointPolicy().every = 1  # type: ignore[misc]


async def test_an_empty_ledger_has_size_zero_and_nothing_is_ever_due(tmp_path: Path) -> None:
    clock = ManualClock()
    async with open_runtime(tmp_path, config=POLICY, clock=clock) as rt:
        assert await rt.ledger.size() == 0
        assert rt.ledger.size_hint == 0
        clock.advance(3600)
        assert not rt.ledger.checkpoint_due()
        assert await rt.ledger.checkpoint() is None


async def test_append_takes_keyword_arguments_only(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, config=POLICY) as rt:
        with pytest.raises(TypeError):
            await rt.ledger.append("alice", "task.started")  # type: ignore[misc]
        assert await rt.ledger.size() == 0


async def test_tail_gives_20_by_default_and_at_most_1000(tmp_path: Path) -> None:
    await build_ledger(tmp_path, 1001)
    async with open_runtime(tmp_path, config=POLICY) as rt:
        assert [e.seq for e in await rt.ledger.tail()] == list(range(981, 1001))
        assert len(await rt.ledger.tail(5000)) == 1000
        assert len(await rt.ledger.tail(1000)) == 1000
        assert (await rt.ledger.tail(5000))[0].seq == 1


@pytest.mark.parametrize("damage", ["gap", "prev-high", "prev-low"])
async def test_a_broken_chain_is_never_signed(tmp_path: Path, damage: str) -> None:
    await build_ledger(tmp_path, 6)
    async with open_runtime(tmp_path, config=POLICY, checkpoint_on_close=False) as rt:
        with tampering(tmp_path) as conn:
            if damage == "gap":
                conn.execute("DELETE FROM ledger WHERE seq = 3")
            else:
                prev = "f" * 64 if damage == "prev-high" else "0" * 64
                conn.execute("UPDATE ledger SET prev = ? WHERE seq = 3", (prev,))
        before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
        with pytest.raises(WritesRefusedError) as caught:
            await rt.ledger.checkpoint()
        seq = 3 if damage != "gap" else 4
        assert caught.value.details == {"cause": "ledger", "fault": "link", "seq": seq}
        assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before
        with pytest.raises(WritesRefusedError):  # and no write goes on
            await rt.ledger.writable()


async def test_a_checkpoint_another_process_already_wrote_counts_as_signed(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with (
        open_runtime(tmp_path, config=POLICY, clock=clock, checkpoint_on_close=False) as mine,
        open_runtime(tmp_path, config=POLICY, clock=clock, checkpoint_on_close=False) as other,
    ):
        for n in range(3):
            await other.ledger.append(actor="o", type="task.started", subject={"task": f"T{n}"})
        assert (await other.ledger.checkpoint()).size == 3  # type: ignore[union-attr]
        cp = await mine.ledger.checkpoint()  # the same size: the file is there already
        assert cp is not None and cp.size == 3
        clock.advance(61)
        assert not mine.ledger.checkpoint_due()  # signed: nothing pending


@pytest.mark.parametrize("count", [4, 5, 7])
async def test_a_checkpoint_is_due_once_every_entries_are_pending(
    tmp_path: Path, count: int
) -> None:
    policy = Config(ledger=LedgerConfig(checkpoint_every=5, checkpoint_interval_s=3600))
    async with open_runtime(tmp_path, config=policy, clock=ManualClock()) as rt:
        for n in range(count):
            await rt.ledger.append(actor="a", type="task.started", subject={"task": f"T{n}"})
        assert rt.ledger.checkpoint_due() is (count >= 5)


async def test_a_deleted_newest_checkpoint_is_written_again(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, config=POLICY, checkpoint_on_close=False) as rt:
        await rt.ledger.append(actor="a", type="task.started", subject={"task": "T1"})
        await rt.ledger.checkpoint()
        path = tmp_path / "checkpoints" / "000000000001.txt"
        first = path.read_bytes()
        path.unlink()
        assert (await rt.ledger.checkpoint()).size == 1  # type: ignore[union-attr]
        assert path.read_bytes() == first  # the same size again: same bytes (Ed25519)
