"""Exclusion calendars: named sets of local days and windows in which a schedule's slots do not fire.

A calendar has a time zone (its days are local days there, not the schedule's) and any of:

* `dates`: whole days (`2026-12-25`);
* `ranges`: inclusive runs of days (`{"start": "2026-12-24", "end": "2027-01-01"}`);
* `yearly`: a month and day every year (`12-25`; `02-29` only in leap years);
* `windows`: 5-field cron expressions; a slot whose local wall time, to the minute, matches one is
  excluded (`* 0-6 * * *`: before 07:00; `* * * * sat,sun`: weekends).

A schedule lists calendars by name (`exclude_calendars`); a slot any of them excludes is recorded
`skipped` with reason `calendar:<name>` (the first in the schedule's order) instead of firing. The
rule's slots themselves do not change: an excluded slot is still a slot (the next one is not moved).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from core.cronexpr import CronError, matches, parse_cron
from core.errors import FieldError
from core.states import Reason
from core.timezones import load_zone, require_aware

CALENDAR_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_YEARLY = re.compile(r"^(\d\d)-(\d\d)$")
# Limits of one calendar, so that a check stays fast and a stored calendar small.
MAX_ENTRIES = 1000
MAX_WINDOWS = 20


@dataclass(frozen=True)
class CalendarRules:
    """What one calendar excludes (see the module docstring)."""

    name: str
    timezone: str = "UTC"
    dates: tuple[date, ...] = ()
    ranges: tuple[tuple[date, date], ...] = ()
    yearly: tuple[str, ...] = ()  # "MM-DD"
    windows: tuple[str, ...] = ()  # 5-field cron expressions

    def excludes(self, instant: datetime) -> bool:
        """Whether the slot at `instant` (aware) falls in this calendar."""
        local = require_aware(instant, "instant").astimezone(load_zone(self.timezone))
        day = local.date()
        if day in self.dates or f"{day.month:02d}-{day.day:02d}" in self.yearly:
            return True
        if any(start <= day <= end for start, end in self.ranges):
            return True
        minute = local.replace(tzinfo=None, second=0, microsecond=0, fold=0)
        return any(matches(parse_cron(window), minute) for window in self.windows)


def exclusion_reason(calendars: Sequence[CalendarRules], instant: datetime) -> str | None:
    """`calendar:<name>` of the first calendar that excludes the slot at `instant`, else None."""
    for calendar in calendars:
        if calendar.excludes(instant):
            return f"{Reason.CALENDAR}:{calendar.name}"
    return None


def calendar_problems(calendar: CalendarRules) -> list[FieldError]:
    """Every problem with a calendar's fields, each naming its field (empty: valid)."""
    errors: list[FieldError] = []
    if not CALENDAR_NAME.match(calendar.name):
        errors.append(
            FieldError("name", "must be 1-63 lower-case letters, digits, '.', '_' or '-', first a letter or digit")
        )
    try:
        load_zone(calendar.timezone)
    except ValueError:
        errors.append(FieldError("timezone", f"unknown time zone {calendar.timezone!r}"))
    if len(calendar.dates) + len(calendar.ranges) + len(calendar.yearly) > MAX_ENTRIES:
        errors.append(FieldError("dates", f"a calendar holds at most {MAX_ENTRIES} dates, ranges and yearly dates"))
    for i, (start, end) in enumerate(calendar.ranges):
        if end < start:
            errors.append(FieldError(f"ranges.{i}.end", "must not be before start"))
    for i, text in enumerate(calendar.yearly):
        if not _valid_yearly(text):
            errors.append(FieldError(f"yearly.{i}", f"{text!r} is not a month and day (MM-DD)"))
    if len(calendar.windows) > MAX_WINDOWS:
        errors.append(FieldError("windows", f"at most {MAX_WINDOWS} windows"))
    for i, window in enumerate(calendar.windows):
        problem = _window_problem(window)
        if problem:
            errors.append(FieldError(f"windows.{i}", problem))
    return errors


def _valid_yearly(text: str) -> bool:
    found = _YEARLY.match(text)
    if not found:
        return False
    try:
        date(2000, int(found.group(1)), int(found.group(2)))  # a leap year: 02-29 is a month and day
    except ValueError:
        return False
    return True


def _window_problem(window: str) -> str | None:
    try:
        spec = parse_cron(window)
    except CronError as error:
        return str(error)
    if spec.has_seconds:
        return "a window is a 5-field cron expression (minute precision)"
    return None
