"""An independent, brute-force cron matcher for the property tests, and random expressions for them.

It shares no code with `core.cronexpr`: every item becomes a predicate over one value, computed
by arithmetic (a wrapped range is a distance modulo the field's size), and the day items are
answered from the calendar by scanning the month (the last weekday is the latest Monday-to-Friday,
the nearest weekday the closest one by distance). The search walks day by day, then hour, minute
and second, asking the predicates. It is slow and plain on purpose: it is the reference.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from hypothesis import strategies as st

Pred = Callable[[int], bool]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0"}
MACROS |= {"@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
# field name, low, high, the range H draws from
SPECS = {
    "second": (0, 59, (0, 59)),
    "minute": (0, 59, (0, 59)),
    "hour": (0, 23, (0, 23)),
    "day-of-month": (1, 31, (1, 28)),
    "month": (1, 12, (1, 12)),
    "day-of-week": (0, 6, (0, 6)),
}


def _number(name: str, text: str) -> int:
    if name == "month" and text in MONTHS:
        return MONTHS.index(text) + 1
    if name == "day-of-week" and text in DAYS:
        return DAYS.index(text)
    return int(text)


def _hash(key: str, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}|{name}".encode(), digest_size=8).digest(), "big")


def _item_pred(name: str, item: str, key: str) -> Pred:
    low, high, (h_low, h_high) = SPECS[name]
    size = high - low + 1
    base, _, step_text = item.partition("/")
    step = int(step_text) if step_text else 1
    if base in ("*", "?"):
        return lambda v: (v - low) % step == 0
    m = re.fullmatch(r"h(?:\((\d+)-(\d+)\))?", base)
    if m:
        a, b = (int(m.group(1)), int(m.group(2))) if m.group(1) else (h_low, h_high)
        h = _hash(key, name)
        if not step_text:
            return lambda v: v == a + h % (b - a + 1)
        start = a + h % step
        return lambda v: start <= v <= b and (v - start) % step == 0
    first_text, _, last_text = base.partition("-")
    a = _number(name, first_text)
    if name == "day-of-week" and a == 7:
        a = 0
    if not last_text:
        return (lambda v: v >= a and (v - a) % step == 0) if step_text else (lambda v: v == a)
    b = _number(name, last_text)
    if name == "day-of-week" and b == 7:  # 7 = Sunday closes the week: a-7 is a-6 and Sunday
        return lambda v: (a <= v and (v - a) % step == 0) or (v == 0 and (7 - a) % step == 0)
    if a <= b:
        return lambda v: a <= v <= b and (v - a) % step == 0
    return lambda v: (v - a) % size <= (b - a) % size and ((v - a) % size) % step == 0


def _field_pred(name: str, text: str, key: str) -> Pred:
    preds = [_item_pred(name, item, key) for item in text.split(",")]
    return lambda v: any(p(v) for p in preds)


def _weekday(d: date) -> int:
    return (d.weekday() + 1) % 7


def _dom_item(item: str, key: str) -> Callable[[date], bool]:
    def last(d: date) -> int:
        return calendar.monthrange(d.year, d.month)[1]

    def weekdays(d: date) -> list[int]:
        return [x for x in range(1, last(d) + 1) if _weekday(d.replace(day=x)) not in (0, 6)]

    if item == "l":
        return lambda d: d.day == last(d)
    if item == "lw":
        return lambda d: d.day == max(weekdays(d))
    if m := re.fullmatch(r"l-(\d+)", item):
        return lambda d: d.day == last(d) - int(m.group(1))
    if m := re.fullmatch(r"(\d+)w", item):
        n = int(m.group(1))
        return lambda d: n <= last(d) and d.day == min(weekdays(d), key=lambda x: abs(x - n))
    pred = _item_pred("day-of-month", item, key)
    return lambda d: pred(d.day)


def _dow_item(item: str, key: str) -> Callable[[date], bool]:
    if m := re.fullmatch(r"([a-z0-9]+)l", item):
        wd = _number("day-of-week", m.group(1)) % 7
        return lambda d: _weekday(d) == wd and d.day + 7 > calendar.monthrange(d.year, d.month)[1]
    if m := re.fullmatch(r"([a-z0-9]+)#(\d)", item):
        wd, k = _number("day-of-week", m.group(1)) % 7, int(m.group(2))
        return lambda d: _weekday(d) == wd and (d.day - 1) // 7 + 1 == k
    pred = _item_pred("day-of-week", item, key)
    return lambda d: pred(_weekday(d))


class Oracle:
    """Predicates of one expression; `next_at_or_after` is the brute-force search."""

    def __init__(self, expr: str, key: str = "") -> None:
        text = MACROS.get(expr.strip().lower(), expr.strip().lower())
        parts = text.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        second, minute, hour, dom, month, dow = parts
        self.second = _field_pred("second", second, key)
        self.minute = _field_pred("minute", minute, key)
        self.hour = _field_pred("hour", hour, key)
        self.month = _field_pred("month", month, key)
        doms = [_dom_item(i, key) for i in dom.split(",")]
        dows = [_dow_item(i, key) for i in dow.split(",")]
        dom_any, dow_any = dom in ("*", "?"), dow in ("*", "?")
        dom_ok = lambda d: any(p(d) for p in doms)  # noqa: E731
        dow_ok = lambda d: any(p(d) for p in dows)  # noqa: E731
        if dom_any or dow_any:
            self.day = lambda d: dom_ok(d) and dow_ok(d)
        else:
            self.day = lambda d: dom_ok(d) or dow_ok(d)

    def matches(self, wall: datetime) -> bool:
        d = wall.date()
        return (
            self.month(d.month)
            and self.day(d)
            and self.hour(wall.hour)
            and self.minute(wall.minute)
            and self.second(wall.second)
        )

    def next_at_or_after(self, start: datetime, days: int) -> datetime | None:
        """First match at or after `start` (whole seconds) within `days` days, else None."""
        day = start.date()
        for _ in range(days + 1):
            if self.month(day.month) and self.day(day):
                found = self._in_day(day, start if day == start.date() else None)
                if found is not None:
                    return found
            day += timedelta(days=1)
        return None

    def _in_day(self, day: date, start: datetime | None) -> datetime | None:
        floor = (start.hour, start.minute, start.second) if start is not None else (0, 0, 0)
        for h in (h for h in range(floor[0], 24) if self.hour(h)):
            for m in (m for m in range(60) if (h, m) >= floor[:2] and self.minute(m)):
                for s in (s for s in range(60) if (h, m, s) >= floor and self.second(s)):
                    return datetime(day.year, day.month, day.day, h, m, s)
        return None


# ---------------------------------------------------------------- random expressions


def _range_items(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    text = (
        value.map(str)
        if names is None
        else st.one_of(value.map(str), st.integers(0, len(names) - 1).map(lambda i: names[i]))
    )
    step = st.integers(1, high - low).map(lambda s: f"/{s}")
    ranged = st.tuples(text, st.one_of(st.just(""), text.map(lambda t: "-" + t))).map("".join)
    stepped = st.tuples(st.one_of(st.just("*"), ranged), step).map("".join)
    hashed = st.one_of(st.just("h"), step.map(lambda s: "h" + s))
    return st.one_of(ranged, stepped, hashed)


def _field(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just("*"), st.lists(items, min_size=1, max_size=3).map(",".join))


DOM_SPECIAL = st.one_of(
    st.just("l"), st.just("lw"), st.integers(1, 30).map(lambda n: f"l-{n}"), st.integers(1, 31).map(lambda n: f"{n}w")
)
DOW_SPECIAL = st.one_of(
    st.tuples(st.one_of(st.integers(0, 7).map(str), st.sampled_from(DAYS))).map(lambda t: f"{t[0]}l"),
    st.tuples(st.integers(0, 7), st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"),
)


SECONDS = _field(_range_items(0, 59))
MINUTES = _field(_range_items(0, 59))
HOURS = _field(_range_items(0, 23))
DAYS_OF_MONTH = _field(st.one_of(_range_items(1, 31), DOM_SPECIAL))
MONTHS_FIELD = _field(_range_items(1, 12, MONTHS))
DAYS_OF_WEEK = _field(st.one_of(_range_items(0, 6, DAYS), DOW_SPECIAL))

# Random valid expressions of the whole dialect, 5 fields or 6 (seconds first).
cron_expressions = st.one_of(
    st.tuples(MINUTES, HOURS, DAYS_OF_MONTH, MONTHS_FIELD, DAYS_OF_WEEK),
    st.tuples(SECONDS, MINUTES, HOURS, DAYS_OF_MONTH, MONTHS_FIELD, DAYS_OF_WEEK),
).map(" ".join)
# Expressions that fire daily or weekly (for windows of a few hours around DST changes).
daily_expressions = st.tuples(MINUTES, HOURS, st.just("*"), st.just("*"), st.one_of(st.just("*"), DAYS_OF_WEEK)).map(
    " ".join
)
