"""DSSE envelopes signed with the ledger's Ed25519 key (securesystemslib's Envelope).

The envelope's signature covers DSSE's PAE framing of the payload type and the payload
(https://github.com/secure-systems-lab/dsse/blob/master/protocol.md); securesystemslib builds
and checks it, so phasegate never frames bytes for signing itself. The payload is whatever the
caller canonicalised (RFC 8785 via `canonical`), e.g. an in-toto Statement or an export.

    envelope = sign_envelope(signer, payload, "application/vnd.in-toto+json")
    payload = open_envelope(envelope, verifier, "application/vnd.in-toto+json")
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import Signature, SSlibKey
from securesystemslib.signer import Signer as SslibSigner

from .keys import Signer, Verifier

__all__ = ["EnvelopeError", "open_envelope", "sign_envelope"]


class EnvelopeError(ValueError):
    """The envelope is malformed, of another payload type, or its signature does not verify."""


def _public(verifier: Verifier) -> SSlibKey:
    key = Ed25519PublicKey.from_public_bytes(verifier.public)
    return SSlibKey.from_crypto(key, keyid=verifier.key_id.hex(), scheme="ed25519")


class _LedgerKey(SslibSigner):
    """securesystemslib's signer interface over the ledger's key (which never leaves Signer)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = _public(signer.verifier)

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Any, secrets_handler: Any = None
    ) -> Any:
        raise TypeError("the ledger key is loaded from state/keys, not from a URI")

    @property
    def public_key(self) -> SSlibKey:
        return self._public

    def sign(self, payload: bytes) -> Signature:
        raw = self._signer.sign(payload)
        return Signature(keyid=self._public.keyid, sig=raw.hex())


def sign_envelope(signer: Signer, payload: bytes, payload_type: str) -> dict[str, Any]:
    """A DSSE envelope (as JSON-ready dict) of `payload`, signed with the ledger key."""
    envelope = Envelope(payload=payload, payload_type=payload_type, signatures={})
    envelope.sign(_LedgerKey(signer))
    return dict(envelope.to_dict())


def open_envelope(envelope: Any, verifier: Verifier, payload_type: str) -> bytes:
    """The payload of `envelope` once its type and its signature by `verifier` check out."""
    try:
        parsed = Envelope.from_dict(copy.deepcopy(envelope))  # from_dict pops from its input
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise EnvelopeError(f"not a DSSE envelope: {e}") from e
    if parsed.payload_type != payload_type:
        raise EnvelopeError(f"payload type is {parsed.payload_type!r}, not {payload_type!r}")
    try:
        parsed.verify([_public(verifier)], 1)
    except VerificationError as e:
        raise EnvelopeError(f"the signature does not verify: {e}") from e
    return bytes(parsed.payload)


def payload_of(envelope: dict[str, Any]) -> bytes:
    """The payload bytes without checking anything (for reporting on a broken envelope)."""
    return base64.b64decode(str(envelope.get("payload", "")))
