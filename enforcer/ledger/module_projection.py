"""The governed modules' part of the projection: modules, versions, activations and drafts.

Like the rest of the projection these tables change only by applying ledger entries
(`projection.apply` dispatches here), so a replay of the ledger rebuilds them exactly. A draft's
files are not here: its manifest is a blob named by ``bundle_sha256``.

    module.registered     a module and its version 1
    module.installed      the active pointer moves (also module.rolled_back)
    draft.created / draft.edited / draft.validation_started / draft.validated /
    draft.validation_failed / draft.discarded      a draft's life
    promotion.promoted    version N+1 from a draft
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..store import Tx
from .entries import LedgerEntry

__all__ = ["APPLY", "SCHEMA", "TABLES"]

# Migration 3: governed modules.
SCHEMA = """
CREATE TABLE modules (
    module         TEXT PRIMARY KEY,
    install_path   TEXT NOT NULL,
    validator      TEXT NOT NULL,
    timeout_s      INTEGER NOT NULL,
    active_version INTEGER,
    newest_version INTEGER NOT NULL,
    registered_at  TEXT NOT NULL,
    registered_by  TEXT NOT NULL,
    seq            INTEGER NOT NULL
);
CREATE TABLE module_versions (
    module             TEXT NOT NULL,
    version            INTEGER NOT NULL,
    bundle_sha256      TEXT NOT NULL,
    attestation_sha256 TEXT NOT NULL,
    report_sha256      TEXT,
    source_version     INTEGER,
    draft              TEXT,
    diff_sha256        TEXT,
    files              INTEGER NOT NULL,
    bytes              INTEGER NOT NULL,
    created_at         TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    seq                INTEGER NOT NULL,
    PRIMARY KEY (module, version)
);
CREATE TABLE module_activations (
    module  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    version INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    actor   TEXT NOT NULL,
    ts      TEXT NOT NULL,
    PRIMARY KEY (module, seq)
);
CREATE TABLE drafts (
    draft            TEXT PRIMARY KEY,
    module           TEXT NOT NULL,
    task             TEXT NOT NULL,
    base_version     INTEGER NOT NULL,
    state            TEXT NOT NULL,
    bundle_sha256    TEXT NOT NULL,
    files            INTEGER NOT NULL,
    validated_bundle TEXT,
    report_sha256    TEXT,
    validated_seq    INTEGER,
    version          INTEGER,
    created_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    seq              INTEGER NOT NULL
);
CREATE INDEX drafts_module ON drafts(module, draft);
"""

TABLES: dict[str, str] = {
    "modules": "module",
    "module_versions": "module, version",
    "module_activations": "module, seq",
    "drafts": "draft",
}


def _version_row(tx: Tx, e: LedgerEntry, module: str, d: dict[str, object]) -> None:
    tx.execute(
        "INSERT INTO module_versions (module, version, bundle_sha256, attestation_sha256,"
        " report_sha256, source_version, draft, diff_sha256, files, bytes, created_at,"
        " created_by, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            module,
            d["version"],
            d["bundle_sha256"],
            d["attestation_sha256"],
            d.get("report_sha256"),
            d.get("source_version"),
            d.get("draft"),
            d.get("diff_sha256"),
            d["files"],
            d["bytes"],
            e.ts,
            e.actor,
            e.seq,
        ),
    )


def _registered(tx: Tx, e: LedgerEntry) -> None:
    module, d = e.fields["subject"]["module"], e.fields["data"]
    tx.execute(
        "INSERT INTO modules (module, install_path, validator, timeout_s, active_version,"
        " newest_version, registered_at, registered_by, seq)"
        " VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)",
        (
            module,
            d["install_path"],
            json.dumps(d["validator"]),
            d["timeout_s"],
            d["version"],
            e.ts,
            e.actor,
            e.seq,
        ),
    )
    _version_row(tx, e, module, d)


def _activated(tx: Tx, e: LedgerEntry) -> None:
    module, version = e.fields["subject"]["module"], e.fields["data"]["version"]
    tx.execute("UPDATE modules SET active_version = ? WHERE module = ?", (version, module))
    tx.execute(
        "INSERT INTO module_activations (module, seq, version, kind, actor, ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (module, e.seq, version, e.type, e.actor, e.ts),
    )


def _draft_created(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    tx.execute(
        "INSERT INTO drafts (draft, module, task, base_version, state, bundle_sha256, files,"
        " validated_bundle, report_sha256, validated_seq, version, created_at, created_by, seq)"
        " VALUES (?, ?, ?, ?, 'CREATED', ?, ?, NULL, NULL, NULL, NULL, ?, ?, ?)",
        (
            s["draft"],
            s["module"],
            s["task"],
            d["base_version"],
            d["bundle_sha256"],
            d["files"],
            e.ts,
            e.actor,
            e.seq,
        ),
    )


def _draft_edited(tx: Tx, e: LedgerEntry) -> None:
    """Any edit returns the draft to EDITING; a rebase also moves its base."""
    s, d = e.fields["subject"], e.fields["data"]
    tx.execute(
        "UPDATE drafts SET state = 'EDITING', bundle_sha256 = ?, files = ?,"
        " base_version = COALESCE(?, base_version), validated_bundle = NULL, seq = ?"
        " WHERE draft = ?",
        (d["bundle_sha256"], d["files"], d.get("base_version"), e.seq, s["draft"]),
    )


def _validation_started(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    tx.execute(
        "UPDATE drafts SET state = 'VALIDATING', seq = ? WHERE draft = ? AND bundle_sha256 = ?",
        (e.seq, s["draft"], d["bundle_sha256"]),
    )


def _validation_ended(tx: Tx, e: LedgerEntry) -> None:
    """The outcome counts only for the bundle it ran on: after an edit it changes nothing."""
    s, d = e.fields["subject"], e.fields["data"]
    state = "VALIDATED" if e.type == "draft.validated" else "FAILED"
    tx.execute(
        "UPDATE drafts SET state = ?, validated_bundle = ?, report_sha256 = ?,"
        " validated_seq = ?, seq = ? WHERE draft = ? AND bundle_sha256 = ?"
        " AND state IN ('CREATED', 'EDITING', 'VALIDATING', 'VALIDATED', 'FAILED')",
        (
            state,
            d["bundle_sha256"],
            d["report_sha256"],
            e.seq,
            e.seq,
            s["draft"],
            d["bundle_sha256"],
        ),
    )


def _draft_discarded(tx: Tx, e: LedgerEntry) -> None:
    tx.execute(
        "UPDATE drafts SET state = 'DISCARDED', seq = ? WHERE draft = ?",
        (e.seq, e.fields["subject"]["draft"]),
    )


def _promoted(tx: Tx, e: LedgerEntry) -> None:
    s, d = e.fields["subject"], e.fields["data"]
    _version_row(tx, e, s["module"], {**d, "draft": s["draft"]})
    tx.execute(
        "UPDATE modules SET newest_version = ? WHERE module = ?", (d["version"], s["module"])
    )
    tx.execute(
        "UPDATE drafts SET state = 'PROMOTED', version = ?, seq = ? WHERE draft = ?",
        (d["version"], e.seq, s["draft"]),
    )


APPLY: dict[str, Callable[[Tx, LedgerEntry], None]] = {
    "module.registered": _registered,
    "module.installed": _activated,
    "module.rolled_back": _activated,
    "draft.created": _draft_created,
    "draft.edited": _draft_edited,
    "draft.validation_started": _validation_started,
    "draft.validated": _validation_ended,
    "draft.validation_failed": _validation_ended,
    "draft.discarded": _draft_discarded,
    "promotion.promoted": _promoted,
}
