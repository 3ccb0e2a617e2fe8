"""Version attestations: an in-toto Statement v1 in a DSSE envelope, signed with the server's
Ed25519 key (the key that signs ledger checkpoints).

The statement is a small dict canonicalised by the ledger's RFC 8785 encoder; its one subject
is the version's bundle (``module:NAME@N``, digest ``sha256`` = the bundle_sha256) and its
predicate says where the version came from (source version, draft, diff, validation report,
approval, policy_set_hash, actor, ledger anchor). The envelope is made and checked by
`ledger.dsse` (securesystemslib's `dsse.Envelope`, so the signature covers DSSE's
pre-authentication encoding and phasegate frames nothing itself); it is stored as canonical
JSON bytes.

    raw = sign_statement(statement("skills", 2, bundle, predicate), signer)
    stmt = open_statement(raw, signer.verifier)     # raises AttestationFault
"""

from __future__ import annotations

import json
from typing import Any

from ..ledger import canonical
from ..ledger.dsse import EnvelopeError, open_envelope, sign_envelope
from ..ledger.keys import Signer, Verifier

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "AttestationFault",
    "open_statement",
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


def sign_statement(stmt: dict[str, Any], signer: Signer) -> bytes:
    """The envelope, as canonical JSON bytes, over the statement's canonical bytes."""
    return canonical.encode(sign_envelope(signer, canonical.encode(stmt), PAYLOAD_TYPE))


def open_statement(raw: bytes, verifier: Verifier) -> dict[str, Any]:
    """The statement inside `raw` once its signature verifies with `verifier`.

    Raises AttestationFault: ``envelope`` (not a DSSE envelope of an in-toto statement),
    ``signature`` (no signature by this key verifies over the payload — a changed payload or
    signature alike), ``statement`` (the payload is not a canonical in-toto Statement v1 of this
    predicate type)."""
    try:
        envelope = json.loads(raw)
    except ValueError as e:
        raise AttestationFault("envelope", f"the attestation is not JSON: {e}") from e
    if (
        not isinstance(envelope, dict)
        or envelope.get("payloadType") != PAYLOAD_TYPE
        or not isinstance(envelope.get("payload"), str)
        or not isinstance(envelope.get("signatures"), list)
    ):
        raise AttestationFault("envelope", "the attestation is not a DSSE in-toto envelope")
    try:
        payload = open_envelope(envelope, verifier, PAYLOAD_TYPE)
    except EnvelopeError as e:
        raise AttestationFault("signature", "the envelope's signature does not verify") from e
    try:
        stmt = canonical.decode(payload)
    except ValueError as e:
        raise AttestationFault("statement", f"the payload is not JSON: {e}") from e
    if (
        not isinstance(stmt, dict)
        or canonical.encode(stmt) != payload
        or stmt.get("_type") != STATEMENT_TYPE
        or stmt.get("predicateType") != PREDICATE_TYPE
        or not isinstance(stmt.get("subject"), list)
        or not isinstance(stmt.get("predicate"), dict)
    ):
        raise AttestationFault("statement", "the payload is not a canonical Statement v1")
    return stmt
