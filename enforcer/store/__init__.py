"""The store: the `Store` protocol every database implements, SQLite's implementation (the
embedded default), PostgreSQL's (`store.postgres`, imported only when a URL asks for it), and the
versioned migrations. The lowest package: it imports only the leaves (errors)."""

from .migrations import MIGRATIONS, Migration, MigrationLike, migrate
from .opening import open_store
from .protocol import CHAIN_APPEND_SQL, CHAIN_HEAD_SQL, Row, Store, Tx
from .snapshot import Snapshot, is_postgres_url, open_snapshot
from .sqlite import Durability, SqliteStore, SqliteTx, open_readonly

__all__ = [
    "CHAIN_APPEND_SQL",
    "CHAIN_HEAD_SQL",
    "MIGRATIONS",
    "Durability",
    "Migration",
    "MigrationLike",
    "Row",
    "Snapshot",
    "SqliteStore",
    "SqliteTx",
    "Store",
    "Tx",
    "is_postgres_url",
    "migrate",
    "open_readonly",
    "open_snapshot",
    "open_store",
]
