"""What a run of many servers and agents must leave behind, checked from the ledger alone:
seq contiguous, no (task, phase) leased to two holders at once, every write made under the
current unexpired lease and its token, and every acknowledged call present as its entry.

    report = check_ledger(read_entries(state, url))
    check_acks(entries, agents)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scale_kit import Agent

from enforcer.ledger.entries import LedgerEntry
from enforcer.store import open_snapshot

Key = tuple[str, str]  # (task, phase)


def read_entries(state: Path, url: str | None) -> list[LedgerEntry]:
    with open_snapshot(state / "phasegate.db", url) as snap:
        rows = snap.stream("SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq")
        return [LedgerEntry.from_row(*r) for r in rows]


@dataclass
class _Lease:
    actor: str
    instance: str
    token: int
    expires_at: str
    active: bool = True


@dataclass
class LedgerReport:
    entries: int = 0
    transitions: int = 0
    grants: int = 0
    takeovers: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, from, to actor)


def check_ledger(entries: list[LedgerEntry]) -> LedgerReport:
    """Replay the lease and write entries in seq order; AssertionError names the first fault."""
    assert [e.seq for e in entries] == list(range(len(entries))), "seq is not contiguous"
    leases: dict[Key, _Lease] = {}
    tokens: dict[Key, int] = {}
    report = LedgerReport(entries=len(entries))

    def grant(key: Key, data: dict[str, Any], e: LedgerEntry) -> None:
        assert data["token"] == tokens.get(key, 0) + 1, f"seq {e.seq}: token {data['token']} reused"
        prev = leases.get(key)
        new = _Lease(data["holder_actor"], data["instance"], data["token"], data["expires_at"])
        if (
            prev is not None
            and prev.active
            and (prev.actor, prev.instance)
            != (
                new.actor,
                new.instance,
            )
        ):
            assert prev.expires_at <= e.ts, (
                f"seq {e.seq}: {key} granted to {new.actor} while {prev.actor} held it"
                f" until {prev.expires_at}"
            )
            report.takeovers.append((e.seq, prev.actor, new.actor))
        leases[key] = new
        tokens[key] = new.token
        report.grants += 1

    def current(key: Key, e: LedgerEntry, token: int | None) -> _Lease:
        """The lease `e` was written under: held by its actor, unexpired, with `token`."""
        lease = leases.get(key)
        assert lease is not None and lease.active, f"seq {e.seq}: {e.type} on {key} unleased"
        assert lease.actor == e.actor, f"seq {e.seq}: {e.actor} wrote on {lease.actor}'s lease"
        assert lease.expires_at > e.ts, f"seq {e.seq}: written under an expired lease"
        assert token is None or token == lease.token, f"seq {e.seq}: stale token {token}"
        return lease

    for e in entries:
        subject, data = e.subject, e.data
        task = subject.get("task")
        if e.type == "lease.acquired":
            grant((task, subject["phase"]), data, e)
        elif e.type == "lease.renewed":
            current((task, subject["phase"]), e, data["token"]).expires_at = data["expires_at"]
        elif e.type in ("lease.released", "lease.broken"):
            lease = leases[(task, subject["phase"])]
            assert lease.token == data["token"], f"seq {e.seq}: ended a lease not current"
            lease.active = False
        elif e.type in ("phase.advanced", "phase.backtracked"):
            held = current((task, data["from"]), e, data["released_token"])
            if data["released_token"] is not None:
                held.active = False
            if data["lease"] is not None:
                grant((task, data["to"]), data["lease"], e)
            report.transitions += e.type == "phase.advanced"
        elif e.type == "evidence.recorded":
            current((task, subject["phase"]), e, e.refs["lease_token"])
    return report


def check_acks(entries: list[LedgerEntry], agents: list[Agent]) -> int:
    """Every call an agent was told succeeded has its entry; returns how many were checked."""
    by_seq = {e.seq: e for e in entries}
    started = {(e.actor, e.subject["task"]) for e in entries if e.type == "task.started"}
    moved = Counter(
        (e.actor, e.subject["task"], e.data["to"], e.data["epoch"])
        for e in entries
        if e.type == "phase.advanced"
    )
    released = Counter(
        (e.actor, e.subject["task"], e.subject["phase"])
        for e in entries
        if e.type == "lease.released"
    )
    granted = {
        (e.data["holder_actor"], e.subject["task"], e.subject["phase"], e.data["token"])
        for e in entries
        if e.type == "lease.acquired"
    } | {
        (e.data["lease"]["holder_actor"], e.subject["task"], e.data["to"], e.data["lease"]["token"])
        for e in entries
        if e.type in ("phase.advanced", "phase.backtracked") and e.data["lease"] is not None
    }
    checked = 0
    for agent in agents:
        for ack in agent.acks:
            r, me = ack.result, agent.name
            if ack.tool == "evidence_put":
                e = by_seq.get(r["seq"])
                assert e is not None and e.type == "evidence.recorded", (me, r)
                assert (e.actor, e.data["sha256"], e.subject["task"]) == (
                    me,
                    r["sha256"],
                    r["task"],
                ), (me, r)
            elif ack.tool == "phase_advance":
                key = (me, r["task"], r["phase"], r["epoch"])
                assert moved[key] > 0, f"acknowledged advance {key} is not in the ledger"
                moved[key] -= 1
            elif ack.tool == "lease_acquire":
                key4 = (me, r["task"], r["phase"], r["fencing_token"])
                assert key4 in granted, f"acknowledged lease {key4} is not in the ledger"
            elif ack.tool == "lease_release" and r["released"]:
                key3 = (me, r["task"], r["phase"])
                assert released[key3] > 0, f"acknowledged release {key3} is not in the ledger"
                released[key3] -= 1
            elif ack.tool == "task_start":
                assert (me, r["task"]) in started, (me, r)
            else:
                continue
            checked += 1
    return checked
