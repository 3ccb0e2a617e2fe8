"""The control rows (freeze, promotion pause) read inside a write transaction.

Every mutating unit of work checks the freeze here, in the same transaction as its write, so no
path — the router, the CLI, the demo, the web page — can write through a freeze set a moment
before; the router's earlier check is only a fast path. Both controls fail closed: a row that
cannot be read raises (the store turns a database error into StoreError), and the write does
not happen.

    require_unfrozen(tx)        # raises FrozenError while frozen
    require_unpaused(tx)        # raises PromotionPausedError while promotions are paused
"""

from __future__ import annotations

from ..errors import FrozenError, PromotionPausedError
from ..store import Tx

__all__ = ["control_active", "require_unfrozen", "require_unpaused"]


def control_active(tx: Tx, name: str) -> bool:
    """Whether control `name` is on; a missing row is off, an unreadable table raises."""
    row = tx.one("SELECT active FROM controls WHERE name = ?", (name,))
    return row is not None and bool(row[0])


def require_unfrozen(tx: Tx) -> None:
    if control_active(tx, "freeze"):
        raise FrozenError(
            "phasegate is frozen: no state may change",
            hint="read-only tools still work; a supervisor lifts the freeze"
            " (phasegate unfreeze --reason ...)",
        )


def require_unpaused(tx: Tx) -> None:
    if control_active(tx, "promotions_paused"):
        raise PromotionPausedError(
            "promotions are paused",
            hint="other tools still work; a supervisor resumes promotions (phasegate resume)",
        )
