"""The ledger service: what an append writes, what it refuses, checkpoints, and concurrent and
crashing writers in real processes."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from ledger_kit import GENESIS, children, config, leaf_hex, rows, tampering, worker

from enforcer.clock import ManualClock
from enforcer.config import Config, LedgerConfig
from enforcer.errors import InvalidArgumentError, WritesRefusedError
from enforcer.ledger import checkpoint, merkle
from enforcer.ledger.checkpoint import Checkpoint
from enforcer.ledger.entries import GENESIS_PREV, MAX_ENTRY_BYTES
from enforcer.ledger.keys import Verifier
from enforcer.ledger.verify import verify_state
from enforcer.model import Caller
from enforcer.runtime import Runtime, open_runtime
from enforcer.service import Enforcer


async def append(rt: Runtime, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "actor": "alice",
        "type": "task.started",
        "subject": {"task": "T1"},
        "data": {"title": "first"},
    }
    args.update(overrides)
    return await rt.ledger.append(**args)


async def test_appends_form_a_contiguous_chain_of_canonical_entries(tmp_path: Path) -> None:
    clock = ManualClock(datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC))
    async with open_runtime(tmp_path, config=config(), clock=clock) as rt:
        entries = []
        for i in range(5):
            entries.append(await append(rt, data={"i": i}, refs={"trace_id": "ab" * 16}))
            clock.advance(1.5)
        assert await rt.ledger.size() == 5
    prev = GENESIS
    for seq, e in enumerate(entries):
        assert (e.seq, e.prev) == (seq, prev)
        assert e.raw == rfc8785.dumps(e.fields)
        assert e.leaf_hash == leaf_hex(e.raw)
        assert e.fields == {
            "v": 1,
            "seq": seq,
            "prev": prev,
            "ts": f"2026-03-01T12:00:{1.5 * seq:09.6f}Z",
            "actor": "alice",
            "type": "task.started",
            "subject": {"task": "T1"},
            "data": {"i": seq},
            "refs": {"trace_id": "ab" * 16},
        }
        prev = e.leaf_hash
    assert GENESIS_PREV == GENESIS
    # The stored row is exactly what append returned.
    assert rows(tmp_path) == [(e.seq, e.prev, e.leaf_hash, e.raw) for e in entries]


async def test_reads_return_what_was_appended(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, config=config()) as rt:
        a = await append(rt, subject={"task": "T1"}, refs={"trace_id": "t" * 32})
        b = await append(rt, subject={"task": "T2"})
        c = await append(rt, subject={"task": "T1"}, type="phase.advanced")
        assert await rt.ledger.get(1) == b
        assert await rt.ledger.get(3) is None
        assert await rt.ledger.tail(2) == [b, c]
        assert await rt.ledger.tail(10, task="T1") == [a, c]
        assert await rt.ledger.by_trace("t" * 32) == [a]
        assert c.type == "phase.advanced" and c.subject == {"task": "T1"}
        assert a.as_dict()["leaf_hash"] == a.leaf_hash


async def test_checkpoint_signs_the_rfc6962_root_of_every_entry(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, config=config()) as rt:
        assert await rt.ledger.checkpoint() is None  # nothing to sign yet
        assert not (tmp_path / "checkpoints").exists() or not any(
            (tmp_path / "checkpoints").iterdir()
        )
        entries = [await append(rt, data={"i": i}) for i in range(7)]
        cp = await rt.ledger.checkpoint()
        assert cp is not None
        await append(rt)
        later = await rt.ledger.checkpoint()
    leaves = [bytes.fromhex(e.leaf_hash) for e in entries]
    assert (cp.size, cp.root) == (7, merkle.root(leaves))
    text = (tmp_path / "checkpoints" / "000000000007.txt").read_text()
    assert Checkpoint.parse(text, Verifier.from_dir(tmp_path / "keys")) == cp
    assert later is not None and later.size == 8
    assert verify_state(tmp_path).checkpoints == 2


async def test_checkpoint_refuses_to_sign_a_broken_chain(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, config=config(), checkpoint_on_close=False) as rt:
        for i in range(4):
            await append(rt, data={"i": i})
        with tampering(tmp_path) as conn:
            conn.execute("UPDATE ledger SET prev = ? WHERE seq = 2", (GENESIS,))
        with pytest.raises(WritesRefusedError) as caught:
            await rt.ledger.checkpoint()
        assert caught.value.details == {"cause": "ledger", "fault": "link", "seq": 2}
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


# --- malformed input ---------------------------------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("float", {"data": {"ratio": 0.5}}),
    ("integral float", {"data": {"n": 1.0}}),
    ("nan", {"data": {"n": float("nan")}}),
    ("infinity", {"refs": {"n": float("inf")}}),
    ("2**53", {"data": {"n": 2**53}}),
    ("-2**53", {"subject": {"n": -(2**53)}}),
    ("huge int", {"data": {"n": [10**30]}}),
    ("set", {"data": {"s": {1, 2}}}),
    ("bytes", {"data": {"b": b"raw"}}),
    ("object", {"data": {"o": object()}}),
    ("datetime", {"data": {"at": datetime.datetime(2026, 1, 1)}}),
    ("int key", {"data": {1: "one"}}),
    ("nested int key", {"subject": {"task": "T1", "x": {2: "two"}}}),
    ("lone surrogate", {"data": {"s": "\ud800"}}),
    ("oversized", {"data": {"blob": "x" * MAX_ENTRY_BYTES}}),
    ("type with capitals", {"type": "Task.started"}),
    ("type without a dot", {"type": "task"}),
    ("type with empty part", {"type": "task..started"}),
    ("type with trailing dot", {"type": "task."}),
    ("type with space", {"type": "task started"}),
    ("type with digits", {"type": "task.st4rted"}),
    ("empty type", {"type": ""}),
    ("type with a final newline", {"type": "task.started\n"}),
    ("data an empty list", {"data": []}),
    ("subject an empty string", {"subject": ""}),
    ("refs zero", {"refs": 0}),
    ("type not a string", {"type": 7}),
    ("empty actor", {"actor": ""}),
    ("long actor", {"actor": "a" * 201}),
    ("actor not a string", {"actor": None}),
    ("subject a list", {"subject": ["T1"]}),
    ("data a string", {"data": "text"}),
    ("refs a list", {"refs": [1]}),
]


@pytest.mark.parametrize(("label", "overrides"), REFUSED, ids=[label for label, _ in REFUSED])
async def test_malformed_input_is_refused_and_writes_nothing(
    tmp_path: Path, label: str, overrides: dict[str, Any]
) -> None:
    async with open_runtime(tmp_path, config=config()) as rt:
        first = await append(rt)
        with pytest.raises(InvalidArgumentError) as caught:
            await append(rt, **overrides)
        assert caught.value.code == "INVALID_ARGUMENT"
        assert await rt.ledger.size() == 1
        nxt = await append(rt)  # the chain goes on from where it was
        assert (nxt.seq, nxt.prev) == (1, first.leaf_hash)
    verify_state(tmp_path)


async def test_an_entry_of_exactly_the_size_limit_is_accepted_and_one_byte_more_is_not(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with open_runtime(tmp_path, config=config(), clock=clock) as rt:
        probe = await append(rt, data={"pad": "x"})  # seq 0: one digit, like seq 1
        fill = "x" * (MAX_ENTRY_BYTES - len(probe.raw) + 1)
        with pytest.raises(InvalidArgumentError):
            await append(rt, data={"pad": fill + "x"})
        assert await rt.ledger.size() == 1
        exact = await append(rt, data={"pad": fill})
        assert len(exact.raw) == MAX_ENTRY_BYTES
    verify_state(tmp_path)


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_appends_in_one_process_never_fork(tmp_path: Path) -> None:
    async with (
        open_runtime(tmp_path, config=config("NORMAL")) as a,
        open_runtime(tmp_path, config=config("NORMAL")) as b,
    ):
        # Two stores, two connections, racing for the same chain head.
        results = await asyncio.gather(
            *(append(rt, data={"i": i}) for i in range(100) for rt in (a, b))
        )
    assert sorted(e.seq for e in results) == list(range(200))
    assert verify_state(tmp_path).entries == 200


async def test_two_processes_appending_a_thousand_entries_each_never_fork(tmp_path: Path) -> None:
    state = tmp_path / "state"  # fresh: the two processes also race to create key and schema
    with children() as started:
        started += [
            worker(state, actor, 1000, cwd=tmp_path, peer=peer)
            for actor, peer in (("p1", "p2"), ("p2", "p1"))
        ]
        for child in started:
            assert child.line() == "ready"
        for child in started:
            child.release()
        results = [child.finish(timeout=120) for child in started]
    for lines, code, err in results:
        assert code == 0, err
        assert len(lines) == 1000
    reported = [int(line) for lines, _, _ in results for line in lines]
    assert sorted(reported) == list(range(2000))

    chain = rows(state)
    assert [seq for seq, _, _, _ in chain] == list(range(2000))
    prev = GENESIS
    for _, stored_prev, leaf, raw in chain:
        assert json.loads(raw)["prev"] == stored_prev == prev
        assert leaf == leaf_hex(raw)
        prev = leaf
    actors = [json.loads(raw)["actor"] for _, _, _, raw in chain]
    assert actors.count("p1") == actors.count("p2") == 1000
    # They ran at the same time: each wrote entries both before and after some of the other's
    # (guaranteed by the workers' wait for their peer; how finely they interleave beyond that
    # is up to SQLite's busy back-off).
    first = {a: actors.index(a) for a in ("p1", "p2")}
    last = {a: len(actors) - 1 - actors[::-1].index(a) for a in ("p1", "p2")}
    assert first["p1"] < last["p2"] and first["p2"] < last["p1"], "the writers did not overlap"
    report = verify_state(state)
    assert report.entries == 2000


async def test_a_writer_killed_mid_stream_loses_no_reported_entry(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with children() as started:
        child = worker(state, "doomed", 0, cwd=tmp_path)
        started.append(child)
        assert child.line() == "ready"
        child.release()
        reported: list[int] = []
        while len(reported) < 200:
            line = child.line()
            assert line is not None, child.finish()[2]
            reported.append(int(line))
        os.kill(child.proc.pid, signal.SIGKILL)
        assert child.proc.wait(timeout=30) == -signal.SIGKILL
        reported += [int(line) for line in child.rest()]  # lines already in the pipe
    assert reported == list(range(len(reported)))

    # No final checkpoint was written; the database may hold entries committed after the last
    # line was printed, and the WAL is recovered by whoever opens it next: here the verifier.
    report = verify_state(state)
    assert report.entries >= len(reported)
    stored = {seq for seq, _, _, _ in rows(state)}
    assert set(reported) <= stored
    async with open_runtime(state, config=config()) as rt:  # and the ledger goes on
        nxt = await append(rt)
    assert nxt.seq == report.entries
    assert verify_state(state).entries == report.entries + 1


async def test_appends_survive_reopening_and_keep_the_chain(tmp_path: Path) -> None:
    for round_ in range(3):
        async with open_runtime(tmp_path, config=config()) as rt:
            for i in range(3):
                await append(rt, data={"round": round_, "i": i})
    chain = rows(tmp_path)
    assert [seq for seq, *_ in chain] == list(range(9))
    report = verify_state(tmp_path)
    assert (report.entries, report.checkpoints) == (9, 3)
    assert report.root == merkle.root([bytes.fromhex(r[2]) for r in chain]).hex()
    assert hashlib.sha256(b"").hexdigest() != report.root


async def test_checkpoints_are_signed_every_n_entries_after_the_interval_and_at_shutdown(
    tmp_path: Path,
) -> None:
    clock = ManualClock()

    def sizes() -> list[int]:
        return [s for s, _ in checkpoint.list_checkpoints(tmp_path / "checkpoints")]

    cfg = Config(ledger=LedgerConfig(checkpoint_every=5, checkpoint_interval_s=60))
    async with open_runtime(tmp_path, config=cfg, clock=clock) as rt:
        e = Enforcer(rt)
        me = Caller("alice", instance="i1")
        await e.task_start(me, "checkpoints", "T1")  # 2 entries: task.started, lease.acquired
        for _ in range(3):
            await e.prompt_attest(me, "T1", "a")  # baseline, then matches (no entry)
            await e.evidence_put(me, "T1", "notes.md", "x")
        # 6 entries so far: signed as soon as five were pending, by the enforcer itself
        assert sizes() == [5]
        await e.evidence_put(me, "T1", "notes.md", "y")
        assert sizes() == [5]  # two pending, the interval not reached
        assert not rt.ledger.checkpoint_due()
        clock.advance(61)
        assert rt.ledger.checkpoint_due()
        assert await rt.ledger.maybe_checkpoint() is not None
        assert sizes() == [5, 7]
        await e.evidence_put(me, "T1", "notes.md", "z")
    assert sizes() == [5, 7, 8]  # and at shutdown
    assert verify_state(tmp_path).latest_checkpoint_size == 8
