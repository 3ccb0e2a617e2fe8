"""The install guard against tampering on disk after promotion, in sigstore's manner: take a
valid version, break one thing, expect ATTESTATION_INVALID naming that fault — from install and
from rollback alike — with the pointer, the install path and its files unchanged, a
``module.install_refused`` entry, and the integrity check naming the same fault."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from modules_kit import ME, World, at_phase, blob_path, promote_change, world

from enforcer.errors import AttestationInvalidError, LedgerFaultError
from enforcer.integrity import check_integrity
from enforcer.ledger import canonical
from enforcer.modules.attestation import open_statement
from enforcer.modules.guard import verify_version
from enforcer.modules.records import version_row


async def _record(w: World, version: int):  # type: ignore[no-untyped-def]
    return await w.e.store.read(lambda tx: version_row(tx, "skills", version))


def _flip_signature(raw: bytes) -> bytes:
    env = json.loads(raw)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[7] ^= 0x01
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return canonical.encode(env)


def _new_payload(raw: bytes) -> bytes:
    """The same envelope and signature over a statement that says something else."""
    env = json.loads(raw)
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["actor"] = "mallory"
    env["payload"] = base64.b64encode(canonical.encode(stmt)).decode()
    return canonical.encode(env)


def _other_key_id(raw: bytes) -> bytes:
    env = json.loads(raw)
    env["signatures"][0]["keyid"] = "00" * 32
    return canonical.encode(env)


def _payload_type(raw: bytes) -> bytes:
    env = json.loads(raw)
    env["payloadType"] = "text/plain"
    return canonical.encode(env)


ENVELOPE_TAMPERS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "signature": (_flip_signature, "signature"),
    "payload": (_new_payload, "signature"),
    "keyid": (_other_key_id, "signature"),
    "payload-type": (_payload_type, "envelope"),
    "not-json": (lambda raw: b"{" + raw, "envelope"),
}


async def _refused_everywhere(w: World, version: int, fault: str) -> None:
    """install and rollback both refuse `version`; nothing moved; ledgered; verify names it."""
    before = (await w.e.modules.module_versions("skills"))["active"]
    target, files = w.install.resolve(), w.installed()
    with pytest.raises(AttestationInvalidError) as caught:
        await w.e.modules.module_install(ME, "skills", version, task="T1")
    assert caught.value.details["fault"] == fault
    if before is not None and before > version:
        with pytest.raises(AttestationInvalidError) as caught:
            await w.e.modules.module_rollback(ME, "skills", "tampered", version, task="T1")
        assert caught.value.details["fault"] == fault
    assert (await w.e.modules.module_versions("skills"))["active"] == before
    assert w.install.resolve() == target and w.installed() == files
    refused = [x for x in await _entries(w) if x["type"] == "module.install_refused"]
    assert refused and refused[-1]["data"]["fault"] == fault
    assert refused[-1]["data"]["version"] == version and refused[-1]["actor"] == ME.actor
    with pytest.raises(LedgerFaultError) as integrity:
        check_integrity(w.state)
    assert fault in integrity.value.message and f"v{version}" in integrity.value.message


async def _entries(w: World) -> list[dict]:  # type: ignore[type-arg]
    rows = await w.e.store.read(lambda tx: tx.all("SELECT entry FROM ledger ORDER BY seq"))
    return [json.loads(r[0]) for r in rows]


@pytest.mark.parametrize("name", list(ENVELOPE_TAMPERS))
async def test_an_envelope_changed_on_disk_refuses_install_and_rollback(
    tmp_path: Path, name: str
) -> None:
    tamper, fault = ENVELOPE_TAMPERS[name]
    async with world(tmp_path) as w:
        v2 = await promote_change(w)
        await w.e.modules.module_install(ME, "skills", v2["version"], task="T1")
        await at_phase(w.e, "T1", "MONITOR")
        v1 = await _record(w, 1)
        path = blob_path(w.state, v1.attestation_sha256)
        path.write_bytes(tamper(path.read_bytes()))
        await _refused_everywhere(w, 1, fault)


async def test_a_manifest_changed_on_disk_refuses_install(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        v2 = await promote_change(w)
        record = await _record(w, v2["version"])
        path = blob_path(w.state, record.bundle_sha256)
        path.write_bytes(path.read_bytes().replace(b'"size":', b'"size": ', 1))
        await _refused_everywhere(w, v2["version"], "manifest")


async def test_a_file_blob_changed_on_disk_refuses_install_naming_the_file(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        v2 = await promote_change(w, {"SKILL.md": "# Review skill, second edition\n"})
        record = await _record(w, v2["version"])
        manifest = verify_version(record, w.e.modules.kit.blobs, w.e.rt.signer.verifier)
        path = blob_path(w.state, manifest.files["SKILL.md"].sha256)
        path.write_bytes(b"# Review skill, forged\n")
        with pytest.raises(AttestationInvalidError) as caught:
            await w.e.modules.module_install(ME, "skills", v2["version"], task="T1")
        assert caught.value.details == {
            "fault": "blob",
            "module": "skills",
            "version": 2,
            "path": "SKILL.md",
        }
        await _refused_everywhere(w, v2["version"], "blob")


async def test_a_validly_signed_envelope_of_another_version_is_a_subject_fault(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        v2 = await promote_change(w)
        v1, record = await _record(w, 1), await _record(w, v2["version"])
        swapped = type(record)(**{**record.as_dict(), "attestation_sha256": v1.attestation_sha256})
        with pytest.raises(AttestationInvalidError) as caught:
            verify_version(swapped, w.e.modules.kit.blobs, w.e.rt.signer.verifier)
        assert caught.value.details["fault"] == "subject"


async def test_the_attestation_says_what_was_promoted_from_what_by_whom(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        v2 = await promote_change(w)
        record = await _record(w, 2)
        raw = w.e.modules.kit.blobs.read(record.attestation_sha256)
        stmt = open_statement(raw, w.e.rt.signer.verifier)
        assert stmt["_type"] == "https://in-toto.io/Statement/v1"
        assert stmt["subject"] == [
            {"name": "module:skills@2", "digest": {"sha256": v2["bundle_sha256"]}}
        ]
        p = stmt["predicate"]
        assert (p["module"], p["version"], p["source_version"], p["actor"]) == (
            "skills",
            2,
            1,
            ME.actor,
        )
        assert p["draft"] == "skills-d1" and p["diff_sha256"] == v2["diff_sha256"]
        assert p["validation_report_sha256"] == v2["report_sha256"]
        assert p["policy_set_hash"] == v2["policy_set_hash"] and p["approval"] is None
        validated = [x for x in await _entries(w) if x["type"] == "draft.validated"][-1]
        assert p["ledger_anchor"]["seq"] == validated["seq"]
        assert json.loads(raw)["payloadType"] == "application/vnd.in-toto+json"


async def test_a_kept_tree_changed_on_disk_is_rebuilt_from_the_blobs_before_rollback(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        v2 = await promote_change(w)
        await w.e.modules.module_install(ME, "skills", v2["version"], task="T1")
        v1_tree = w.e.modules.kit.trees.version_dir(
            "skills", 1, (await _record(w, 1)).bundle_sha256
        )
        (v1_tree / "SKILL.md").write_text("# planted\n")
        (v1_tree / "extra.md").write_text("# planted too\n")
        await at_phase(w.e, "T1", "MONITOR")
        back = await w.e.modules.module_rollback(ME, "skills", "v2 misbehaves", task="T1")
        assert back["version"] == 1
        assert w.installed()["SKILL.md"].startswith("# Review skill\n")
        assert "extra.md" not in w.installed()
        aside = [p.name for p in v1_tree.parent.iterdir() if "altered" in p.name]
        assert len(aside) == 1  # the changed tree is kept aside, not deleted
        check_integrity(w.state)  # the aside copy is not a version's tree
