"""The offline verifier against real SQLite files changed underneath the application.

Each test builds a real ledger (12 entries, a signed checkpoint at 5, the final one at 12 when
the runtime closes), then edits the database through a separate connection with the
append-only triggers dropped, and expects one fault kind at one seq from `verify_state`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_kit import build_ledger, entry, leaf_hex, rechain, rows, tampering

from enforcer.errors import LedgerFaultError, StoreError
from enforcer.ledger import canonical, merkle
from enforcer.ledger.checkpoint import Checkpoint
from enforcer.ledger.keys import Signer, Verifier
from enforcer.ledger.verify import verify_rows, verify_state

SIZE = 12
CHECKPOINTS = (5,)  # plus the final one at SIZE, signed when the runtime closes


@pytest.fixture
async def ledger(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    await build_ledger(state, SIZE, checkpoint_at=CHECKPOINTS)
    return state


def fault(state: Path) -> tuple[str, int | None]:
    with pytest.raises(LedgerFaultError) as caught:
        verify_state(state)
    assert caught.value.code == "INTERNAL"
    assert caught.value.details == {"kind": caught.value.kind, "seq": caught.value.seq}
    return caught.value.kind, caught.value.seq


def edited(raw: bytes) -> bytes:
    """The same entry with one value changed; still canonical JSON."""
    changed = raw.replace(b'"task":"T1"', b'"task":"T9"')
    assert changed != raw
    return changed


# --- an untouched ledger ---------------------------------------------------------------------


async def test_an_untouched_ledger_verifies_with_its_checkpoints(ledger: Path) -> None:
    report = verify_state(ledger)
    assert report.entries == SIZE
    assert report.checkpoints == 2
    assert report.latest_checkpoint_size == SIZE
    assert report.as_dict()["ok"] is True
    newest = (ledger / "checkpoints" / f"{SIZE:012d}.txt").read_text()
    assert report.root == Checkpoint.parse(newest, Verifier.from_dir(ledger / "keys")).root.hex()


async def test_an_empty_ledger_verifies(tmp_path: Path) -> None:
    state = tmp_path / "state"
    await build_ledger(state, 0)
    report = verify_state(state)
    assert (report.entries, report.checkpoints, report.latest_checkpoint_size) == (0, 0, None)
    assert report.root == hashlib.sha256(b"").hexdigest()


# --- the append-only triggers --------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger SET entry = x'7b7d' WHERE seq = 3",
        "UPDATE ledger SET leaf_hash = prev WHERE seq = 3",
        "DELETE FROM ledger WHERE seq = 3",
        "DELETE FROM ledger",
    ],
)
async def test_triggers_refuse_update_and_delete_through_a_normal_connection(
    ledger: Path, statement: str
) -> None:
    before = rows(ledger)
    conn = sqlite3.connect(ledger / "phasegate.db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(statement)
    finally:
        conn.close()
    assert rows(ledger) == before
    verify_state(ledger)


# --- (a) an edited entry ---------------------------------------------------------------------


async def test_an_edited_entry_is_detected_as_hash_fault_at_its_seq(ledger: Path) -> None:
    with tampering(ledger) as conn:
        conn.execute("UPDATE ledger SET entry = ? WHERE seq = 4", (edited(entry(conn, 4)),))
    assert fault(ledger) == ("hash", 4)


async def test_an_edited_entry_with_its_leaf_hash_recomputed_breaks_the_next_link(
    ledger: Path,
) -> None:
    with tampering(ledger) as conn:
        raw = edited(entry(conn, 6))
        conn.execute(
            "UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = 6", (raw, leaf_hex(raw))
        )
    assert fault(ledger) == ("link", 7)


async def test_an_edited_entry_just_below_a_checkpoint_fails_that_checkpoints_root(
    ledger: Path,
) -> None:
    # Entry 4 is the last one under the checkpoint at size 5: its root is checked before
    # entry 5's link.
    with tampering(ledger) as conn:
        raw = edited(entry(conn, 4))
        conn.execute(
            "UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = 4", (raw, leaf_hex(raw))
        )
    assert fault(ledger) == ("root", 4)


async def test_an_edited_prev_column_is_detected_as_link_fault(ledger: Path) -> None:
    with tampering(ledger) as conn:
        conn.execute("UPDATE ledger SET prev = ? WHERE seq = 7", ("0" * 64,))
    assert fault(ledger) == ("link", 7)


async def test_an_edited_newest_entry_with_its_hash_recomputed_fails_the_signed_root(
    ledger: Path,
) -> None:
    last = SIZE - 1
    with tampering(ledger) as conn:
        raw = edited(entry(conn, last))
        conn.execute(
            "UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = ?", (raw, leaf_hex(raw), last)
        )
    assert fault(ledger) == ("root", last)


# --- (b) reordering ----------------------------------------------------------------------------


async def test_swapped_entries_are_detected_as_seq_fault(ledger: Path) -> None:
    with tampering(ledger) as conn:
        a = conn.execute("SELECT prev, leaf_hash, entry FROM ledger WHERE seq = 3").fetchone()
        b = conn.execute("SELECT prev, leaf_hash, entry FROM ledger WHERE seq = 4").fetchone()
        conn.execute("UPDATE ledger SET prev = ?, leaf_hash = ?, entry = ? WHERE seq = 3", b)
        conn.execute("UPDATE ledger SET prev = ?, leaf_hash = ?, entry = ? WHERE seq = 4", a)
    assert fault(ledger) == ("seq", 3)


async def test_swapped_seq_numbers_are_detected_as_seq_fault(ledger: Path) -> None:
    with tampering(ledger) as conn:
        conn.execute("UPDATE ledger SET seq = -1 WHERE seq = 6")
        conn.execute("UPDATE ledger SET seq = 6 WHERE seq = 7")
        conn.execute("UPDATE ledger SET seq = 7 WHERE seq = -1")
    assert fault(ledger) == ("seq", 6)


# --- (c) a gap ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gone", [0, 6, 10])
async def test_a_deleted_entry_is_detected_as_seq_fault_at_its_position(
    ledger: Path, gone: int
) -> None:
    with tampering(ledger) as conn:
        conn.execute("DELETE FROM ledger WHERE seq = ?", (gone,))
    assert fault(ledger) == ("seq", gone)


async def test_an_entry_inserted_before_the_first_is_detected_as_seq_fault(ledger: Path) -> None:
    with tampering(ledger) as conn:
        conn.execute(
            "INSERT INTO ledger (seq, prev, leaf_hash, entry, ts, type)"
            " SELECT -1, prev, leaf_hash, entry, ts, type FROM ledger WHERE seq = 0"
        )
    assert fault(ledger) == ("seq", 0)


# --- (d) truncation ------------------------------------------------------------------------------


async def test_a_tail_deleted_below_the_newest_checkpoint_is_detected_as_truncated(
    ledger: Path,
) -> None:
    with tampering(ledger) as conn:
        conn.execute("DELETE FROM ledger WHERE seq >= 9")
    assert fault(ledger) == ("truncated", 9)


async def test_a_ledger_emptied_below_its_checkpoints_is_detected_as_truncated(
    ledger: Path,
) -> None:
    with tampering(ledger) as conn:
        conn.execute("DELETE FROM ledger")
    assert fault(ledger) == ("truncated", 0)


# --- (e) re-chaining ------------------------------------------------------------------------------


def _note(fields: dict[str, Any]) -> dict[str, Any]:
    fields["data"]["note"] = "rewritten history"
    return fields


@pytest.mark.parametrize(("seq", "root_fault_at"), [(2, 4), (7, SIZE - 1)])
async def test_a_rechained_ledger_is_detected_as_root_fault_at_the_next_checkpoint(
    ledger: Path, seq: int, root_fault_at: int
) -> None:
    with tampering(ledger) as conn:
        rechain(conn, seq, edit=_note)
    # Every link holds: only the signed root can tell.
    chain = rows(ledger)
    assert all(chain[i][1] == chain[i - 1][2] for i in range(1, len(chain)))
    assert json.loads(chain[seq][3])["data"]["note"] == "rewritten history"
    assert fault(ledger) == ("root", root_fault_at)


async def test_a_rechained_ledger_without_checkpoints_cannot_be_told_apart(
    tmp_path: Path,
) -> None:
    # What the checkpoints are for: delete them all and a careful rewrite verifies.
    state = tmp_path / "state"
    await build_ledger(state, SIZE, checkpoint_at=CHECKPOINTS)
    shutil.rmtree(state / "checkpoints")
    with tampering(state) as conn:
        rechain(conn, 3, edit=_note)
    assert verify_state(state).entries == SIZE


# --- (f) non-canonical bytes --------------------------------------------------------------------


def _spaced(fields: dict[str, Any]) -> bytes:
    return canonical.encode(fields).replace(b"{", b"{ ", 1)


def _unsorted(fields: dict[str, Any]) -> bytes:
    ordered = dict(reversed(list(fields.items())))
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()


def _escaped(fields: dict[str, Any]) -> bytes:
    return canonical.encode(fields).replace(b'"actor"', b'"\\u0061ctor"')


def _slash(fields: dict[str, Any]) -> bytes:
    fields["data"]["path"] = "a/b"
    return canonical.encode(fields).replace(b"a/b", b"a\\/b")


def _upper_hex(fields: dict[str, Any]) -> bytes:
    fields["data"]["ctl"] = "\x1f"
    return canonical.encode(fields).replace(b"\\u001f", b"\\u001F")


def _minus_zero(fields: dict[str, Any]) -> bytes:
    fields["data"]["zero"] = 0
    return canonical.encode(fields).replace(b'"zero":0', b'"zero":-0')


def _ascii_escaped(fields: dict[str, Any]) -> bytes:
    fields["data"]["word"] = "café"
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _duplicate_key(fields: dict[str, Any]) -> bytes:
    return canonical.encode(fields).replace(b'{"actor"', b'{"actor":"x","actor"', 1)


def _trailing_newline(fields: dict[str, Any]) -> bytes:
    return canonical.encode(fields) + b"\n"


def _bom(fields: dict[str, Any]) -> bytes:
    return b"\xef\xbb\xbf" + canonical.encode(fields)


def _float(fields: dict[str, Any]) -> bytes:
    fields["data"]["ratio"] = 7
    return canonical.encode(fields).replace(b'"ratio":7', b'"ratio":0.5')


def _big_int(fields: dict[str, Any]) -> bytes:
    fields["data"]["big"] = 7
    return canonical.encode(fields).replace(b'"big":7', b'"big":9007199254740993')


def _invalid_utf8(fields: dict[str, Any]) -> bytes:
    return canonical.encode(fields).replace(b"entry", b"entr\xff", 1)


def _deeply_nested(fields: dict[str, Any]) -> bytes:
    fields["data"]["deep"] = 7
    return canonical.encode(fields).replace(
        b'"deep":7', b'"deep":' + b"[" * 100_000 + b"]" * 100_000
    )


NON_CANONICAL = [
    _spaced,
    _unsorted,
    _escaped,
    _slash,
    _upper_hex,
    _minus_zero,
    _ascii_escaped,
    _duplicate_key,
    _trailing_newline,
    _bom,
    _float,
    _big_int,
    _invalid_utf8,
    _deeply_nested,
]


@pytest.mark.parametrize("encoder", NON_CANONICAL, ids=lambda f: f.__name__.strip("_"))
async def test_non_canonical_bytes_with_consistent_hashes_are_detected_as_canonical_fault(
    ledger: Path, encoder: Any
) -> None:
    with tampering(ledger) as conn:
        rechain(conn, 6, encoder=encoder)
    assert fault(ledger) == ("canonical", 6)


async def test_an_entry_stored_as_text_is_detected_as_canonical_fault(ledger: Path) -> None:
    with tampering(ledger) as conn:
        raw = entry(conn, 5)
        conn.execute("UPDATE ledger SET entry = ? WHERE seq = 5", (raw.decode(),))
    assert fault(ledger) == ("canonical", 5)


# --- schema ----------------------------------------------------------------------------------


def _without_actor(fields: dict[str, Any]) -> dict[str, Any]:
    del fields["actor"]
    return fields


def _boolean_seq(fields: dict[str, Any]) -> dict[str, Any]:
    assert fields["seq"] == 1
    fields["seq"] = True  # True == 1 in Python: the verifier must look at the type
    return fields


def _string_subject(fields: dict[str, Any]) -> dict[str, Any]:
    fields["subject"] = "T1"
    return fields


def _unknown_version(fields: dict[str, Any]) -> dict[str, Any]:
    fields["v"] = 99
    return fields


@pytest.mark.parametrize(
    "edit",
    [_without_actor, _boolean_seq, _string_subject, _unknown_version],
    ids=lambda f: f.__name__.strip("_"),
)
async def test_a_malformed_entry_with_consistent_hashes_is_detected_as_schema_fault(
    tmp_path: Path, edit: Any
) -> None:
    state = tmp_path / "state"
    await build_ledger(state, 3)
    shutil.rmtree(state / "checkpoints")  # so that only the shape can fail
    with tampering(state) as conn:
        rechain(conn, 1, edit=edit)
    assert fault(state) == ("schema", 1)


async def test_a_top_level_array_is_detected_as_schema_fault(ledger: Path) -> None:
    with tampering(ledger) as conn:
        rechain(conn, 8, encoder=lambda fields: canonical.encode([fields]))
    assert fault(ledger) == ("schema", 8)


async def test_the_first_fault_in_seq_order_is_the_one_reported(ledger: Path) -> None:
    with tampering(ledger) as conn:
        conn.execute("UPDATE ledger SET entry = ? WHERE seq = 9", (b"{ not json",))
        conn.execute("UPDATE ledger SET entry = ? WHERE seq = 3", (edited(entry(conn, 3)),))
    assert fault(ledger) == ("hash", 3)


# --- (g) checkpoints ----------------------------------------------------------------------------


def _checkpoint_file(state: Path, size: int) -> Path:
    return state / "checkpoints" / f"{size:012d}.txt"


@pytest.mark.parametrize("line", [0, 1, 2], ids=["origin", "size", "root"])
async def test_an_edited_checkpoint_body_is_detected_as_signature_fault(
    ledger: Path, line: int
) -> None:
    path = _checkpoint_file(ledger, 5)
    lines = path.read_text().split("\n")
    replacement = {
        0: lines[0] + "x",
        1: "4",
        2: base64.b64encode(hashlib.sha256(b"forged").digest()).decode(),
    }
    lines[line] = replacement[line]
    path.write_text("\n".join(lines))
    assert fault(ledger) == ("signature", 5)


async def test_a_checkpoint_forged_with_another_key_is_detected_as_signature_fault(
    ledger: Path,
) -> None:
    path = _checkpoint_file(ledger, SIZE)
    genuine = Checkpoint.parse(path.read_text(), Verifier.from_dir(ledger / "keys"))
    forger = Signer.generate("phasegate")  # same name, different key
    path.write_text(genuine.sign(forger))
    assert fault(ledger) == ("signature", SIZE)


async def test_a_checkpoint_renamed_to_another_size_is_detected_as_signature_fault(
    ledger: Path,
) -> None:
    _checkpoint_file(ledger, 5).rename(_checkpoint_file(ledger, 7))
    assert fault(ledger) == ("signature", 7)


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"\xff\xfe\x00binary", b"origin\n5\nAAAA\n\n"], ids=repr
)
async def test_a_corrupt_checkpoint_file_is_detected_as_signature_fault(
    ledger: Path, content: bytes
) -> None:
    _checkpoint_file(ledger, 5).write_bytes(content)
    assert fault(ledger) == ("signature", 5)


async def test_a_replaced_public_key_fails_every_checkpoint(ledger: Path) -> None:
    other = Signer.generate("phasegate")
    (ledger / "keys" / "ed25519.pub").write_text(other.verifier.vkey() + "\n")
    assert fault(ledger) == ("signature", 5)


# --- unreadable input ------------------------------------------------------------------------


async def test_a_missing_database_is_a_store_error(ledger: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (ledger / f"phasegate.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError):
        verify_state(ledger)


@pytest.mark.parametrize("damage", ["missing", "garbage"])
async def test_a_missing_or_garbled_public_key_is_a_store_error(ledger: Path, damage: str) -> None:
    pub = ledger / "keys" / "ed25519.pub"
    if damage == "missing":
        pub.unlink()
    else:
        pub.write_text("phasegate+00000000+not-base64!\n")
    with pytest.raises(StoreError):
        verify_state(ledger)


async def test_a_database_without_a_ledger_table_is_a_store_error(ledger: Path) -> None:
    with tampering(ledger) as conn:
        conn.execute("DROP TABLE ledger")
    with pytest.raises(StoreError):
        verify_state(ledger)


# --- verify_rows over synthetic chains (no database): batches and single-byte damage -------------


def synthetic(count: int) -> list[tuple[int, str, str, bytes]]:
    """A valid chain built with hashlib and the canonical encoder, independent of the ledger."""
    out, prev = [], "0" * 64
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
                "data": {
                    "n": seq,
                    "id": f"{seq * 7919:020d}" if seq % 2 else "-",  # 16+ digits: exact path
                    "text": "ü ☃ 😀"[: seq % 4],  # outside the BMP: rfc8785 decides
                },
                "refs": {},
            }
        )
        leaf = leaf_hex(raw)
        out.append((seq, prev, leaf, raw))
        prev = leaf
    return out


def _root(rows_: list[tuple[int, str, str, bytes]]) -> bytes:
    return merkle.root([bytes.fromhex(r[2]) for r in rows_])


def test_verify_rows_checks_chains_longer_than_one_batch() -> None:
    chain = synthetic(9000)
    signed = {4096: _root(chain[:4096]), 5000: _root(chain[:5000]), 9000: _root(chain)}
    count, root = verify_rows(iter(chain), signed)
    assert (count, root) == (9000, _root(chain))


@pytest.mark.parametrize("at", [0, 4095, 4096, 8191, 8999])
def test_verify_rows_reports_faults_at_and_around_batch_boundaries(at: int) -> None:
    chain = synthetic(9000)
    seq, prev, leaf, raw = chain[at]
    chain[at] = (seq, prev, leaf, raw.replace(b'"alice"', b'"alicf"'))
    with pytest.raises(LedgerFaultError) as caught:
        verify_rows(iter(chain))
    assert (caught.value.kind, caught.value.seq) == ("hash", at)


def test_verify_rows_reports_a_wrong_signed_root_at_its_size() -> None:
    chain = synthetic(50)
    with pytest.raises(LedgerFaultError) as caught:
        verify_rows(iter(chain), {20: _root(chain[:20]), 30: _root(chain[:31])})
    assert (caught.value.kind, caught.value.seq) == ("root", 29)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=40),
    data=st.data(),
)
def test_any_single_byte_change_is_reported_at_the_changed_entry(count: int, data: Any) -> None:
    chain = synthetic(count)
    assert verify_rows(iter(chain)) == (count, _root(chain))
    at = data.draw(st.integers(min_value=0, max_value=count - 1), label="entry")
    seq, prev, leaf, raw = chain[at]
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="byte")
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[pos]))
    chain[at] = (seq, prev, leaf, raw[:pos] + bytes([new]) + raw[pos + 1 :])
    with pytest.raises(LedgerFaultError) as caught:
        verify_rows(iter(chain))
    assert caught.value.seq == at
    assert caught.value.kind in {"canonical", "schema", "seq", "hash", "link"}
