"""The signing key: created once with owner-only permissions, its public half exported in the
signed-note verifier format, and exactly one key when several processes start together."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ledger_kit import children, python

from enforcer.errors import StoreError
from enforcer.ledger.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, Signer, Verifier, key_id


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_is_created_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    Signer.load_or_create(keys, "phasegate")
    assert mode(keys / PRIVATE_KEY_FILE) == 0o600
    assert mode(keys) == 0o700
    assert mode(keys / PUBLIC_KEY_FILE) == 0o644
    assert sorted(p.name for p in keys.iterdir()) == sorted([PUBLIC_KEY_FILE, PRIVATE_KEY_FILE])


def test_the_exported_public_key_verifies_what_the_key_signs(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path / "keys", "phasegate")
    exported = Verifier.from_dir(tmp_path / "keys")
    assert exported == signer.verifier
    signature = signer.sign(b"message")
    assert exported.verify(signature, b"message")
    assert not exported.verify(signature, b"messagE")
    # Independently of phasegate's wrapper:
    Ed25519PublicKey.from_public_bytes(exported.public).verify(signature, b"message")


def test_the_verifier_key_is_in_the_signed_note_format(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path / "keys", "phasegate")
    text = (tmp_path / "keys" / PUBLIC_KEY_FILE).read_text()
    name, hash_hex, encoded = text.strip().split("+", 2)
    public = signer.verifier.public
    assert name == "phasegate"
    assert base64.b64decode(encoded) == b"\x01" + public
    expected_id = hashlib.sha256(b"phasegate\n\x01" + public).digest()[:4]
    assert bytes.fromhex(hash_hex) == expected_id == key_id("phasegate", public)
    assert Verifier.from_vkey(text) == signer.verifier


def test_loading_again_returns_the_same_key(tmp_path: Path) -> None:
    first = Signer.load_or_create(tmp_path / "keys", "phasegate")
    second = Signer.load_or_create(tmp_path / "keys", "phasegate")
    assert first.verifier == second.verifier
    assert first.sign(b"x") == second.sign(b"x")  # Ed25519 is deterministic


def test_a_deleted_public_key_is_exported_again(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path / "keys", "phasegate")
    (tmp_path / "keys" / PUBLIC_KEY_FILE).unlink()
    Signer.load_or_create(tmp_path / "keys", "phasegate")
    assert Verifier.from_dir(tmp_path / "keys") == signer.verifier


def test_a_corrupt_private_key_is_a_store_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / PRIVATE_KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(StoreError):
        Signer.load_or_create(keys, "phasegate")


@pytest.mark.parametrize(
    "text",
    [
        "phasegate+00000000+" + base64.b64encode(b"\x01" + b"k" * 31).decode(),  # short key
        "phasegate+00000000+" + base64.b64encode(b"\x02" + b"k" * 32).decode(),  # not Ed25519
        "phasegate+00000000+***",
        "no separators",
    ],
)
def test_a_malformed_verifier_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Verifier.from_vkey(text)


CREATE = """
import sys
from pathlib import Path
from enforcer.ledger.keys import Signer
print("ready", flush=True)
sys.stdin.readline()
print(Signer.load_or_create(Path(sys.argv[1]), "phasegate").verifier.vkey(), flush=True)
"""


def test_concurrent_creators_end_with_one_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with children() as started:
        started += [python(CREATE, str(keys), cwd=tmp_path) for _ in range(4)]
        for child in started:
            assert child.line() == "ready"
        for child in started:  # released together: they race to create the key
            child.release()
        results = [child.finish() for child in started]
    assert [code for _, code, _ in results] == [0, 0, 0, 0], [err for _, _, err in results]
    published = {lines[0] for lines, _, _ in results}
    assert len(published) == 1
    assert (keys / PUBLIC_KEY_FILE).read_text().strip() == published.pop()
    assert sorted(p.name for p in keys.iterdir()) == sorted([PUBLIC_KEY_FILE, PRIVATE_KEY_FILE])
    assert mode(keys / PRIVATE_KEY_FILE) == 0o600
