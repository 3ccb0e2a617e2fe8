"""Install windows: weekly UTC ranges, parsed once, asked "open now?" and "when next?"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enforcer.windows import Windows, parse_window


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """January 2026: the 5th is a Monday, so day 5..11 is Mon..Sun."""
    return datetime(2026, 1, day, hour, minute, second, tzinfo=UTC)


def test_office_hours_are_open_on_weekdays_only() -> None:
    w = Windows.parse(["Mon-Fri 08:00-18:00"])
    assert w.open_at(at(5, 8)) and w.open_at(at(9, 17, 59, 59))
    assert not w.open_at(at(5, 7, 59, 59)) and not w.open_at(at(5, 18))
    assert not w.open_at(at(10, 12))  # Saturday


def test_the_next_opening_is_the_next_start_after_now() -> None:
    w = Windows.parse(["Mon-Fri 08:00-18:00"])
    assert w.next_opening(at(10, 12)) == at(12, 8)  # Saturday noon -> Monday 08:00
    assert w.next_opening(at(5, 7, 59, 30)) == at(5, 8)
    assert w.next_opening(at(9, 18)) == at(12, 8)  # Friday evening -> Monday
    assert w.next_opening(at(5, 8)) == at(6, 8)  # open now: the one after
    assert w.closes_at(at(5, 9)) == at(5, 18)
    assert w.closes_at(at(10, 9)) is None


def test_an_overnight_window_belongs_to_the_day_it_starts() -> None:
    w = Windows.parse(["Fri 22:00-02:00"])
    assert w.open_at(at(9, 23)) and w.open_at(at(10, 1, 59))
    assert not w.open_at(at(10, 2)) and not w.open_at(at(9, 21))
    assert w.closes_at(at(9, 23)) == at(10, 2)


def test_day_ranges_wrap_over_the_end_of_the_week() -> None:
    w = Windows.parse(["Sat-Mon 00:00-24:00"])
    assert w.open_at(at(10, 0)) and w.open_at(at(11, 23, 59)) and w.open_at(at(12, 12))
    assert not w.open_at(at(13, 0))
    sunday_night = Windows.parse(["Sun 23:00-01:00"])
    assert sunday_night.open_at(at(12, 0, 30))  # Monday 00:30, the window began on Sunday
    assert sunday_night.next_opening(at(12, 2)) == at(18, 23)


def test_lists_and_daily() -> None:
    w = Windows.parse(["Mon,Wed 09:00-10:00", "daily 12:00-12:30"])
    assert w.open_at(at(7, 9, 30)) and not w.open_at(at(6, 9, 30))
    assert w.open_at(at(11, 12, 10))
    assert w.next_opening(at(6, 11)) == at(6, 12)


def test_no_windows_means_always_open() -> None:
    w = Windows.parse([])
    assert w.open_at(at(10, 3)) and w.next_opening(at(10, 3)) is None


@pytest.mark.parametrize(
    "text",
    [
        "Mon-Fry 08:00-18:00",
        "Mon-Fri 8:00-18:00",
        "Mon-Fri 08:00-25:00",
        "Mon-Fri 08:60-18:00",
        "Mon-Fri 24:00-01:00",
        "Mon 10:00-10:00",
        "weekdays 08:00-18:00",
        "08:00-18:00",
        "",
    ],
)
def test_a_malformed_window_is_refused_saying_why(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_window(text)
    assert repr(text) in str(caught.value) or text == ""
