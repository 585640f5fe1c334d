"""A brute-force oracle for cron rules around DST transitions, and the zones it is checked on.

The oracle is deliberately slow and simple: it walks every UTC minute of a window around each
offset transition, converts it to the local wall time, asks the independent brute-force matcher of
`tests.support.cron_oracle` whether the naive wall time matches, and then applies the documented rules:

* a matching wall time that an EARLIER instant already showed is a repeat (fall back); it fires
  only when repeats are allowed (twice, or auto with hour field exactly "*");
* wall times skipped by the clock (spring forward) that match fire at the first instant after the
  gap when dst_gap=shift (merged with a regular fire at that instant), never with skip.

Assumption of the oracle: transitions happen on whole UTC minutes (true for every zone tested).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from core.rules import DstGap, DstRepeat
from tests.support.cron_oracle import Oracle

UTC = timezone.utc
MINUTE = timedelta(minutes=1)

ZONES = [
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Sao_Paulo",
]
# The property tests draw from these: every kind of rule the tz database has (whole and half hours,
# 30-minute DST, southern hemisphere, DST abolished, changes at midnight), 28 zones.
MANY_ZONES = ZONES + [
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "America/Havana",
    "America/St_Johns",
    "America/Asuncion",
    "Europe/Paris",
    "Europe/Helsinki",
    "Europe/Lisbon",
    "Europe/Moscow",
    "Asia/Tehran",
    "Asia/Jerusalem",
    "Asia/Beirut",
    "Asia/Tokyo",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Africa/Cairo",
    "Atlantic/Azores",
]


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@cache
def window_centers(zone_name: str, year: int) -> tuple[datetime, datetime]:
    """The two offset changes of `year` (hour precision), or two fixed dates for zones without DST."""
    zone = ZoneInfo(zone_name)
    t = _utc(year, 1, 1)
    changes = []
    while t.year == year:
        if t.astimezone(zone).utcoffset() != (t - timedelta(hours=1)).astimezone(zone).utcoffset():
            changes.append(t)
        t += timedelta(hours=1)
    if not changes:  # Kolkata; Sao Paulo since 2019: windows on Brazil's former DST dates
        return _utc(year, 2, 15, 3), _utc(year, 11, 1, 3)
    assert len(changes) == 2, (zone_name, year, changes)
    return changes[0], changes[1]


@cache
def _oracle(expr: str) -> Oracle:
    return Oracle(expr)


def _match(expr: str, wall: datetime) -> bool:
    return _oracle(expr).matches(wall)


def _wall(zone: ZoneInfo, instant: datetime) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


@cache
def _walk(zone_name: str, expr: str, start: datetime, end: datetime):
    """Per UTC minute m in (start, end]: (m, regular match, is a repeat, a skipped wall matches)."""
    zone = ZoneInfo(zone_name)
    offsets = set()
    t = start - timedelta(days=1)
    while t <= end:
        offsets.add(t.astimezone(zone).utcoffset())
        t += timedelta(minutes=15)
    rows = []
    m = start.replace(second=0, microsecond=0) + MINUTE  # first whole minute after start
    while m <= end:
        wall = _wall(zone, m)
        regular = _match(expr, wall)
        # A repeat: some earlier instant showed the same wall time (it had another offset).
        repeat = any(
            (wall - o).replace(tzinfo=UTC) < m and _wall(zone, (wall - o).replace(tzinfo=UTC)) == wall for o in offsets
        )
        # Skipped wall times: the clock jumped from prev_wall to wall by more than a minute.
        prev_wall = _wall(zone, m - MINUTE)
        skipped_match = False
        w = prev_wall + MINUTE
        while w < wall:
            skipped_match = skipped_match or _match(expr, w)
            w += MINUTE
        rows.append((m, regular, repeat, skipped_match))
        m += MINUTE
    return tuple(rows)


def oracle(zone_name: str, expr: str, gap: DstGap, repeat: DstRepeat, start: datetime, end: datetime):
    hour_star = expr.split()[1] == "*"
    allow_repeat = repeat is DstRepeat.TWICE or (repeat is DstRepeat.AUTO and hour_star)
    fires = []
    for m, regular, is_repeat, skipped_match in _walk(zone_name, expr, start, end):
        if (regular and (not is_repeat or allow_repeat)) or (skipped_match and gap is DstGap.SHIFT):
            fires.append(m)
    return fires
