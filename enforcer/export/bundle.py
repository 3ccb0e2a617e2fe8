"""Building the compliance bundle of a state directory.

The bundle directory holds:

- ``export.dsse.json``: a DSSE envelope (signed with the ledger key) of one RFC 8785 JSON
  document — the entries of the range with their exact bytes and RFC 6962 inclusion proofs
  against a checkpoint signed for the export, the facts by section, the policy hashes the range's
  decisions name, the verification result at export time, and the sha256 of the PDF;
- ``report.pdf``: the same facts, readable;
- ``ed25519.pub``: the public key (an auditor should compare its key id with the server's).

    bundle = await build_export(runtime, out_dir, since="2026-12-01T00:00:00Z")
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import rfc3339
from ..errors import InvalidArgumentError, StoreError
from ..ledger import canonical, checkpoint, merkle
from ..ledger.dsse import sign_envelope
from ..ledger.entries import LedgerEntry
from ..ledger.keys import PUBLIC_KEY_FILE
from ..runtime import Runtime
from .facts import SECTIONS, facts_of, policy_hashes
from .pdf import render_report

__all__ = ["ENVELOPE_FILE", "EXPORT_FORMAT", "EXPORT_PAYLOAD_TYPE", "REPORT_FILE", "build_export"]

EXPORT_FORMAT = "phasegate-compliance-export/1"
EXPORT_PAYLOAD_TYPE = "application/vnd.phasegate.compliance-export+json"
ENVELOPE_FILE = "export.dsse.json"
REPORT_FILE = "report.pdf"


@dataclass(frozen=True, slots=True)
class ExportResult:
    out_dir: Path
    entries: int
    first_seq: int | None
    last_seq: int | None
    checkpoint_size: int
    sections: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out_dir),
            "entries": self.entries,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoint_size": self.checkpoint_size,
            "sections": self.sections,
        }


def _verification(state_dir: Path, store_url: str | None) -> dict[str, Any]:
    from ..errors import LedgerFaultError
    from ..integrity import check_integrity

    try:
        return {"ok": True, **check_integrity(state_dir, store_url).as_dict()}
    except LedgerFaultError as e:
        return {"ok": False, "fault": e.kind, "seq": e.seq, "message": e.message}
    except StoreError as e:
        return {"ok": False, "fault": "unreadable", "message": e.message}


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


async def build_export(
    rt: Runtime, out_dir: Path, *, since: str | None = None, until: str | None = None
) -> ExportResult:
    """Write the bundle of the entries with `since` <= ts <= `until` (RFC 3339) to `out_dir`."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidArgumentError(
            f"{out_dir} is not empty", hint="export into a new or empty directory"
        )
    signed = await rt.ledger.checkpoint()  # covers every entry the range can hold
    if signed is None:
        raise InvalidArgumentError("the ledger is empty: nothing to export")
    size = signed.size
    rows = await rt.store.read(
        lambda tx: tx.all(
            "SELECT seq, prev, leaf_hash, entry FROM ledger WHERE seq < ? ORDER BY seq", (size,)
        )
    )
    entries = [LedgerEntry.from_row(*r) for r in rows]
    prover = merkle.Prover([bytes.fromhex(e.leaf_hash) for e in entries])
    chosen = [
        e for e in entries if (since is None or e.ts >= since) and (until is None or e.ts <= until)
    ]
    listed = [
        {
            "seq": e.seq,
            "leaf_hash": e.leaf_hash,
            "entry": e.raw.decode("utf-8"),  # the exact bytes that were hashed
            "inclusion_proof": [p.hex() for p in prover.proof(e.seq)],
        }
        for e in chosen
    ]
    plain = [{**e.as_dict(), "seq": e.seq} for e in chosen]
    facts = facts_of(plain)
    cp_path = dict(checkpoint.list_checkpoints(rt.paths.checkpoints))[size]
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generated_at": rfc3339(rt.clock.now()),
        "range": {
            "since": since,
            "until": until,
            "first_seq": chosen[0].seq if chosen else None,
            "last_seq": chosen[-1].seq if chosen else None,
            "count": len(chosen),
        },
        "checkpoint": {"size": size, "root": signed.root.hex(), "text": cp_path.read_text()},
        "public_key": rt.signer.verifier.vkey(),
        "entries": listed,
        "facts": facts,
        "policy_hashes": policy_hashes(plain),
        "verification": _verification(rt.paths.root, rt.store_url),
    }
    pdf = render_report(document, {name: title for name, (title, _) in SECTIONS.items()})
    document["report_sha256"] = hashlib.sha256(pdf).hexdigest()
    payload = canonical.encode(document)
    envelope = sign_envelope(rt.signer, payload, EXPORT_PAYLOAD_TYPE)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / REPORT_FILE, pdf)
    _write(out_dir / PUBLIC_KEY_FILE, (rt.signer.verifier.vkey() + "\n").encode())
    _write(out_dir / ENVELOPE_FILE, json.dumps(envelope, indent=2).encode())
    return ExportResult(
        out_dir,
        len(chosen),
        document["range"]["first_seq"],
        document["range"]["last_seq"],
        size,
        {name: len(rows) for name, rows in facts.items()},
    )
