"""Version attestations: an in-toto Statement v1 in a DSSE envelope, signed with the server's
Ed25519 key (the key that signs ledger checkpoints).

The statement is a small dict canonicalised by the ledger's RFC 8785 encoder; its one subject
is the version's bundle (``module:NAME@N``, digest ``sha256`` = the bundle_sha256) and its
predicate says where the version came from (source version, draft, diff, validation report,
approval, policy_set_hash, actor, ledger anchor). The envelope is securesystemslib's
`dsse.Envelope`, so the signature covers DSSE's pre-authentication encoding
(``DSSEv1 len(type) type len(body) body``, https://github.com/secure-systems-lab/dsse) and not
re-implemented here; it is stored as canonical JSON bytes.

    raw = sign_statement(statement("skills", 2, bundle, predicate), signer)
    stmt = open_envelope(raw, signer.verifier)     # raises AttestationFault
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib import dsse
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import Key, Signature, SSlibKey
from securesystemslib.signer import Signer as SslibSigner

from ..ledger import canonical
from ..ledger.keys import Signer, Verifier

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "AttestationFault",
    "open_envelope",
    "sign_statement",
    "statement",
    "subject_name",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://phasegate.dev/module-version/v1"


class AttestationFault(Exception):
    """An envelope that does not verify; `fault` names what is wrong."""

    def __init__(self, fault: str, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message


def subject_name(module: str, version: int) -> str:
    return f"module:{module}@{version}"


def statement(
    module: str, version: int, bundle_sha256: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    """The in-toto Statement v1 for version `version` of `module`."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name(module, version), "digest": {"sha256": bundle_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def _sslib_key(verifier: Verifier) -> Key:
    return SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(verifier.public))


class _ServerKeySigner(SslibSigner):
    """securesystemslib's signer interface over the server's own key: the private key stays in
    `ledger.keys.Signer`, which signs the PAE bytes the envelope hands it."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._key = _sslib_key(signer.verifier)

    @property
    def public_key(self) -> Key:
        return self._key

    def sign(self, payload: bytes) -> Signature:
        return Signature(self._key.keyid, self._signer.sign(payload).hex())

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Key, secrets_handler: Any = None
    ) -> SslibSigner:
        raise NotImplementedError("the server key is not loaded by URI")


def sign_statement(stmt: dict[str, Any], signer: Signer) -> bytes:
    """The envelope, as canonical JSON bytes, over the statement's canonical bytes."""
    envelope = dsse.Envelope(canonical.encode(stmt), PAYLOAD_TYPE, {})
    envelope.sign(_ServerKeySigner(signer))
    return canonical.encode(envelope.to_dict())


def open_envelope(raw: bytes, verifier: Verifier) -> dict[str, Any]:
    """The statement inside `raw` once its signature verifies with `verifier`.

    Raises AttestationFault: ``envelope`` (not a DSSE envelope), ``signature`` (no signature by
    this key verifies over the payload — a changed payload or signature alike), ``statement``
    (the payload is not a canonical in-toto Statement v1 of this predicate type)."""
    try:
        envelope = dsse.Envelope.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise AttestationFault("envelope", f"the attestation is not a DSSE envelope: {e}") from e
    if envelope.payload_type != PAYLOAD_TYPE:
        raise AttestationFault("envelope", f"payload type {envelope.payload_type!r}")
    try:
        envelope.verify([_sslib_key(verifier)], 1)
    except (VerificationError, ValueError) as e:
        raise AttestationFault("signature", "the envelope's signature does not verify") from e
    try:
        stmt = canonical.decode(envelope.payload)
    except ValueError as e:
        raise AttestationFault("statement", f"the payload is not JSON: {e}") from e
    if (
        not isinstance(stmt, dict)
        or canonical.encode(stmt) != envelope.payload
        or stmt.get("_type") != STATEMENT_TYPE
        or stmt.get("predicateType") != PREDICATE_TYPE
        or not isinstance(stmt.get("subject"), list)
        or not isinstance(stmt.get("predicate"), dict)
    ):
        raise AttestationFault("statement", "the payload is not a canonical Statement v1")
    return stmt
