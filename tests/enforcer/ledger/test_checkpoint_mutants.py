"""Checkpoint parsing and writing at the edges a weakened check would let through: each note
here is signed by the real key, so only the rule under test can refuse it (or, for the notes
that must parse, only a stricter rule than the spec's could).

C2SP signed-note: after the body, one signature line per signer, ``— <name> <base64(key id ||
signature)>``; a verifier skips lines that are not for its name and key, so foreign and
malformed lines never stop a valid signature from counting, and no line that is not exactly
ours may count as ours.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
from ledger_kit import build_ledger

from enforcer.errors import LedgerFaultError
from enforcer.ledger import checkpoint
from enforcer.ledger.checkpoint import Checkpoint, CheckpointError
from enforcer.ledger.keys import Signer
from enforcer.ledger.verify import verify_state

ROOT = hashlib.sha256(b"root").digest()
DASH = "\u2014"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("phasegate")


def _blob(signer: Signer, body: str, key_id: bytes | None = None) -> str:
    raw = (signer.verifier.key_id if key_id is None else key_id) + signer.sign(body.encode())
    return base64.b64encode(raw).decode()


def _note(body: str, *signature_lines: str) -> str:
    return body + "\n" + "".join(line + "\n" for line in signature_lines)


def _kind(text: str, signer: Signer) -> str:
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(text, signer.verifier)
    return caught.value.kind


BODY = Checkpoint(origin="o", size=7, root=ROOT).body()
WANT = Checkpoint(origin="o", size=7, root=ROOT)


# --- the body ---------------------------------------------------------------------------------


def test_a_body_with_an_extension_line_after_the_root_parses(signer: Signer) -> None:
    # tlog-checkpoint allows extension lines after the root; the signature covers them.
    body = BODY + "extension: value\n"
    note = _note(body, f"{DASH} phasegate {_blob(signer, body)}")
    assert Checkpoint.parse(note, signer.verifier) == WANT


@pytest.mark.parametrize("length", [33, 64])
def test_a_root_longer_than_32_bytes_is_a_format_error(signer: Signer, length: int) -> None:
    body = f"o\n7\n{base64.b64encode(bytes(range(length))).decode()}\n"
    assert _kind(_note(body, f"{DASH} phasegate {_blob(signer, body)}"), signer) == "format"


@pytest.mark.parametrize(
    "root_text",
    [
        "\u00e9" + base64.b64encode(ROOT).decode()[1:],
        "\u0663",
        "!" + base64.b64encode(ROOT).decode(),  # a stray character, the 32 bytes intact
        base64.b64encode(ROOT).decode()[:20] + " " + base64.b64encode(ROOT).decode()[20:],
    ],
    ids=["non-ascii", "arabic-digit", "stray-bang", "inner-space"],
)
def test_a_root_line_with_a_character_that_is_not_base64_is_a_format_error(
    signer: Signer, root_text: str
) -> None:
    body = f"o\n7\n{root_text}\n"
    assert _kind(_note(body, f"{DASH} phasegate {_blob(signer, body)}"), signer) == "format"


# --- the signature lines ------------------------------------------------------------------------


def _ours(signer: Signer) -> str:
    return f"{DASH} phasegate {_blob(signer, BODY)}"


@pytest.mark.parametrize(
    "junk",
    [
        f"{DASH} phasegate",  # too few fields
        DASH,
        f"{DASH} phasegate !!!not-base64!!!",  # not base64
        f"{DASH} phasegate QUJD=",  # base64 with bad padding
        f"{DASH} phasegate " + base64.b64encode(b"\x00" * 10).decode(),  # too short a blob
        "",
        "a line of prose",
    ],
    ids=["two-fields", "dash-only", "not-b64", "bad-padding", "short-blob", "empty", "prose"],
)
def test_malformed_signature_lines_before_ours_are_skipped(signer: Signer, junk: str) -> None:
    assert Checkpoint.parse(_note(BODY, junk, _ours(signer)), signer.verifier) == WANT


@pytest.mark.parametrize(
    "junk",
    [f"{DASH} phasegate", f"{DASH} phasegate !!!not-base64!!!", DASH],
    ids=["two-fields", "not-b64", "dash-only"],
)
def test_a_malformed_signature_line_alone_is_a_signature_error(signer: Signer, junk: str) -> None:
    assert _kind(_note(BODY, junk), signer) == "signature"


def test_our_blob_with_a_trailing_field_does_not_count(signer: Signer) -> None:
    assert _kind(_note(BODY, _ours(signer) + " extra"), signer) == "signature"


@pytest.mark.parametrize("dash", ["-", "\u2015", "\u2013", "--"], ids=["hyphen", "bar", "en", "2"])
def test_our_blob_after_another_dash_does_not_count(signer: Signer, dash: str) -> None:
    assert _kind(_note(BODY, f"{dash} phasegate {_blob(signer, BODY)}"), signer) == "signature"


@pytest.mark.parametrize("name", ["a", "phasegatf", "phasegat", "zz", "Phasegate"])
def test_our_blob_under_another_name_does_not_count(signer: Signer, name: str) -> None:
    assert _kind(_note(BODY, f"{DASH} {name} {_blob(signer, BODY)}"), signer) == "signature"


def test_our_blob_with_a_stray_character_does_not_count(signer: Signer) -> None:
    blob = _blob(signer, BODY)
    for stray in (blob[:8] + "!" + blob[8:], blob + "*", "\u00e9" + blob):
        assert _kind(_note(BODY, f"{DASH} phasegate {stray}"), signer) == "signature"


def test_a_valid_signature_under_another_key_id_does_not_count(signer: Signer) -> None:
    ours = int.from_bytes(signer.verifier.key_id, "big")
    for other in (ours - 1, ours + 1, 0, 2**32 - 1):
        if other == ours or not 0 <= other < 2**32:
            continue
        blob = _blob(signer, BODY, key_id=other.to_bytes(4, "big"))
        assert _kind(_note(BODY, f"{DASH} phasegate {blob}"), signer) == "signature"


# --- the record and the files -------------------------------------------------------------------


def test_a_parsed_checkpoint_cannot_be_changed(signer: Signer) -> None:
    cp = Checkpoint.parse(_note(BODY, _ours(signer)), signer.verifier)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.size = 8  # type: ignore[misc]


def test_write_creates_missing_parent_directories(signer: Signer, tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "checkpoints"
    path = checkpoint.write(directory, WANT, signer)
    assert path == directory / "000000000007.txt"
    assert checkpoint.read(path, signer.verifier) == WANT


def test_a_write_that_fails_leaves_no_temporary_file(signer: Signer, tmp_path: Path) -> None:
    (tmp_path / "000000000007.txt").mkdir()  # the rename onto it fails
    with pytest.raises(OSError):
        checkpoint.write(tmp_path, WANT, signer)
    assert sorted(os.listdir(tmp_path)) == ["000000000007.txt"]


async def test_the_verifier_reports_a_checkpoint_with_a_non_ascii_signature_as_a_fault(
    tmp_path: Path,
) -> None:
    # Before: base64's ValueError for a non-ASCII character escaped the parser, and
    # `phasegate ledger verify` failed with a traceback instead of naming the fault.
    state = tmp_path / "state"
    await build_ledger(state, 3)
    path = state / "checkpoints" / "000000000003.txt"
    body, _, sig = path.read_text().partition("\n\n")
    dash, name, blob = sig.strip().split(" ")
    path.write_text(f"{body}\n\n{dash} {name} \u00e9{blob[1:]}\n")
    with pytest.raises(LedgerFaultError) as caught:
        verify_state(state)
    assert (caught.value.kind, caught.value.seq) == ("signature", 3)


def test_newest_size_is_the_greatest_checkpoint_name_and_skips_strays(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    assert checkpoint.newest_size(directory) is None  # no directory
    directory.mkdir()
    assert checkpoint.newest_size(directory) is None  # empty
    for size in (2, 10, 9):
        (directory / f"{size:012d}.txt").write_text("x")
    (directory / "zzzzzzzzzzzz.txt").write_text("a stray of the same width, sorting last")
    (directory / "9999999999999.txt").write_text("another width")
    (directory / ".cp-000000000099").write_text("a temporary file")
    assert checkpoint.newest_size(directory) == 10
    assert checkpoint.path_of(directory, 10) == directory / "000000000010.txt"
    for name in ("000000000010.txt", "000000000009.txt", "000000000002.txt"):
        (directory / name).unlink()
    assert checkpoint.newest_size(directory) is None  # only strays are left
