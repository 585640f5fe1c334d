"""Cron expressions: the dialect, its parser, and matching on the naive wall clock.

The dialect (docs/cron.md has the table, with an example per feature):

* 5 fields ``minute hour day-of-month month day-of-week``, or 6 with a LEADING seconds field;
* the macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly``;
* in every field: ``*``, values, names (``jan``..``dec``, ``sun``..``sat``), ranges ``a-b``, ranges
  that wrap past the field's end (``23-3``: 23, 0, 1, 2, 3), lists ``a,b``, steps ``*/n``, ``a-b/n``
  and ``a/n`` (a step counts on from the range's first value, across a wrap too: ``23-3/2`` is 23, 1,
  3), and ``H`` (a value hashed from the schedule's id: ``H``, ``H(a-b)``, ``H/n``, ``H(a-b)/n``);
* day of month also: ``L`` (last day), ``L-n`` (n days before it), ``LW`` (last weekday), ``nW``
  (the weekday nearest day n, never leaving the month; no fire in a month without day n), ``?``;
* day of week (0 or 7 = Sunday) also: ``nL`` / ``friL`` (last such weekday of the month), ``n#k``
  (k-th such weekday, k 1..5), ``?``.

Day of month and day of week combine by the cron OR rule: when both are restricted (neither is
``*`` or ``?``), a day matching either fires; otherwise the restricted one alone decides. This holds
for every item kind, ``L``, ``W`` and ``#`` included.

A value outside its field, or a step larger than the field's span (``*/60`` in the minute field),
is refused naming the field: such an expression says something other than what it would do.

Our own evaluator, not croniter: croniter steps through wrapped ranges wrongly (``0 23-3/2 * * *``
fires at 02:00 and 23:00), lets ``30W`` fire in February, accepts oversized steps, refuses ``L-n``,
``LW`` and ``nL``, and turns the OR rule into AND when ``L``, ``W`` or ``#`` meets a restricted
other day field. Each field here is a sorted tuple of values, days are computed per month, and
the search walks months, so a lookup costs a few bisections.

Everything works on NAIVE wall-clock datetimes (whole seconds, no time zone): DST is the business
of `core.rules`, which maps wall times to UTC instants.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# The search gives up after this many years without a match, so impossible expressions such as
# ``0 0 30 2 *`` end quickly. Nine years covers the longest legitimate gap: Feb 29 around a skipped
# century leap year (2096 -> 2104).
MAX_YEARS_BETWEEN_MATCHES = 9

_MAX_EXPR_LEN = 256
_MONTH_NAMES = {
    name: i + 1
    for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# Jenkins keeps hashed days of the month within 1-28 so that they exist in every month.
_HASHED_DOM_HIGH = 28


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def size(self) -> int:
        return self.high - self.low + 1


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 6, _DAY_NAMES)

_RANGE = re.compile(r"^([a-z0-9]+)(?:-([a-z0-9]+))?$")
_HASH = re.compile(r"^h(?:\((\d+)-(\d+)\))?$")
_LAST_OFFSET = re.compile(r"^l-(\d+)$")
_NEAREST_WEEKDAY = re.compile(r"^(\d+)w$")
_LAST_OF_WEEKDAY = re.compile(r"^([a-z0-9]+)l$")
_NTH_WEEKDAY = re.compile(r"^([a-z0-9]+)#(\d+)$")


class CronError(ValueError):
    """A cron expression that is not valid; the message names the field and the reason."""


@dataclass(frozen=True)
class _Days:
    """The day-of-month and day-of-week fields: plain values plus the month-relative items."""

    dom_values: frozenset[int]
    dom_last_offsets: frozenset[int]  # L (0) and L-n (n)
    dom_last_weekday: bool  # LW
    dom_nearest_weekdays: frozenset[int]  # nW
    dow_values: frozenset[int]
    dow_last: frozenset[int]  # nL
    dow_nth: frozenset[tuple[int, int]]  # n#k as (weekday, k)
    dom_any: bool  # the field is * or ?
    dow_any: bool

    def in_month(self, year: int, month: int) -> tuple[int, ...]:
        """The matching days of one month, ascending."""
        length = calendar.monthrange(year, month)[1]
        if self.dom_any and self.dow_any:
            return tuple(range(1, length + 1))
        days: set[int] = set()
        if not self.dom_any:
            days |= self._month_days(year, month, length)
        if not self.dow_any:
            days |= self._week_days(year, month, length)
        return tuple(sorted(days))

    def _month_days(self, year: int, month: int, length: int) -> set[int]:
        days = {d for d in self.dom_values if d <= length}
        days |= {length - n for n in self.dom_last_offsets if length - n >= 1}
        if self.dom_last_weekday:
            days.add(_nearest_weekday(year, month, length, length))
        days |= {_nearest_weekday(year, month, n, length) for n in self.dom_nearest_weekdays if n <= length}
        return days

    def _week_days(self, year: int, month: int, length: int) -> set[int]:
        first = _cron_weekday(date(year, month, 1))
        days = {d for d in range(1, length + 1) if (first + d - 1) % 7 in self.dow_values}
        for weekday in self.dow_last:
            days.add(length - (_cron_weekday(date(year, month, length)) - weekday) % 7)
        for weekday, k in self.dow_nth:
            day = 1 + (weekday - first) % 7 + 7 * (k - 1)
            if day <= length:
                days.add(day)
        return days


def _cron_weekday(day: date) -> int:
    """0 = Sunday .. 6 = Saturday."""
    return (day.weekday() + 1) % 7


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The Monday-to-Friday day nearest `day`, within the month (Quartz's ``W``)."""
    weekday = _cron_weekday(date(year, month, day))
    if weekday == 6:  # Saturday: Friday before, or Monday after when the 1st is a Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday: Monday after, or Friday before when the month ends on a Sunday
        return day + 1 if day < length else day - 2
    return day


@dataclass(frozen=True)
class CronSpec:
    """A validated cron expression.

    `expr` is normalized (macros expanded, single spaces, lower case); `resolved` is the same with
    every ``H`` replaced by the values it stands for. `has_seconds` is True for the 6-field form.
    `hour_is_wildcard` is True when the hour field is exactly ``*`` (the DST repeat policy ``auto``).
    """

    expr: str
    has_seconds: bool
    hour_is_wildcard: bool
    source: str
    resolved: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: _Days
    _month_cache: dict[tuple[int, int], tuple[int, ...]] = field(
        default_factory=dict, hash=False, compare=False, repr=False
    )

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.expr.split(" "))

    def days_in(self, year: int, month: int) -> tuple[int, ...]:
        key = (year, month)
        days = self._month_cache.get(key)
        if days is None:
            if len(self._month_cache) > 256:
                self._month_cache.clear()
            days = self._month_cache[key] = self.days.in_month(year, month)
        return days


def parse_cron(expr: str, hash_key: str = "") -> CronSpec:
    """Validate `expr` and return its `CronSpec`; raise CronError (a ValueError) naming the field.

    `hash_key` (a schedule's id) chooses the values of ``H`` fields; it is ignored without them.
    """
    if not isinstance(expr, str):
        raise CronError("cron expression must be a string")
    normalized = _normalize(expr)
    key = hash_key if _uses_hash(normalized) else ""
    return _parse_cached(normalized, key, expr.strip())


def resolved_cron(expr: str | None, hash_key: str) -> str | None:
    """The expression with its ``H`` values resolved for `hash_key` (None without an expression)."""
    return None if expr is None else parse_cron(expr, hash_key).resolved


def _normalize(expr: str) -> str:
    source = expr.strip()
    if not source:
        raise CronError("cron expression is empty")
    if len(source) > _MAX_EXPR_LEN:
        raise CronError(f"cron expression is longer than {_MAX_EXPR_LEN} characters")
    lowered = source.lower()
    if lowered.startswith("@"):
        if lowered not in MACROS:
            raise CronError(f"unsupported macro {source!r}; use one of {', '.join(sorted(MACROS))}")
        return MACROS[lowered]
    normalized = " ".join(lowered.split())
    count = len(normalized.split(" "))
    if count not in (5, 6):
        raise CronError(
            "cron expression must have 5 fields (minute hour day-of-month month day-of-week) or 6 with "
            f"a leading seconds field; got {count}"
        )
    return normalized


def _uses_hash(normalized: str) -> bool:
    return any(item.startswith("h") for part in normalized.split(" ") for item in part.split(","))


@lru_cache(maxsize=4096)
def _parse_cached(normalized: str, hash_key: str, source: str) -> CronSpec:
    parts = normalized.split(" ")
    has_seconds = len(parts) == 6
    if not has_seconds:
        parts = ["0", *parts]
    second, minute, hour, dom, month, dow = parts
    seconds = _values(_SECOND, second, hash_key)
    minutes = _values(_MINUTE, minute, hash_key)
    hours = _values(_HOUR, hour, hash_key)
    months = _values(_MONTH, month, hash_key)
    days = _days(dom, dow, hash_key)
    fields = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)
    resolved = [_resolved(f, p, hash_key) for f, p in zip(fields, parts)]
    return CronSpec(
        expr=normalized,
        has_seconds=has_seconds,
        hour_is_wildcard=hour == "*",
        source=source,
        resolved=" ".join(resolved if has_seconds else resolved[1:]),
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        months=frozenset(months),
        days=days,
    )


def _resolved(f: _Field, part: str, hash_key: str) -> str:
    """The field with each ``H`` item replaced by the values it stands for."""
    items = [",".join(map(str, _item(f, i, hash_key))) if i.startswith("h") else i for i in part.split(",")]
    return ",".join(items)


# ---------------------------------------------------------------- fields


def _values(f: _Field, part: str, hash_key: str) -> tuple[int, ...]:
    """The sorted values of a plain field (every item kind but the day-relative ones)."""
    if not part:
        raise CronError(f"{f.name} field: is empty")
    values: set[int] = set()
    for item in part.split(","):
        values.update(_item(f, item, hash_key))
    return tuple(sorted(values))


def _item(f: _Field, item: str, hash_key: str) -> list[int]:
    base, slash, step_text = item.partition("/")
    step = _step(f, step_text) if slash else 1
    if base == "*" or (base == "?" and f in (_DOM, _DOW)):
        return list(range(f.low, f.high + 1, step))
    hashed = _HASH.match(base)
    if hashed:
        return _hashed(f, hashed, step if slash else None, hash_key)
    match = _RANGE.match(base)
    if not match:
        raise CronError(f"{f.name} field: {item!r} is not a value, range, list or step")
    first = _value(f, match.group(1))
    if match.group(2) is None:
        return list(range(first, f.high + 1, step)) if slash else [first]
    last = _value(f, match.group(2), range_end=True)
    return _stepped_range(f, first, last, step)


def _step(f: _Field, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise CronError(f"{f.name} field: step {text!r} must be a whole number of at least 1")
    step = int(text)
    span = f.high - f.low
    if step > span:
        raise CronError(f"{f.name} field: step {step} is larger than the field's span ({f.low}-{f.high})")
    return step


def _value(f: _Field, text: str, range_end: bool = False) -> int:
    if text in f.names:
        return f.names[text]
    if not text.isdigit():
        raise CronError(f"{f.name} field: {text!r} is not a number or a name")
    value = int(text)
    if f is _DOW and value == 7:  # 7 is Sunday too; as a range end it closes the week (0-7, 5-7)
        return 7 if range_end else 0
    if not f.low <= value <= f.high:
        raise CronError(f"{f.name} field: {value} is outside {f.low}-{f.high}")
    return value


def _stepped_range(f: _Field, first: int, last: int, step: int) -> list[int]:
    """`first`..`last` by `step`; a range whose end comes before its start wraps past the field's end."""
    if first <= last:
        return [v % 7 if f is _DOW else v for v in range(first, last + 1, step)]
    length = (last - first) % f.size
    return [f.low + (first - f.low + k) % f.size for k in range(0, length + 1, step)]


def _hashed(f: _Field, match: re.Match[str], step: int | None, hash_key: str) -> list[int]:
    """``H``: a value in the field (or in ``H(a-b)``) chosen by a hash of the key and the field's name."""
    if match.group(1) is not None:
        low, high = _value(f, match.group(1)), _value(f, match.group(2))
        if low > high:
            raise CronError(f"{f.name} field: H({low}-{high}) needs a range in ascending order")
    else:
        low, high = f.low, (_HASHED_DOM_HIGH if f is _DOM else f.high)
    digest = hashlib.blake2b(f"{hash_key}|{f.name}".encode(), digest_size=8).digest()
    h = int.from_bytes(digest, "big")
    if step is None:
        return [low + h % (high - low + 1)]
    return list(range(low + h % step, high + 1, step))


def _days(dom: str, dow: str, hash_key: str) -> _Days:
    dom_values: set[int] = set()
    last_offsets: set[int] = set()
    nearest: set[int] = set()
    last_weekday = False
    for item in dom.split(","):
        if item == "l":
            last_offsets.add(0)
        elif item == "lw":
            last_weekday = True
        elif m := _LAST_OFFSET.match(item):
            last_offsets.add(_bounded(_DOM, "L-n", int(m.group(1)), 1, 30))
        elif m := _NEAREST_WEEKDAY.match(item):
            nearest.add(_bounded(_DOM, "nW", int(m.group(1)), 1, 31))
        else:
            dom_values.update(_item(_DOM, item, hash_key))
    dow_values: set[int] = set()
    dow_last: set[int] = set()
    dow_nth: set[tuple[int, int]] = set()
    for item in dow.split(","):
        if item == "l":
            raise CronError("day-of-week field: 'L' alone is ambiguous; write 'sat', or '5L' for the last Friday")
        if m := _LAST_OF_WEEKDAY.match(item):
            dow_last.add(_value(_DOW, m.group(1)))
        elif m := _NTH_WEEKDAY.match(item):
            dow_nth.add((_value(_DOW, m.group(1)), _bounded(_DOW, "d#n", int(m.group(2)), 1, 5)))
        else:
            dow_values.update(_item(_DOW, item, hash_key))
    return _Days(
        dom_values=frozenset(dom_values),
        dom_last_offsets=frozenset(last_offsets),
        dom_last_weekday=last_weekday,
        dom_nearest_weekdays=frozenset(nearest),
        dow_values=frozenset(dow_values),
        dow_last=frozenset(dow_last),
        dow_nth=frozenset(dow_nth),
        dom_any=dom in ("*", "?"),
        dow_any=dow in ("*", "?"),
    )


def _bounded(f: _Field, what: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise CronError(f"{f.name} field: {value} in {what} is outside {low}-{high}")
    return value


# ---------------------------------------------------------------- search


def next_wall_time(spec: CronSpec, naive_wall: datetime) -> datetime | None:
    """First NAIVE wall time matching `spec` that is >= `naive_wall` (at-or-after, whole seconds).

    Returns None when nothing matches within `MAX_YEARS_BETWEEN_MATCHES` years (``0 0 30 2 *``)
    or before the end of year 9999.
    """
    if naive_wall.tzinfo is not None:
        raise ValueError("next_wall_time expects a naive wall-clock datetime")
    t = naive_wall
    if t.microsecond:
        if t >= datetime.max.replace(microsecond=0):
            return None
        t = t.replace(microsecond=0) + timedelta(seconds=1)
    year, month, day = t.year, t.month, t.day
    clock: tuple[int, int, int] | None = (t.hour, t.minute, t.second)
    for _ in range(MAX_YEARS_BETWEEN_MATCHES * 12 + 1):
        if month in spec.months:
            days = spec.days_in(year, month)
            for d in days[bisect_left(days, day) :]:
                found = _first_time(spec, clock if d == day else None)
                if found is not None:
                    return datetime(year, month, d, *found)
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        if year > datetime.max.year:
            return None
        day, clock = 1, None
    return None


def _first_time(spec: CronSpec, clock: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    """The first (hour, minute, second) of the spec at or after `clock` within one day (None: the day's start)."""
    hours, minutes, seconds = spec.hours, spec.minutes, spec.seconds
    if clock is None:
        return hours[0], minutes[0], seconds[0]
    hour, minute, second = clock
    i = bisect_left(hours, hour)
    if i < len(hours) and hours[i] == hour:
        j = bisect_left(minutes, minute)
        if j < len(minutes) and minutes[j] == minute:
            k = bisect_left(seconds, second)
            if k < len(seconds):
                return hour, minute, seconds[k]
            j += 1
        if j < len(minutes):
            return hour, minutes[j], seconds[0]
        i += 1
    if i < len(hours):
        return hours[i], minutes[0], seconds[0]
    return None


def matches(spec: CronSpec, naive_wall: datetime) -> bool:
    """True when the naive wall time (whole seconds; seconds 0 for 5-field crons) matches."""
    if naive_wall.tzinfo is not None:
        raise ValueError("matches expects a naive wall-clock datetime")
    if naive_wall.microsecond:
        return False
    return next_wall_time(spec, naive_wall) == naive_wall
