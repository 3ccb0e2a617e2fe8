"""What a store is: the `Tx` a unit of work sees and the `Store` that runs units whole.

A unit of work is a plain function of a `Tx`; the store runs it inside one write transaction
(or one read snapshot). SQLite implements it today (`sqlite.SqliteStore`); the SQL the domain
writes is kept portable (``?`` placeholders, TEXT hashes) so that another database can too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["Row", "Store", "Tx"]

T = TypeVar("T")
Row = tuple[Any, ...]


class Tx(Protocol):
    """What a unit of work may do with the database."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows changed."""
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

    async def close(self) -> None: ...
