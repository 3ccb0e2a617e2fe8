"""One domain operation in flight: its timestamp, caller, and the ledger entries it appends.

`Ops.emit` is the only way the enforcer changes state: it appends a ledger entry and applies it
to the projection in the same transaction. A refusal that must itself be on record is raised as
`Refused`, carrying the entries to append after the failed transaction has rolled back — so a
refused write leaves no trace but the record of its refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import PhasegateError
from ..model import Caller, trace_id_var
from ..store import Tx
from . import projection
from .entries import LedgerEntry, append_entry

__all__ = ["Ops", "Record", "Refused"]


@dataclass(frozen=True, slots=True)
class Record:
    """A ledger entry to append: type, subject, data, refs."""

    type: str
    subject: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """Carries a refusal out of a transaction together with the entries that record it."""

    def __init__(self, error: PhasegateError, *records: Record) -> None:
        super().__init__(error.message)
        self.error = error
        self.records = records


@dataclass
class Ops:
    ts: str
    caller: Caller
    entries: list[LedgerEntry] = field(default_factory=list)
    lease_token: int | None = None  # the fencing token the operation ran under
    # Captured when the operation is created, on the caller's side: `emit` runs on the
    # database thread, where the caller's context variables are not visible.
    trace_id: str | None = field(default_factory=trace_id_var.get)

    def emit(self, tx: Tx, record: Record) -> LedgerEntry:
        refs = dict(record.refs)
        if self.trace_id:
            refs["trace_id"] = self.trace_id
        entry = append_entry(
            tx,
            ts=self.ts,
            actor=self.caller.actor,
            type=record.type,
            subject=record.subject,
            data=record.data,
            refs=refs,
        )
        projection.apply(tx, entry)
        self.entries.append(entry)
        return entry

    @property
    def last_seq(self) -> int | None:
        return self.entries[-1].seq if self.entries else None
