"""The server's Ed25519 signing key, created once in ``state/keys/`` (0600) with its public half.

Two processes starting together on a fresh state directory must end with one key: the key is
written to a temporary file and hard-linked into place, so the loser of the race reads the
winner's key instead of overwriting it.

    signer = Signer.load_or_create(state_dir / "keys", name="phasegate")
    sig = signer.sign(b"message")
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import StoreError

__all__ = ["PRIVATE_KEY_FILE", "PUBLIC_KEY_FILE", "Signer", "Verifier", "key_id"]

PRIVATE_KEY_FILE = "ed25519.key"
PUBLIC_KEY_FILE = "ed25519.pub"


def key_id(name: str, public: bytes) -> bytes:
    """C2SP signed-note key hash: first 4 bytes of sha256(name || "\\n" || 0x01 || key)."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key with the name it signs under."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def vkey(self) -> str:
        """The signed-note verifier key string: name+hash+base64(0x01 || key)."""
        encoded = base64.b64encode(b"\x01" + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        name, _hash, encoded = text.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) != 33 or raw[0] != 1:
            raise ValueError("not an Ed25519 verifier key")
        return cls(name=name, public=raw[1:])

    @classmethod
    def from_dir(cls, keys_dir: Path) -> Verifier:
        """Read the exported public key (raises OSError or ValueError when absent or malformed)."""
        return cls.from_vkey((keys_dir / PUBLIC_KEY_FILE).read_text())


class Signer:
    """Holds the private key; signs checkpoints and attestations."""

    def __init__(self, private: Ed25519PrivateKey, name: str) -> None:
        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = Verifier(name=name, public=raw)

    @property
    def name(self) -> str:
        return self.verifier.name

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(Ed25519PrivateKey.generate(), name)

    @classmethod
    def load_or_create(cls, keys_dir: Path, name: str) -> Signer:
        """Load ``keys_dir/ed25519.key``, creating it (mode 0600) and the public key if absent."""
        path = keys_dir / PRIVATE_KEY_FILE
        try:
            keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                cls._create(path)
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot load or create the signing key at {path}: {e}") from e
        if not isinstance(private, Ed25519PrivateKey):
            raise StoreError(f"{path} is not an Ed25519 private key")
        signer = cls(private, name)
        pub = keys_dir / PUBLIC_KEY_FILE
        if not pub.exists() or pub.read_text().strip() != signer.verifier.vkey():
            _write_atomic(pub, (signer.verifier.vkey() + "\n").encode(), 0o644)
        return signer

    @staticmethod
    def _create(path: Path) -> None:
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
            os.fsync(fd)
            os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
        finally:
            os.unlink(tmp)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
