"""The install guard's checks one at a time, each reached by a version that passes every check
before it: a statement signed by the server's own key that names another module or version, an
envelope whose bytes differ from the digest recorded at promotion (still validly signed), a
manifest that disagrees with the recorded counts, an attestation blob that is gone or cannot be
read. Each is refused ATTESTATION_INVALID with its fault, by `verify_version` itself."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from modules_kit import World, blob_path, world

from enforcer.errors import AttestationInvalidError
from enforcer.modules.attestation import open_statement, sign_statement
from enforcer.modules.guard import verify_version
from enforcer.modules.records import VersionRecord, version_row


async def _record(w: World, version: int = 1) -> VersionRecord:
    return await w.e.store.read(lambda tx: version_row(tx, "skills", version))


def _fault(w: World, record: VersionRecord) -> str:
    with pytest.raises(AttestationInvalidError) as caught:
        verify_version(record, w.e.modules.kit.blobs, w.e.rt.signer.verifier)
    assert caught.value.code == "ATTESTATION_INVALID"
    details: dict[str, Any] = caught.value.details
    assert (details["module"], details["version"]) == (record.module, record.version)
    return str(details["fault"])


async def test_the_untouched_version_verifies(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        record = await _record(w)
        manifest = verify_version(record, w.e.modules.kit.blobs, w.e.rt.signer.verifier)
        assert len(manifest) == record.files and manifest.total_bytes == record.bytes


@pytest.mark.parametrize(
    ("key", "value"),
    [("module", "a"), ("module", "zzz"), ("module", None), ("version", 0), ("version", 2)],
    ids=["module-below", "module-above", "module-absent", "version-below", "version-above"],
)
async def test_a_signed_statement_about_another_module_or_version_is_a_statement_fault(
    tmp_path: Path, key: str, value: object
) -> None:
    async with world(tmp_path) as w:
        record = await _record(w)
        blobs, signer = w.e.modules.kit.blobs, w.e.rt.signer
        stmt = open_statement(blobs.read(record.attestation_sha256), signer.verifier)
        predicate = {k: v for k, v in stmt["predicate"].items() if k != key}
        if value is not None:
            predicate[key] = value
        forged = sign_statement({**stmt, "predicate": predicate}, signer)  # the server's key
        assert _fault(w, replace(record, attestation_sha256=blobs.put(forged))) == "statement"


async def test_an_envelope_whose_bytes_differ_from_the_recorded_digest_is_refused(
    tmp_path: Path,
) -> None:
    # The same envelope written out differently still verifies (the signature covers the
    # payload, not the JSON around it): only the recorded digest tells. Digests above and below
    # the recorded one, so no ordering of digests passes for equality.
    async with world(tmp_path) as w:
        record = await _record(w)
        path = blob_path(w.state, record.attestation_sha256)
        envelope = json.loads(path.read_bytes())
        sides: set[bool] = set()
        for indent in range(64):
            raw = json.dumps(envelope, indent=indent).encode()
            digest = hashlib.sha256(raw).hexdigest()
            side = digest < record.attestation_sha256
            if side in sides:
                continue
            sides.add(side)
            os.chmod(path, 0o644)
            path.write_bytes(raw)
            assert _fault(w, record) == "attestation"
            if len(sides) == 2:
                break
        assert sides == {True, False}


@pytest.mark.parametrize(
    ("field", "delta"),
    [("files", 1), ("files", -1), ("bytes", 1), ("bytes", -1)],
)
async def test_a_manifest_that_disagrees_with_the_recorded_counts_is_a_manifest_fault(
    tmp_path: Path, field: str, delta: int
) -> None:
    async with world(tmp_path) as w:
        record = await _record(w)
        changed = replace(record, **{field: getattr(record, field) + delta})
        assert _fault(w, changed) == "manifest"


@pytest.mark.parametrize("damage", ["gone", "unreadable"])
async def test_an_attestation_that_is_gone_or_unreadable_is_missing(
    tmp_path: Path, damage: str
) -> None:
    async with world(tmp_path) as w:
        record = await _record(w)
        path = blob_path(w.state, record.attestation_sha256)
        os.chmod(path, 0o644)
        path.unlink()
        if damage == "unreadable":
            path.mkdir()  # reading it fails with an OSError, not "no such blob"
        assert _fault(w, record) == "attestation_missing"


@pytest.mark.parametrize("manifest", [b"not json", b"[]", b'{"files": 3}'])
async def test_a_signed_attestation_of_a_malformed_manifest_is_a_manifest_fault(
    tmp_path: Path, manifest: bytes
) -> None:
    # Only the server's key can make this: a statement whose subject is a manifest blob that
    # does not parse. The guard refuses it as a fault, never with a ManifestError of its own.
    async with world(tmp_path) as w:
        record = await _record(w)
        blobs, signer = w.e.modules.kit.blobs, w.e.rt.signer
        stmt = open_statement(blobs.read(record.attestation_sha256), signer.verifier)
        bundle = blobs.put(manifest)
        stmt["subject"][0]["digest"]["sha256"] = bundle
        raw = sign_statement(stmt, signer)
        forged = replace(record, bundle_sha256=bundle, attestation_sha256=blobs.put(raw))
        assert _fault(w, forged) == "manifest"
