"""iCalendar (.ics) in and out, with the `icalendar` library: holidays into a calendar's entries, and a
schedule's fire times out as events.

An all-day event becomes a date (or a range, DTEND being exclusive); one with a yearly RRULE becomes a
yearly date; a timed event excludes its whole local day. Events in any other shape are refused with
the reason, naming the event.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import icalendar

from core.errors import FieldError, ValidationFailed


def entries_from_ics(text: str) -> tuple[list[date], list[tuple[date, date]], list[str]]:
    """(dates, inclusive ranges, yearly "MM-DD") of the events of an iCalendar document."""
    try:
        document = icalendar.Calendar.from_ical(text)
    except ValueError as error:
        raise ValidationFailed.single("body", f"is not an iCalendar document: {error}") from None
    dates: list[date] = []
    ranges: list[tuple[date, date]] = []
    yearly: list[str] = []
    problems: list[FieldError] = []
    for i, event in enumerate(document.walk("VEVENT")):
        try:
            start = _day(event.decoded("DTSTART"))
            end = _day(event.decoded("DTEND")) - timedelta(days=1) if "DTEND" in event else start
        except (KeyError, ValueError) as error:
            problems.append(FieldError(f"body.events.{i}", f"has no usable DTSTART/DTEND: {error}"))
            continue
        freq = (event.get("RRULE") or {}).get("FREQ")
        if freq == ["YEARLY"]:
            yearly.append(f"{start.month:02d}-{start.day:02d}")
        elif freq:
            problems.append(FieldError(f"body.events.{i}", f"repeats {freq[0].lower()}; only yearly repeats are kept"))
        elif end > start:
            ranges.append((start, end))
        else:
            dates.append(start)
    if problems:
        raise ValidationFailed(problems)
    return dates, ranges, yearly


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def fires_to_ics(schedule_id: str, name: str, target: str, fires: list[datetime], now: datetime) -> bytes:
    """An iCalendar document with one event per fire instant (UTC), for calendar applications."""
    document = icalendar.Calendar()
    document.add("prodid", "-//scheduler-service//fire times//EN")
    document.add("version", "2.0")
    document.add("x-wr-calname", f"{name} fire times")
    for fire in fires:
        event = icalendar.Event()
        event.add("uid", f"{schedule_id}-{int(fire.timestamp())}@scheduler-service")
        event.add("dtstamp", now.astimezone(timezone.utc))
        event.add("dtstart", fire.astimezone(timezone.utc))
        event.add("dtend", fire.astimezone(timezone.utc) + timedelta(minutes=1))
        event.add("summary", f"{name} → {target}")
        document.add_component(event)
    return document.to_ical()
