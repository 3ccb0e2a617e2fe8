"""The counted facts limits and windows need: promotions today, and when the active version
of a module was installed and at what risk.

A "day" is the UTC calendar day of the decision (the count restarts at 00:00 UTC), the same
clock the install windows use. Promotions are counted per module and per actor from the
``policy_promotions`` projection (one row per ``promotion.promoted``).

    used = promotions_today(tx, "skills", "alice", now)   # Used(module=3, actor=1, ...)
    installed = active_install(tx, "skills")             # Installed(version=4, ...) or None
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..clock import rfc3339
from ..store import Tx

__all__ = ["Installed", "Used", "active_install", "promotions_today"]


@dataclass(frozen=True, slots=True)
class Used:
    module: int
    actor: int
    day_start: str
    resets_at: str

    def as_dict(self, actor: str, limit: int) -> dict[str, Any]:
        return {
            "max_promotions_per_day": limit,
            "module": {"used": self.module, "left": max(0, limit - self.module)},
            "actor": {"actor": actor, "used": self.actor, "left": max(0, limit - self.actor)},
            "resets_at": self.resets_at,
        }


def promotions_today(tx: Tx, module: str, actor: str, now: datetime) -> Used:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = rfc3339(start)
    by_module = tx.one(
        "SELECT count(*) FROM policy_promotions WHERE module = ? AND ts >= ?", (module, since)
    )
    by_actor = tx.one(
        "SELECT count(*) FROM policy_promotions WHERE actor = ? AND ts >= ?", (actor, since)
    )
    return Used(
        int(by_module[0]) if by_module else 0,
        int(by_actor[0]) if by_actor else 0,
        since,
        rfc3339(start + timedelta(days=1)),
    )


@dataclass(frozen=True, slots=True)
class Installed:
    version: int
    at: datetime
    risk: str | None  # None: not promoted under a policy (version 1, or an older ledger)


def active_install(tx: Tx, module: str) -> Installed | None:
    """The module's active version, when it became active, and the risk it was promoted at."""
    found = tx.one(
        "SELECT version, ts FROM module_activations WHERE module = ? ORDER BY seq DESC LIMIT 1",
        (module,),
    )
    if found is None:
        return None
    version = int(found[0])
    risk = tx.one(
        "SELECT risk FROM policy_promotions WHERE module = ? AND version = ?", (module, version)
    )
    return Installed(version, datetime.fromisoformat(str(found[1])), risk[0] if risk else None)
