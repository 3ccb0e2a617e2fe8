"""Install windows: weekly UTC time ranges such as ``"Mon-Fri 08:00-18:00"`` (a leaf).

A window is days and a time range. Days are names (``Mon Tue Wed Thu Fri Sat Sun``), ranges of
them (``Mon-Fri``, ``Fri-Mon`` wraps over the week's end), comma lists (``Mon,Wed,Sat-Sun``) or
``daily``. The range is ``HH:MM-HH:MM``; its end may be ``24:00``, and an end before the start
runs over midnight into the next day (``Fri 22:00-02:00`` is Friday night). The configuration
validates each window with `parse_window`; the policy asks `Windows.open_at` and `next_opening`.

    w = Windows.parse(["Mon-Fri 08:00-18:00"])
    w.open_at(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))        # True (a Monday)
    w.next_opening(datetime(2026, 1, 3, 12, 0, tzinfo=UTC))  # Monday 2026-01-05 08:00 UTC
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["DAYS", "Window", "Windows", "parse_window"]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEK = 7 * 24 * 3600
_SPEC = re.compile(r"^\s*(?P<days>\S+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class Window:
    """One window: the weekdays it starts on (0 = Monday) and its start and end in minutes."""

    text: str
    days: frozenset[int]
    start: int  # minutes after midnight, 0..1439
    end: int  # minutes after midnight, 1..1440; <= start means the next day

    def spans(self) -> list[tuple[int, int]]:
        """[start, end) in seconds of the week (Monday 00:00 UTC = 0); may pass the week's end."""
        length = (self.end - self.start) % 1440 or 1440
        return [
            ((d * 1440 + self.start) * 60, (d * 1440 + self.start + length) * 60) for d in self.days
        ]


def _day(name: str, text: str) -> int:
    for index, day in enumerate(DAYS):
        if name.lower() == day.lower():
            return index
    raise ValueError(f"{text!r}: {name!r} is not a day (use {' '.join(DAYS)} or daily)")


def _minutes(clock: str, text: str, *, end: bool) -> int:
    hours, minutes = int(clock[:2]), int(clock[3:])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(
            f"{text!r}: {clock} is not a time of day (00:00 to 23:59, or 24:00 as an end)"
        )
    return hours * 60 + minutes


def parse_window(text: str) -> Window:
    """Parse one window; raises ValueError saying what is wrong (the config names the key)."""
    found = _SPEC.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a window like 'Mon-Fri 08:00-18:00' (UTC)")
    days: set[int] = set()
    spec = found["days"]
    for part in spec.split(",") if spec.lower() != "daily" else ["Mon-Sun"]:
        first, _, last = part.partition("-")
        a = _day(first, text)
        b = _day(last, text) if last else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    start = _minutes(found["start"], text, end=False)
    end = _minutes(found["end"], text, end=True)
    if start == end % 1440 and end != 1440:
        raise ValueError(f"{text!r}: the window is empty (start equals end)")
    return Window(text.strip(), frozenset(days), start, end)


def _week_second(moment: datetime) -> float:
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.weekday() * 86400 + (moment - midnight).total_seconds()


@dataclass(frozen=True, slots=True)
class Windows:
    """A module's install windows; none at all means always open."""

    windows: tuple[Window, ...]

    @classmethod
    def parse(cls, texts: list[str]) -> Windows:
        return cls(tuple(parse_window(t) for t in texts))

    def _spans(self) -> list[tuple[int, int]]:
        return sorted(s for w in self.windows for s in w.spans())

    def open_at(self, moment: datetime) -> bool:
        if not self.windows:
            return True
        at = _week_second(moment)
        # A span that passes the week's end also covers the start of the next week.
        return any(a <= at < b or a <= at + _WEEK < b for a, b in self._spans())

    def next_opening(self, moment: datetime) -> datetime | None:
        """When the next window opens after `moment` (None when there are no windows)."""
        if not self.windows:
            return None
        at = _week_second(moment)
        ahead = min((a - at) % _WEEK or _WEEK for a, _ in self._spans())
        return (moment.astimezone(UTC) + timedelta(seconds=ahead)).replace(microsecond=0)

    def closes_at(self, moment: datetime) -> datetime | None:
        """When the window `moment` lies in closes (None outside every window)."""
        at = _week_second(moment)
        ends = [b - at for a, b in self._spans() if a <= at < b]
        ends += [b - at - _WEEK for a, b in self._spans() if a <= at + _WEEK < b]
        if not ends:
            return None
        return (moment.astimezone(UTC) + timedelta(seconds=max(ends))).replace(microsecond=0)
