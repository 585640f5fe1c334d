"""Cron expression parsing and naive wall-clock matching (a thin wrapper around `croniter`).

Accepted syntax (everything else is rejected with a human-readable `ValueError`):

* 5 fields: ``minute hour day-of-month month day-of-week``;
* 6 fields with a LEADING seconds field: ``second minute hour day-of-month month day-of-week``;
* the macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.

Field matching (ranges, steps, names, ``L``, ``#``...) is entirely croniter's. Day-of-month and
day-of-week use the classic cron OR rule (``0 0 13 * 5`` fires on every 13th AND every Friday).

Everything here works on NAIVE wall-clock datetimes (no time zone at all): croniter in naive mode
does pure calendar arithmetic, which is exactly what we want, because DST is handled by
`core.rules` which maps wall times to UTC instants itself. All times are whole seconds.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from croniter import CroniterBadDateError, CroniterError, croniter

# Macro name -> the 5-field expression it stands for. Kept here (not delegated to croniter) so
# the normalized expression, and therefore `hour_is_wildcard`, is explicit.
MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# croniter gives up after this many years without a match (raising CroniterBadDateError), which
# makes impossible expressions such as ``0 0 30 2 *`` fail in well under a millisecond. Nine
# years covers the longest legitimate gap: Feb 29 around a skipped century leap year (2096->2104).
MAX_YEARS_BETWEEN_MATCHES = 9

_ONE_SECOND = timedelta(seconds=1)
_MAX_EXPR_LEN = 256
_HASH_OR_RANDOM = re.compile(r"^[hr](\(|/|$)")


@dataclass(frozen=True)
class CronSpec:
    """A validated cron expression.

    `expr` is normalized: macros expanded, fields separated by single spaces, lower case.
    `has_seconds` is True for the 6-field form (seconds first). `hour_is_wildcard` is True when the
    hour field is exactly ``*`` (used by the DST repeat policy ``auto``).
    """

    expr: str
    has_seconds: bool
    hour_is_wildcard: bool
    source: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.expr.split(" "))


def parse_cron(expr: str) -> CronSpec:
    """Validate `expr` and return its `CronSpec`; raise ValueError with a readable reason."""
    if not isinstance(expr, str):
        raise ValueError("cron expression must be a string")
    return _parse_cached(expr)


@lru_cache(maxsize=4096)
def _parse_cached(expr: str) -> CronSpec:
    source = expr.strip()
    if not source:
        raise ValueError("cron expression is empty")
    if len(source) > _MAX_EXPR_LEN:
        raise ValueError(f"cron expression is longer than {_MAX_EXPR_LEN} characters")
    lowered = source.lower()
    if lowered.startswith("@"):
        if lowered not in MACROS:
            raise ValueError(f"unsupported macro {source!r}; use one of {', '.join(sorted(MACROS))}")
        normalized = MACROS[lowered]
    else:
        normalized = " ".join(lowered.split())
    fields = normalized.split(" ")
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron expression must have 5 fields (minute hour day month weekday) or 6 with a "
            f"leading seconds field; got {len(fields)}"
        )
    # 'H' (hashed) needs a per-job hash id and 'R' is random: neither is reproducible here.
    # croniter applies its hash expander to a whole field, so checking whole fields suffices.
    if any(_HASH_OR_RANDOM.match(field) for field in fields):
        raise ValueError("hashed (H) and random (R) cron fields are not supported")
    has_seconds = len(fields) == 6
    try:
        croniter.expand(normalized, second_at_beginning=has_seconds)
        # Constructing also validates combinations that `expand` lets through.
        croniter(normalized, datetime(2000, 1, 1), second_at_beginning=has_seconds)
    except (CroniterError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"invalid cron expression {source!r}: {_reason(exc)}") from None
    hour_field = fields[2] if has_seconds else fields[1]
    return CronSpec(expr=normalized, has_seconds=has_seconds, hour_is_wildcard=hour_field == "*", source=source)


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    # croniter messages look like "[60 * * * *] is not acceptable, out of range"; keep the tail.
    if text.startswith("[") and "]" in text:
        text = text[text.index("]") + 1 :].strip(" ,.") or text
    return text


class _Iter:
    """One reusable croniter per expression: construction (field expansion) costs ~3x a lookup.

    croniter objects are stateful, so each lookup holds a lock; lookups are ~30 µs.
    """

    def __init__(self, spec: CronSpec) -> None:
        self._lock = threading.Lock()
        self._it = croniter(
            spec.expr,
            datetime(2000, 1, 1),
            ret_type=datetime,
            day_or=True,
            max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
            second_at_beginning=spec.has_seconds,
        )

    def next_after(self, start: datetime) -> datetime | None:
        with self._lock:
            try:
                return self._it.get_next(datetime, start_time=start)
            except CroniterBadDateError:
                return None
            except OverflowError:  # beyond datetime.max
                return None


@lru_cache(maxsize=4096)
def _iterator(spec: CronSpec) -> _Iter:
    return _Iter(spec)


def next_wall_time(spec: CronSpec, naive_wall: datetime) -> datetime | None:
    """First NAIVE wall time matching `spec` that is >= `naive_wall` (at-or-after).

    The input must be naive (it is a local wall-clock reading, not an instant). Returns None when
    the expression has no match within `MAX_YEARS_BETWEEN_MATCHES` years (e.g. ``0 0 30 2 *``).
    """
    if naive_wall.tzinfo is not None:
        raise ValueError("next_wall_time expects a naive wall-clock datetime")
    floor = naive_wall.replace(microsecond=0)
    # croniter's get_next is strictly after its start; starting one second early makes it
    # at-or-after for whole-second inputs. With a fractional input, floor itself is too early.
    start = floor if naive_wall.microsecond else floor - _ONE_SECOND
    try:
        return _iterator(spec).next_after(start)
    except OverflowError:
        return None


def matches(spec: CronSpec, naive_wall: datetime) -> bool:
    """True when the naive wall time (whole seconds; seconds must be 0 for 5-field crons) matches."""
    if naive_wall.tzinfo is not None:
        raise ValueError("matches expects a naive wall-clock datetime")
    if naive_wall.microsecond:
        return False
    return next_wall_time(spec, naive_wall) == naive_wall
