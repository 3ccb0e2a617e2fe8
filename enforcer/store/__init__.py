"""The store: the `Store` protocol every database implements, SQLite's implementation, and the
versioned migrations. The lowest package: it imports only the leaves (errors)."""

from .migrations import MIGRATIONS, migrate
from .protocol import Row, Store, Tx
from .sqlite import Durability, SqliteStore, SqliteTx, open_readonly

__all__ = [
    "MIGRATIONS",
    "Durability",
    "Row",
    "SqliteStore",
    "SqliteTx",
    "Store",
    "Tx",
    "migrate",
    "open_readonly",
]
