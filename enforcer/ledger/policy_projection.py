"""The policy's part of the projection: approval requests, exceptions, promotions by risk, and
the policy in force — tables that change only by applying ledger entries, like the rest.

    promotion.requested         an approval request opens (PENDING), or one already open is
                                asked again; a request it supersedes becomes EXPIRED or STALE
    approval.approved / approval.rejected     an admin decided (with a note)
    draft.edited / draft.discarded            open requests of that draft become STALE
    promotion.promoted          the promotion counts toward the limits; its request EXECUTED
    exception.granted / exception.revoked
    policy.changed / policy.reload_failed     the policy in force; the last file refused

A pending request whose expiry has passed is EXPIRED on reading (`enforcer/policy/approvals.py`)
without an entry: nothing happens at that instant, and the request holds its own expiry time.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..store import Tx
from .entries import LedgerEntry

__all__ = ["APPLY", "OPEN", "SCHEMA", "TABLES"]

# Migration 4: the policy.
SCHEMA = """
CREATE TABLE approvals (
    id              TEXT PRIMARY KEY,
    module          TEXT NOT NULL,
    draft           TEXT NOT NULL,
    task            TEXT,
    diff_sha256     TEXT NOT NULL,
    risk            TEXT NOT NULL,
    rules           TEXT NOT NULL,
    files           INTEGER NOT NULL,
    added           INTEGER NOT NULL,
    removed         INTEGER NOT NULL,
    requested_by    TEXT NOT NULL,
    requested_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    policy_set_hash TEXT NOT NULL,
    status          TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      TEXT,
    note            TEXT,
    version         INTEGER,
    seq             INTEGER NOT NULL
);
CREATE INDEX approvals_draft ON approvals(draft, requested_at);
CREATE INDEX approvals_status ON approvals(status, requested_at);
CREATE TABLE policy_exceptions (
    id            TEXT PRIMARY KEY,
    module        TEXT NOT NULL,
    rule          TEXT NOT NULL,
    until         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    granted_by    TEXT NOT NULL,
    granted_at    TEXT NOT NULL,
    revoked_by    TEXT,
    revoked_at    TEXT,
    revoke_reason TEXT,
    seq           INTEGER NOT NULL
);
CREATE INDEX policy_exceptions_module ON policy_exceptions(module, until);
CREATE TABLE policy_promotions (
    module   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    ts       TEXT NOT NULL,
    risk     TEXT,
    approval TEXT,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (module, version)
);
CREATE INDEX policy_promotions_module ON policy_promotions(module, ts);
CREATE INDEX policy_promotions_actor ON policy_promotions(actor, ts);
CREATE TABLE policy_state (
    name   TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    ts     TEXT NOT NULL,
    seq    INTEGER NOT NULL
);
"""

TABLES: dict[str, str] = {
    "approvals": "id",
    "policy_exceptions": "id",
    "policy_promotions": "module, version",
    "policy_state": "name",
}

OPEN = ("PENDING", "APPROVED")  # the states a later change to the draft makes STALE
_REQUEST_KEYS = frozenset(
    {"id", "module", "draft", "diff_sha256", "risk", "rules", "files", "added", "removed"}
    | {"requested_by", "requested_at", "expires_at"}
)


def _requested(tx: Tx, e: LedgerEntry) -> None:
    d = e.fields["data"]
    a = d.get("approval")
    if not isinstance(a, dict) or not set(a) >= _REQUEST_KEYS:
        return  # no request, or one a policy other than enforcer/policy/ shaped
    gone = a.get("supersedes")
    if isinstance(gone, dict):
        tx.execute(
            "UPDATE approvals SET status = ?, seq = ? WHERE id = ? AND status IN (?, ?)",
            (gone["status"], e.seq, gone["id"], *OPEN),
        )
    tx.execute(
        "INSERT INTO approvals (id, module, draft, task, diff_sha256, risk, rules, files, added,"
        " removed, requested_by, requested_at, expires_at, policy_set_hash, status, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            a["id"],
            a["module"],
            a["draft"],
            a.get("task"),
            a["diff_sha256"],
            a["risk"],
            json.dumps(a["rules"]),
            a["files"],
            a["added"],
            a["removed"],
            a["requested_by"],
            a["requested_at"],
            a["expires_at"],
            d["policy_set_hash"],
            e.seq,
        ),
    )


def _decided(status: str) -> Callable[[Tx, LedgerEntry], None]:
    def apply(tx: Tx, e: LedgerEntry) -> None:
        d = e.fields["data"]
        tx.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, note = ?, seq = ?"
            " WHERE id = ?",
            (status, e.actor, e.ts, d["note"], e.seq, d["approval"]),
        )

    return apply


def _draft_changed(tx: Tx, e: LedgerEntry) -> None:
    tx.execute(
        "UPDATE approvals SET status = 'STALE', seq = ? WHERE draft = ? AND status IN (?, ?)",
        (e.seq, e.fields["subject"]["draft"], *OPEN),
    )


def _promoted(tx: Tx, e: LedgerEntry) -> None:
    d = e.fields["data"]
    module = e.fields["subject"]["module"]
    approval = d.get("approval")
    tx.execute(
        "INSERT INTO policy_promotions (module, version, actor, ts, risk, approval, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (module, d["version"], e.actor, e.ts, d.get("risk"), approval, e.seq),
    )
    if isinstance(approval, str):
        tx.execute(
            "UPDATE approvals SET status = 'EXECUTED', version = ?, seq = ? WHERE id = ?",
            (d["version"], e.seq, approval),
        )


def _granted(tx: Tx, e: LedgerEntry) -> None:
    d = e.fields["data"]
    tx.execute(
        "INSERT INTO policy_exceptions (id, module, rule, until, reason, granted_by, granted_at,"
        " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            d["exception"],
            e.fields["subject"]["module"],
            d["rule"],
            d["until"],
            d["reason"],
            e.actor,
            e.ts,
            e.seq,
        ),
    )


def _revoked(tx: Tx, e: LedgerEntry) -> None:
    d = e.fields["data"]
    tx.execute(
        "UPDATE policy_exceptions SET revoked_by = ?, revoked_at = ?, revoke_reason = ?, seq = ?"
        " WHERE id = ?",
        (e.actor, e.ts, d["reason"], e.seq, d["exception"]),
    )


def _state(name: str, key: str) -> Callable[[Tx, LedgerEntry], None]:
    def apply(tx: Tx, e: LedgerEntry) -> None:
        tx.execute(
            "INSERT INTO policy_state (name, sha256, ts, seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, ts = excluded.ts,"
            " seq = excluded.seq",
            (name, e.fields["data"][key], e.ts, e.seq),
        )

    return apply


# Applied after the handler of the same type in `projection` (draft.*, promotion.promoted).
APPLY: dict[str, Callable[[Tx, LedgerEntry], None]] = {
    "promotion.requested": _requested,
    "approval.approved": _decided("APPROVED"),
    "approval.rejected": _decided("REJECTED"),
    "draft.edited": _draft_changed,
    "draft.discarded": _draft_changed,
    "promotion.promoted": _promoted,
    "exception.granted": _granted,
    "exception.revoked": _revoked,
    "policy.changed": _state("in_force", "policy_set_hash"),
    "policy.reload_failed": _state("reload_failed", "file_sha256"),
}
