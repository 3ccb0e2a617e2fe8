"""What a store is: the `Tx` a unit of work sees and the `Store` that runs units whole.

A unit of work is a plain function of a `Tx`; the store runs it inside one write transaction
(or one read snapshot). SQLite (`sqlite.SqliteStore`, the embedded default) and PostgreSQL
(`postgres.PostgresStore`, several servers over one database) implement it; the SQL the domain
writes is kept portable (``?`` placeholders, TEXT hashes, ``INSERT ... ON CONFLICT``), and
`tests/enforcer/store/test_contract.py` holds both to the same behaviour.

Every store runs write transactions one at a time — across processes and servers too — so a
unit of work's reads (the lease it checks, the controls, the chain head it appends after) are
the state its writes commit over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["CHAIN_APPEND_SQL", "CHAIN_HEAD_SQL", "Row", "Store", "Tx"]

T = TypeVar("T")
Row = tuple[Any, ...]

# The ledger's read of its chain head and its append, as `ledger.entries` writes them. A store
# may answer the first itself from the second: PostgreSQL reads the head with its chain lock, in
# the same round trip, and follows the appends of the transaction from there.
CHAIN_HEAD_SQL = "SELECT seq, leaf_hash FROM ledger ORDER BY seq DESC LIMIT 1"
CHAIN_APPEND_SQL = (
    "INSERT INTO ledger (seq, prev, leaf_hash, entry, ts, type, task, trace_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class Tx(Protocol):
    """What a unit of work may do with the database."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows changed."""
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose outcome the caller does not read. A store may send it along
        with the next statement (PostgreSQL pipelines it, saving a round trip), so its error
        may surface there — always inside the same unit of work, and before it commits."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Store(Protocol):
    async def write(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` in one write transaction: all of it commits, or none of it."""
        ...

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` over one consistent snapshot; it must not write."""
        ...

    async def peek(self, fn: Callable[[Tx], T]) -> T:
        """Like `read`, for a few point lookups: may run inline, without a thread hop."""
        ...

    async def peek_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """One row of one statement, which is its own snapshot (no transaction around it)."""
        ...

    async def data_version(self) -> object:
        """A value that changes whenever a commit anywhere (any process, any server) may have
        changed what a read returns; equal values mean nothing changed. For caches."""
        ...

    async def locked(self, name: str, fn: Callable[[Tx], T]) -> T:
        """Run `fn` over a fresh read snapshot while holding the lock `name`, which one caller
        at a time holds across every process sharing the store (checkpoint signing)."""
        ...

    async def close(self) -> None: ...
