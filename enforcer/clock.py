"""Time comes from the server's clock only; tests inject a ManualClock.

clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
clock.advance(seconds=301)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "rfc3339"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and a Z, the one timestamp form in the ledger (fixed
    width, so string order is time order)."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text[:-6] + "Z"  # "+00:00" -> "Z"
