"""Time-zone helpers: load IANA zones and find UTC-offset transitions (DST changes).

Conventions: an *instant* is an aware datetime (any tzinfo; results are always
`datetime.timezone.utc`); a *wall time* is a naive datetime read off a local clock. Offsets are
`timedelta`s east of UTC (New York in winter: -5 h). Transitions are where the UTC offset
changes; abbreviation-only or isdst-only changes are ignored because they never move wall time.

Transition search probes forward in `PROBE_STEP` (1 day) steps and bisects to 1-second
precision. ASSUMPTION: two offset changes are never closer together than `PROBE_STEP`; otherwise
a pair of changes inside one step that cancel out would be missed. This holds for every modern
tzdata zone (the closest pairs are weeks apart, e.g. Morocco's Ramadan suspension).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
PROBE_STEP = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_MAX_NAME_LEN = 64


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA zone `name` (e.g. ``Europe/Berlin``); raise ValueError if unknown.

    Rejects empty names and anything that looks like a path trick (absolute paths, ``..``
    components, backslashes, NUL) before touching the tz database.
    """
    if not isinstance(name, str):
        raise ValueError("unknown time zone: the name must be a string")
    return _load_zone_cached(name)


@lru_cache(maxsize=1024)
def _load_zone_cached(name: str) -> ZoneInfo:
    bad = (
        not name
        or name != name.strip()
        or len(name) > _MAX_NAME_LEN
        or name.startswith(("/", "."))
        or any(part in ("", ".", "..") for part in name.split("/"))
        or any(ch in name for ch in "\\\0:")
        or not name.isprintable()
    )
    if bad:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        # OSError covers directories such as "America"; ValueError covers non-TZif files.
        raise ValueError(f"unknown time zone {name!r}") from None


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return `value` converted to UTC; raise ValueError if it is naive."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got a naive datetime")
    return value.astimezone(UTC)


def utcoffset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    """UTC offset of `zone` at the aware `instant`."""
    return instant.astimezone(zone).utcoffset()  # type: ignore[return-value]


def to_wall(instant: datetime, offset: timedelta) -> datetime:
    """Naive wall time that an instant shows on a clock with the given offset."""
    return (instant + offset).replace(tzinfo=None)


def from_wall(wall: datetime, offset: timedelta) -> datetime:
    """Aware UTC instant at which a clock with `offset` shows the naive `wall`."""
    return (wall - offset).replace(tzinfo=UTC)


def next_transition(zone: ZoneInfo, after: datetime, until: datetime | None = None) -> datetime | None:
    """First instant T > `after` whose UTC offset differs from the offset at `after`.

    T is the first instant with the NEW offset (whole seconds, UTC). The search stops at `until`
    (default: 2 years after `after`) and returns None if no change happens in (after, until].
    """
    after = after.astimezone(UTC)
    until = after + timedelta(days=731) if until is None else until.astimezone(UTC)
    base = utcoffset_at(zone, after)
    lo = after
    while lo < until:
        hi = min(lo + PROBE_STEP, until)
        if utcoffset_at(zone, hi) != base:
            return _bisect(zone, lo, hi, base)
        lo = hi
    return None


def _bisect(zone: ZoneInfo, lo: datetime, hi: datetime, base: timedelta) -> datetime:
    """Given offset(lo) == base != offset(hi), return the first instant in (lo, hi] that differs."""
    # Work in integer epoch seconds: tzdata transitions are whole seconds.
    lo_s = int(lo.timestamp() // 1)
    hi_s = -int(-hi.timestamp() // 1)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if utcoffset_at(zone, datetime.fromtimestamp(mid, UTC)) == base:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def previous_transition(zone: ZoneInfo, before: datetime, since: datetime) -> datetime | None:
    """Last transition T with since < T <= `before` (first instant with the offset at `before`).

    Only searches back to `since`; None if the offset is constant over [since, before].
    """
    before = before.astimezone(UTC)
    target = utcoffset_at(zone, before)
    hi = before
    since = since.astimezone(UTC)
    while hi > since:
        lo = max(hi - PROBE_STEP, since)
        lo_off = utcoffset_at(zone, lo)
        if lo_off != target:
            return _bisect(zone, lo, hi, lo_off)
        hi = lo
    return None


def is_gap(zone: ZoneInfo, wall: datetime) -> bool:
    """True when the naive `wall` time does not exist in `zone` (spring-forward gap)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def is_ambiguous(zone: ZoneInfo, wall: datetime) -> bool:
    """True when the naive `wall` time occurs twice in `zone` (fall-back overlap)."""
    if is_gap(zone, wall):
        return False
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second


def format_offset(offset: timedelta) -> str:
    """``+05:30`` style rendering (Chatham: ``+12:45``)."""
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"
