"""The store: the `Store` protocol every database implements, SQLite's implementation, and the
versioned migrations. The lowest package: it imports only the leaves (errors)."""

from .sqlite import (
    MIGRATIONS,
    Durability,
    SqliteStore,
    SqliteTx,
    Store,
    Tx,
    migrate,
    open_readonly,
)

__all__ = [
    "MIGRATIONS",
    "Durability",
    "SqliteStore",
    "SqliteTx",
    "Store",
    "Tx",
    "migrate",
    "open_readonly",
]
