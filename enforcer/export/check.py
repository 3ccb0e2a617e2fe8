"""Verifying a compliance bundle offline, with only the public key.

Every check runs and every fault is named (an auditor wants the whole list, not the first):
``signature`` (the envelope does not verify: the bundle was altered or signed by another key),
``format``, ``checkpoint`` (its signature, size or root), ``hash`` (an entry's bytes do not hash
to its leaf), ``proof`` (an inclusion proof does not reach the signed root), ``gap`` (a seq is
missing from the range, or out of order), ``link`` (an entry's prev is not the previous leaf),
``count``, ``fact`` (a fact differs from the entry it cites), ``report`` (the PDF's digest).

    faults = verify_export(Path("bundle"), Verifier.from_vkey(pub_text))
    assert faults == []
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ledger import canonical, merkle
from ..ledger.checkpoint import Checkpoint, CheckpointError
from ..ledger.dsse import EnvelopeError, open_envelope, payload_of
from ..ledger.keys import PUBLIC_KEY_FILE, Verifier
from .bundle import ENVELOPE_FILE, EXPORT_FORMAT, EXPORT_PAYLOAD_TYPE, REPORT_FILE

__all__ = ["ExportFault", "verify_export"]


@dataclass(frozen=True, slots=True)
class ExportFault:
    kind: str
    message: str
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "seq": self.seq}


def bundle_key(directory: Path) -> Verifier:
    """The public key shipped in the bundle (raises OSError or ValueError)."""
    return Verifier.from_vkey((directory / PUBLIC_KEY_FILE).read_text())


def verify_export(directory: Path, verifier: Verifier) -> list[ExportFault]:
    """Every fault of the bundle in `directory` against `verifier` ([] when it holds)."""
    faults: list[ExportFault] = []
    try:
        envelope = json.loads((directory / ENVELOPE_FILE).read_text())
    except (OSError, ValueError) as e:
        return [ExportFault("format", f"cannot read {ENVELOPE_FILE}: {e}")]
    try:
        payload = open_envelope(envelope, verifier, EXPORT_PAYLOAD_TYPE)
    except EnvelopeError as e:
        faults.append(ExportFault("signature", f"{ENVELOPE_FILE}: {e}"))
        try:  # read on regardless, to name what else was changed
            payload = payload_of(envelope)
        except ValueError:
            return faults
    try:
        doc = json.loads(payload)
        assert isinstance(doc, dict) and doc.get("format") == EXPORT_FORMAT
    except (ValueError, AssertionError):
        return [*faults, ExportFault("format", "the payload is not a phasegate export")]
    root = _checkpoint(doc, verifier, faults)
    seen = _entries(doc, root, faults)
    _facts(doc, seen, faults)
    _report(directory, doc, faults)
    return faults


def _checkpoint(doc: dict[str, Any], verifier: Verifier, faults: list[ExportFault]) -> bytes:
    cp = doc.get("checkpoint", {})
    try:
        parsed = Checkpoint.parse(str(cp.get("text", "")), verifier)
    except CheckpointError as e:
        faults.append(ExportFault("checkpoint", f"the checkpoint does not verify: {e}"))
        return bytes.fromhex(str(cp.get("root", "00")))
    if parsed.size != cp.get("size") or parsed.root.hex() != cp.get("root"):
        faults.append(ExportFault("checkpoint", "size or root differ from the signed checkpoint"))
    return parsed.root


def _entries(
    doc: dict[str, Any], root: bytes, faults: list[ExportFault]
) -> dict[int, dict[str, Any]]:
    size = int(doc.get("checkpoint", {}).get("size", 0))
    listed = doc.get("entries", [])
    rng = doc.get("range", {})
    seen: dict[int, dict[str, Any]] = {}
    expected = rng.get("first_seq")
    prev_leaf: str | None = None
    for item in listed:
        seq = int(item["seq"])
        if seq != expected:
            faults.append(ExportFault("gap", f"seq {expected} is missing from the range", expected))
        expected = seq + 1
        raw = str(item["entry"]).encode("utf-8")
        leaf = merkle.leaf_hash(raw)
        if leaf.hex() != item["leaf_hash"]:
            faults.append(ExportFault("hash", "the entry's bytes do not hash to its leaf", seq))
        try:
            merkle.verify_inclusion(
                leaf, seq, size, [bytes.fromhex(p) for p in item["inclusion_proof"]], root
            )
        except (merkle.MerkleProofError, ValueError) as e:
            faults.append(ExportFault("proof", f"inclusion proof fails: {e}", seq))
        try:
            fields = canonical.decode(raw)
        except ValueError as e:
            faults.append(ExportFault("hash", f"not canonical ledger JSON: {e}", seq))
            continue
        if prev_leaf is not None and fields.get("prev") != prev_leaf:
            faults.append(ExportFault("link", "prev is not the previous entry's leaf hash", seq))
        prev_leaf = item["leaf_hash"]
        seen[seq] = fields
    if rng.get("count") != len(listed) or (
        listed and rng.get("last_seq") != int(listed[-1]["seq"])
    ):
        faults.append(
            ExportFault("count", f"the range says {rng.get('count')} entries; {len(listed)} listed")
        )
    return seen


def _facts(doc: dict[str, Any], seen: dict[int, dict[str, Any]], faults: list[ExportFault]) -> None:
    for section, rows in doc.get("facts", {}).items():
        for fact in rows:
            entry = seen.get(int(fact.get("seq", -1)))
            same = entry is not None and all(
                entry.get(k) == fact.get(k) for k in ("ts", "actor", "type", "subject", "data")
            )
            if not same:
                faults.append(
                    ExportFault(
                        "fact", f"{section}: differs from the entry it cites", fact.get("seq")
                    )
                )


def _report(directory: Path, doc: dict[str, Any], faults: list[ExportFault]) -> None:
    try:
        digest = hashlib.sha256((directory / REPORT_FILE).read_bytes()).hexdigest()
    except OSError as e:
        faults.append(ExportFault("report", f"cannot read {REPORT_FILE}: {e}"))
        return
    if digest != doc.get("report_sha256"):
        faults.append(ExportFault("report", f"{REPORT_FILE} is not the report that was signed"))
