"""Choosing the store: SQLite in the state directory by default, PostgreSQL for a URL.

psycopg is imported only when a PostgreSQL URL is given, so the embedded default starts as fast
as it always has.

    store = await open_store(db=paths.db, url=None, migrations=MIGRATIONS)   # SQLite
    store = await open_store(db=paths.db, url="postgresql://db/phasegate", migrations=MIGRATIONS)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import StoreError
from .migrations import MigrationLike
from .protocol import Store
from .snapshot import is_postgres_url
from .sqlite import SqliteStore
from .sqlite_tx import Durability

__all__ = ["open_store"]


async def open_store(
    *,
    db: Path,
    url: str | None,
    durability: Durability = "FULL",
    busy_timeout_ms: int = 10_000,
    migrations: Sequence[MigrationLike] | None = None,
) -> Store:
    """Open and migrate the store: PostgreSQL at `url` when given, else SQLite at `db`."""
    if url is None:
        return await SqliteStore.open(
            db, durability=durability, busy_timeout_ms=busy_timeout_ms, migrations=migrations
        )
    if not is_postgres_url(url):
        raise StoreError("a store URL starts with postgresql:// (absent: SQLite)")
    from .postgres import PostgresStore

    return await PostgresStore.open(url, durability=durability, migrations=migrations)
