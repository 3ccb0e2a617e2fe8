"""Signed checkpoints: the C2SP tlog-checkpoint / signed-note text, its parsing, and the files."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enforcer.ledger import checkpoint
from enforcer.ledger.checkpoint import Checkpoint, CheckpointError
from enforcer.ledger.keys import Signer

ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("phasegate")


def sign_body(signer: Signer, body: str) -> str:
    """A note over an arbitrary body, signed by the real key (to reach checks behind the
    signature)."""
    blob = base64.b64encode(signer.verifier.key_id + signer.sign(body.encode())).decode()
    return f"{body}\n\u2014 {signer.name} {blob}\n"


def test_the_note_is_the_c2sp_checkpoint_text(signer: Signer) -> None:
    text = Checkpoint(origin="phasegate/abcd", size=42, root=ROOT).sign(signer)
    body, sep, signatures = text.partition("\n\n")
    assert sep
    assert body.split("\n") == ["phasegate/abcd", "42", base64.b64encode(ROOT).decode()]
    dash, name, blob = signatures.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "phasegate")
    raw = base64.b64decode(blob)
    assert raw[:4] == signer.verifier.key_id
    # The signature covers the body with its final newline (signed-note), checked here
    # with the cryptography package directly.
    Ed25519PublicKey.from_public_bytes(signer.verifier.public).verify(
        raw[4:], (body + "\n").encode()
    )


def test_signing_is_deterministic_and_parses_back(signer: Signer) -> None:
    cp = Checkpoint(origin="o", size=7, root=ROOT)
    assert cp.sign(signer) == cp.sign(signer)
    assert Checkpoint.parse(cp.sign(signer), signer.verifier) == cp


def test_a_zero_size_checkpoint_parses(signer: Signer) -> None:
    cp = Checkpoint(origin="o", size=0, root=hashlib.sha256(b"").digest())
    assert Checkpoint.parse(cp.sign(signer), signer.verifier) == cp


def test_a_note_with_other_signatures_besides_ours_parses(signer: Signer) -> None:
    other = Signer.generate("witness")
    cp = Checkpoint(origin="o", size=3, root=ROOT)
    ours = cp.sign(signer)
    theirs = cp.sign(other).split("\n\n", 1)[1]
    assert Checkpoint.parse(ours + theirs, signer.verifier) == cp
    assert Checkpoint.parse(cp.body() + "\n" + theirs + ours.split("\n\n", 1)[1], signer.verifier)


@pytest.mark.parametrize(
    ("old", "new"),
    [("\n7\n", "\n8\n"), ("o\n", "p\n"), ("\u2014 phasegate", "\u2014 phasegatf")],
    ids=["size", "origin", "signer name"],
)
def test_an_edited_note_fails_its_signature(signer: Signer, old: str, new: str) -> None:
    text = Checkpoint(origin="o", size=7, root=ROOT).sign(signer)
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(text.replace(old, new, 1), signer.verifier)
    assert caught.value.kind == "signature"


def test_an_edited_root_fails_its_signature(signer: Signer) -> None:
    text = Checkpoint(origin="o", size=7, root=ROOT).sign(signer)
    forged = text.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode())
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(forged, signer.verifier)
    assert caught.value.kind == "signature"


def test_a_note_signed_by_another_key_fails(signer: Signer) -> None:
    text = Checkpoint(origin="o", size=7, root=ROOT).sign(Signer.generate("phasegate"))
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(text, signer.verifier)
    assert caught.value.kind == "signature"


def test_a_signature_with_our_key_id_but_a_flipped_bit_fails(signer: Signer) -> None:
    text = Checkpoint(origin="o", size=7, root=ROOT).sign(signer)
    body, _, sig_line = text.partition("\n\n")
    dash, name, blob = sig_line.strip().split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    forged = f"{body}\n\n{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(forged, signer.verifier)
    assert caught.value.kind == "signature"


@pytest.mark.parametrize(
    "body",
    [
        "o\n07\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
        "o\n-7\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n\u0663\n" + base64.b64encode(ROOT).decode() + "\n",  # ARABIC-INDIC DIGIT THREE
        "o\n\u00b2\n" + base64.b64encode(ROOT).decode() + "\n",  # SUPERSCRIPT TWO
        "o\n7\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # 31-byte root
        "o\n7\nnot base64!\n",
        "o\n7\n",  # no root line
    ],
    ids=["leading-zero", "negative", "arabic-digit", "superscript", "short-root", "b64", "short"],
)
def test_a_malformed_body_is_a_format_error_even_when_signed(signer: Signer, body: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(sign_body(signer, body), signer.verifier)
    assert caught.value.kind == "format"


def test_a_note_without_signatures_is_a_format_error(signer: Signer) -> None:
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse(Checkpoint(origin="o", size=1, root=ROOT).body(), signer.verifier)
    assert caught.value.kind == "format"


def test_files_are_written_by_size_and_listed_in_order(signer: Signer, tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    assert checkpoint.list_checkpoints(directory) == []
    assert checkpoint.latest(directory, signer.verifier) is None
    for size in (10, 2, 100):
        path = checkpoint.write(directory, Checkpoint("o", size, ROOT), signer)
        assert path.name == f"{size:012d}.txt"
    (directory / "notes.txt").write_text("ignored")
    (directory / ("\u0660" * 11 + "5.txt")).write_text("ignored: not ASCII digits")
    (directory / ".cp-partial").write_text("ignored: a temporary file")
    assert [size for size, _ in checkpoint.list_checkpoints(directory)] == [2, 10, 100]
    assert checkpoint.latest(directory, signer.verifier) == Checkpoint("o", 100, ROOT)


def test_rewriting_the_same_checkpoint_leaves_identical_bytes(
    signer: Signer, tmp_path: Path
) -> None:
    cp = Checkpoint("o", 5, ROOT)
    first = checkpoint.write(tmp_path, cp, signer).read_bytes()
    second = checkpoint.write(tmp_path, cp, signer).read_bytes()
    assert first == second
    assert [p.name for p in tmp_path.iterdir()] == ["000000000005.txt"]


def test_reading_a_file_that_is_not_utf8_is_a_format_error(signer: Signer, tmp_path: Path) -> None:
    path = tmp_path / "000000000001.txt"
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(CheckpointError) as caught:
        checkpoint.read(path, signer.verifier)
    assert caught.value.kind == "format"
    with pytest.raises(CheckpointError):
        checkpoint.latest(tmp_path, signer.verifier)
