"""The verifier's checks one at a time, each with a tamper case that only that check can catch.

A ledger entry carries its `prev` twice: inside the hashed JSON and in the `prev` column. A
careful attacker rewrites the JSON's `prev`, recomputes the leaf hash and re-links every later
entry, leaving the column as it was: every stored hash then matches its bytes and every column
links, so only the comparison of the JSON's `prev` with the previous leaf hash says "link" at
the edited entry. Without checkpoints (the synthetic chains below), nothing else would notice.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from ledger_kit import GENESIS, build_ledger, leaf_hex, rechain, rows, tampering

from enforcer.config import Config
from enforcer.errors import LedgerFaultError, StoreError
from enforcer.ledger import canonical
from enforcer.ledger.verify import verify_rows, verify_state
from enforcer.runtime import open_runtime

SIZE = 12
FORGED_PREV = "ab" * 32


@pytest.fixture
async def ledger(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    await build_ledger(state, SIZE, checkpoint_at=(5,))
    return state


def _fault(run: Any) -> tuple[str, int | None]:
    with pytest.raises(LedgerFaultError) as caught:
        run()
    assert caught.value.code == "INTERNAL"
    return caught.value.kind, caught.value.seq


def _forge_prev(fields: dict[str, Any]) -> dict[str, Any]:
    return fields | {"prev": FORGED_PREV}


@pytest.mark.parametrize("seq", [0, 3, 4, 7, SIZE - 1])
async def test_a_prev_inside_the_entry_that_names_another_hash_is_a_link_fault_at_that_entry(
    ledger: Path, seq: int
) -> None:
    with tampering(ledger) as conn:
        rechain(conn, seq, edit=_forge_prev)
    chain = rows(ledger)
    # What the attacker left: the columns link, every leaf hash matches its bytes ...
    assert [r[1] for r in chain] == [GENESIS] + [r[2] for r in chain[:-1]]
    assert all(leaf_hex(bytes(r[3])) == r[2] for r in chain)
    # ... and only the JSON's prev of the edited entry is wrong.
    assert json.loads(chain[seq][3])["prev"] == FORGED_PREV
    assert _fault(lambda: verify_state(ledger)) == ("link", seq)


def _chain(count: int) -> list[tuple[int, str, str, bytes]]:
    """A valid chain of (seq, prev, leaf_hash, entry) rows, hashed with hashlib here."""
    out, prev = [], GENESIS
    for seq in range(count):
        raw = canonical.encode(
            {
                "v": 1,
                "seq": seq,
                "prev": prev,
                "ts": "2026-01-01T00:00:00.000000Z",
                "actor": "alice",
                "type": "evidence.recorded",
                "subject": {"task": "T1"},
                "data": {"n": seq},
                "refs": {},
            }
        )
        leaf = leaf_hex(raw)
        out.append((seq, prev, leaf, raw))
        prev = leaf
    return out


def _rechained(chain: list[tuple[int, str, str, bytes]], at: int, prev_in_json: str) -> None:
    """Entry `at` gets `prev_in_json` inside its JSON (its column keeps the true link); its leaf
    hash is recomputed and every later entry re-linked to it, in the JSON and the column."""
    prev = chain[at][1]
    for seq in range(at, len(chain)):
        fields = json.loads(chain[seq][3])
        fields["prev"] = prev_in_json if seq == at else prev
        raw = canonical.encode(fields)
        chain[seq] = (seq, prev, leaf_hex(raw), raw)
        prev = chain[seq][2]


@pytest.mark.parametrize(("count", "at"), [(1, 0), (5, 0), (5, 2), (5, 4), (300, 128), (300, 299)])
def test_without_checkpoints_only_the_json_prev_check_catches_a_rewritten_prev(
    count: int, at: int
) -> None:
    chain = _chain(count)
    assert verify_rows(iter(chain))[0] == count
    _rechained(chain, at, FORGED_PREV)
    assert _fault(lambda: verify_rows(iter(chain))) == ("link", at)


def test_a_json_prev_naming_the_genesis_hash_in_the_middle_is_a_link_fault() -> None:
    chain = _chain(6)
    _rechained(chain, 3, GENESIS)
    assert _fault(lambda: verify_rows(iter(chain))) == ("link", 3)


def test_a_prev_column_that_differs_from_a_correct_json_prev_is_a_link_fault() -> None:
    chain = _chain(6)
    seq, _, leaf, raw = chain[3]
    chain[3] = (seq, FORGED_PREV, leaf, raw)  # the hashed bytes are untouched
    assert _fault(lambda: verify_rows(iter(chain))) == ("link", 3)


# --- checkpoints as the verifier reads them ---------------------------------------------------


def _cp(state: Path, size: int) -> Path:
    return state / "checkpoints" / f"{size:012d}.txt"


@pytest.mark.parametrize(("signed", "named"), [(5, 3), (5, 7), (12, 11)])
async def test_a_checkpoint_whose_name_and_signed_size_differ_is_a_signature_fault(
    ledger: Path, signed: int, named: int
) -> None:
    _cp(ledger, signed).rename(_cp(ledger, named))
    assert _fault(lambda: verify_state(ledger)) == ("signature", named)


async def test_a_checkpoint_that_cannot_be_read_is_a_store_error(ledger: Path) -> None:
    _cp(ledger, 5).unlink()
    _cp(ledger, 5).mkdir()  # listed by its name, unreadable as a file
    with pytest.raises(StoreError):
        verify_state(ledger)


@pytest.fixture
async def three_checkpoints(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    await build_ledger(state, SIZE, checkpoint_at=(4, 8))  # and SIZE when the runtime closes
    return state


async def test_the_report_names_the_newest_of_three_checkpoints(three_checkpoints: Path) -> None:
    report = verify_state(three_checkpoints)
    assert (report.checkpoints, report.latest_checkpoint_size) == (3, SIZE)


@pytest.mark.parametrize("keep", [8, 10, SIZE - 1])
async def test_a_tail_cut_below_the_newest_of_three_checkpoints_is_truncated(
    three_checkpoints: Path, keep: int
) -> None:
    with tampering(three_checkpoints) as conn:
        conn.execute("DELETE FROM ledger WHERE seq >= ?", (keep,))
    assert _fault(lambda: verify_state(three_checkpoints)) == ("truncated", keep)


async def test_a_verify_report_cannot_be_changed(ledger: Path) -> None:
    report = verify_state(ledger)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.entries = 0  # type: ignore[misc]


def _with_field(
    at: int, key: str, value: object, count: int = 6
) -> list[tuple[int, str, str, bytes]]:
    """A consistent chain whose entry `at` has `key` set to `value` (hashes and links redone)."""
    chain = _chain(count)
    prev = chain[at][1]
    for seq in range(at, count):
        fields = json.loads(chain[seq][3])
        fields["prev"] = prev
        if seq == at:
            fields[key] = value
        raw = canonical.encode(fields)
        chain[seq] = (seq, prev, leaf_hex(raw), raw)
        prev = chain[seq][2]
    return chain


@pytest.mark.parametrize("version", [0, -1, 2])
def test_an_entry_of_an_unknown_version_is_a_schema_fault(version: int) -> None:
    chain = _with_field(3, "v", version)
    assert _fault(lambda: verify_rows(iter(chain))) == ("schema", 3)


@pytest.mark.parametrize("claimed", [2, 4, 0])
def test_an_entry_that_claims_another_seq_is_a_seq_fault(claimed: int) -> None:
    chain = _with_field(3, "seq", claimed)
    assert _fault(lambda: verify_rows(iter(chain))) == ("seq", 3)


async def test_entries_appended_after_the_newest_checkpoint_verify(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with open_runtime(state, config=Config(), checkpoint_on_close=False) as rt:
        for n in range(7):
            await rt.ledger.append(actor="a", type="task.started", subject={"task": f"T{n}"})
            if n == 4:
                await rt.ledger.checkpoint()
    report = verify_state(state)
    assert (report.entries, report.latest_checkpoint_size) == (7, 5)


def test_an_entry_with_a_field_beyond_the_required_ones_verifies() -> None:
    """The schema check asks for the required fields with their types, not for exactly those:
    a field a later writer adds is hashed and linked like the rest, so it is tamper-evident."""
    chain = _with_field(3, "trace", "4bf92f3577b34da6a3ce929d0e0e4736")
    assert verify_rows(iter(chain))[0] == 6


@pytest.mark.parametrize("at", [0, 3, 6])
def test_an_entry_that_is_not_json_is_named_even_with_good_entries_after_it(at: int) -> None:
    chain = _chain(8)
    seq, prev, _, _ = chain[at]
    chain[at] = (seq, prev, leaf_hex(b"not json"), b"not json")
    with pytest.raises(LedgerFaultError) as caught:
        verify_rows(iter(chain))
    assert (caught.value.kind, caught.value.seq) == ("canonical", at)
    assert "is not ledger JSON" in caught.value.message, caught.value.message
