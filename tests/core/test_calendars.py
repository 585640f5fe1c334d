"""Exclusion calendars: what each kind of entry excludes, in the calendar's own zone, and refusals."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from core.calendars import CalendarRules, calendar_problems, exclusion_reason

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("calendar", "instant", "excluded"),
    [
        (CalendarRules("d", dates=(date(2026, 12, 25),)), at(2026, 12, 25, 9), True),
        (CalendarRules("d", dates=(date(2026, 12, 25),)), at(2026, 12, 26, 9), False),
        # Local days of the calendar's zone: 23:30 UTC on the 24th is the 25th in Berlin.
        (CalendarRules("d", "Europe/Berlin", dates=(date(2026, 12, 25),)), at(2026, 12, 24, 23, 30), True),
        (CalendarRules("d", "America/New_York", dates=(date(2026, 12, 25),)), at(2026, 12, 25, 3), False),
        (CalendarRules("r", ranges=((date(2026, 12, 24), date(2027, 1, 1)),)), at(2027, 1, 1, 23, 59), True),
        (CalendarRules("r", ranges=((date(2026, 12, 24), date(2027, 1, 1)),)), at(2027, 1, 2), False),
        (CalendarRules("y", yearly=("12-25",)), at(2031, 12, 25, 12), True),
        (CalendarRules("y", yearly=("02-29",)), at(2028, 2, 29, 12), True),
        (CalendarRules("y", yearly=("02-29",)), at(2027, 3, 1, 12), False),
        (CalendarRules("w", windows=("* 0-6 * * *",)), at(2026, 5, 5, 6, 59, 30), True),
        (CalendarRules("w", windows=("* 0-6 * * *",)), at(2026, 5, 5, 7, 0), False),
        (CalendarRules("w", "Asia/Tokyo", windows=("* * * * sat,sun",)), at(2026, 5, 8, 16), True),  # Sat 01:00 JST
    ],
)
def test_what_a_calendar_excludes(calendar, instant, excluded):
    assert calendar.excludes(instant) is excluded


def test_the_first_excluding_calendar_names_the_reason():
    holidays = CalendarRules("holidays", dates=(date(2026, 12, 25),))
    weekends = CalendarRules("weekends", windows=("* * * * sat,sun",))
    assert exclusion_reason([weekends, holidays], at(2026, 12, 26, 9)) == "calendar:weekends"  # a Saturday
    assert exclusion_reason([holidays, weekends], at(2026, 12, 25, 9)) == "calendar:holidays"
    assert exclusion_reason([holidays, weekends], at(2026, 12, 28, 9)) is None


@pytest.mark.parametrize(
    ("calendar", "field", "fragment"),
    [
        (CalendarRules("Bad Name"), "name", "lower-case"),
        (CalendarRules("c", "Mars/Olympus"), "timezone", "unknown time zone"),
        (CalendarRules("c", ranges=((date(2026, 2, 2), date(2026, 2, 1)),)), "ranges.0.end", "before start"),
        (CalendarRules("c", yearly=("13-01",)), "yearly.0", "not a month and day"),
        (CalendarRules("c", yearly=("02-30",)), "yearly.0", "not a month and day"),
        (CalendarRules("c", windows=("*/60 * * * *",)), "windows.0", "minute field: step 60"),
        (CalendarRules("c", windows=("0 * * * * *",)), "windows.0", "5-field"),
    ],
)
def test_problems_name_the_field(calendar, field, fragment):
    [problem] = calendar_problems(calendar)
    assert problem.field == field and fragment in problem.message
