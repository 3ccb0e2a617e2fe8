"""The install guard: nothing reaches an install path that has not passed it.

`verify_version` reads like sigstore's verifiers: it returns the verified manifest or raises
AttestationInvalidError whose ``details.fault`` names what is wrong, checking — before anything
moves — the envelope's signature with the server's key, the statement's subject against the
version (name and bundle digest), the envelope against the digest recorded at promotion, the
manifest's bytes against the bundle digest; `trees.Trees.prepare` then checks every file blob's
digest while it builds (or re-checks) the version's tree, and only then may the pointer move.

Faults: ``attestation_missing``, ``envelope``, ``signature``, ``statement``, ``subject``,
``attestation`` (differs from the recorded envelope), ``manifest`` (missing, altered or
malformed), ``blob`` (a file's bytes missing or altered; ``details.path`` names it).

    manifest = verify_version(record, blobs, signer.verifier)
"""

from __future__ import annotations

from ..errors import AttestationInvalidError, PhasegateError
from ..ledger.keys import Verifier
from .attestation import AttestationFault, open_statement, subject_name
from .blobs import BlobStore, sha256_hex
from .manifest import Manifest, ManifestError
from .records import VersionRecord

__all__ = ["guard_error", "verify_version"]


def guard_error(
    record: VersionRecord, fault: str, message: str, path: str | None = None
) -> AttestationInvalidError:
    details: dict[str, object] = {
        "fault": fault,
        "module": record.module,
        "version": record.version,
    }
    if path is not None:
        details["path"] = path
    return AttestationInvalidError(
        f"module {record.module} v{record.version}: {message}",
        hint="nothing was installed and the pointer did not move; a supervisor runs"
        " phasegate verify to see every fault",
        details=details,
    )


def verify_version(record: VersionRecord, blobs: BlobStore, verifier: Verifier) -> Manifest:
    """The version's manifest, once its attestation and manifest verify (file blobs are
    checked by `Trees.prepare`). Raises AttestationInvalidError."""
    try:
        raw = blobs.read(record.attestation_sha256)
    except (PhasegateError, OSError) as e:  # missing or unreadable: it cannot verify
        raise guard_error(record, "attestation_missing", "its attestation is missing") from e
    try:
        stmt = open_statement(raw, verifier)
    except AttestationFault as e:
        raise guard_error(record, e.fault, e.message) from e
    wanted = [
        {
            "name": subject_name(record.module, record.version),
            "digest": {"sha256": record.bundle_sha256},
        }
    ]
    if stmt["subject"] != wanted:
        raise guard_error(record, "subject", "the attestation's subject is not this version")
    predicate = stmt["predicate"]
    if predicate.get("module") != record.module or predicate.get("version") != record.version:
        raise guard_error(record, "statement", "the attestation speaks of another version")
    if sha256_hex(raw) != record.attestation_sha256:
        raise guard_error(record, "attestation", "the envelope differs from the one recorded")
    data = blobs.read_checked(record.bundle_sha256)
    if data is None:
        raise guard_error(record, "manifest", "its manifest is missing or altered")
    try:
        manifest = Manifest.from_bytes(data)
    except ManifestError as e:
        raise guard_error(record, "manifest", f"its manifest is malformed: {e}") from e
    if len(manifest) != record.files or manifest.total_bytes != record.bytes:
        raise guard_error(record, "manifest", "its manifest disagrees with the recorded counts")
    return manifest
