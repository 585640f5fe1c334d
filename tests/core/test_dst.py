"""DST behaviour of cron rules, checked against the brute-force oracle of tests/support/dst_oracle.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.rules import DstGap, DstRepeat, Rule, ScheduleType, fires_between, next_fire, preview
from tests.support.dst_oracle import ZONES, oracle, window_centers

UTC = timezone.utc
HALF_WINDOW = timedelta(hours=10)

CRONS = ["0 * * * *", "30 1 * * *", "30 2 * * *", "*/15 * * * *"]
YEARS = [2026, 2027]
OPTIONS = [
    pytest.param(DstGap.SHIFT, DstRepeat.AUTO, id="default"),
    pytest.param(DstGap.SKIP, DstRepeat.AUTO, id="skip"),
    pytest.param(DstGap.SHIFT, DstRepeat.ONCE, id="once"),
    pytest.param(DstGap.SHIFT, DstRepeat.TWICE, id="twice"),
]


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("gap,repeat", OPTIONS)
@pytest.mark.parametrize("expr", CRONS)
@pytest.mark.parametrize("which", [0, 1], ids=["first-change", "second-change"])
@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("zone_name", ZONES)
def test_matches_oracle_around_transitions(zone_name, year, which, expr, gap, repeat):
    center = window_centers(zone_name, year)[which]
    start, end = center - HALF_WINDOW, center + HALF_WINDOW
    rule = Rule(ScheduleType.CRON, zone_name, expr, dst_gap=gap, dst_repeat=repeat)
    expected = oracle(zone_name, expr, gap, repeat, start, end)
    assert expected or gap is DstGap.SKIP, "window should contain fires"
    assert fires_between(rule, start, end, 10_000) == expected
    # next_fire from arbitrary (non-fire, odd-second) starting points inside the window.
    probe = start + timedelta(seconds=17)
    while probe < end:
        want = next((f for f in expected if f > probe), None)
        if want is not None:
            assert next_fire(rule, probe) == want, probe
        probe += timedelta(minutes=23)


# ---------------------------------------------------------------- famous hand-written cases

NY = "America/New_York"


@pytest.mark.parametrize(
    "zone,expr,gap,repeat,after,expected",
    [
        # 02:30 does not exist on 2026-03-08 in New York: shifted to 03:00 EDT = 07:00Z.
        (
            NY,
            "30 2 * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 3, 7, 12),
            [_utc(2026, 3, 8, 7), _utc(2026, 3, 9, 6, 30)],
        ),
        (NY, "30 2 * * *", DstGap.SKIP, DstRepeat.AUTO, _utc(2026, 3, 7, 12), [_utc(2026, 3, 9, 6, 30)]),
        # 01:30 occurs twice on 2026-11-01: 05:30Z (EDT) and 06:30Z (EST).
        (
            NY,
            "30 1 * * *",
            DstGap.SHIFT,
            DstRepeat.ONCE,
            _utc(2026, 10, 31, 12),
            [_utc(2026, 11, 1, 5, 30), _utc(2026, 11, 2, 6, 30)],
        ),
        (
            NY,
            "30 1 * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 10, 31, 12),
            [_utc(2026, 11, 1, 5, 30), _utc(2026, 11, 2, 6, 30)],
        ),
        (
            NY,
            "30 1 * * *",
            DstGap.SHIFT,
            DstRepeat.TWICE,
            _utc(2026, 10, 31, 12),
            [_utc(2026, 11, 1, 5, 30), _utc(2026, 11, 1, 6, 30)],
        ),
        # Hourly through spring forward: 02:00 is shifted onto 03:00 EDT and merged with it.
        (
            NY,
            "0 * * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 3, 8, 5, 30),
            [_utc(2026, 3, 8, 6), _utc(2026, 3, 8, 7), _utc(2026, 3, 8, 8)],
        ),
        # Hourly through fall back (auto = twice for hour "*"): 01:00 EDT, 01:00 EST, 02:00 EST.
        (
            NY,
            "0 * * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 11, 1, 4, 30),
            [_utc(2026, 11, 1, 5), _utc(2026, 11, 1, 6), _utc(2026, 11, 1, 7)],
        ),
        (
            NY,
            "0 * * * *",
            DstGap.SHIFT,
            DstRepeat.ONCE,
            _utc(2026, 11, 1, 4, 30),
            [_utc(2026, 11, 1, 5), _utc(2026, 11, 1, 7)],
        ),
        # Chatham: +12:45 -> +13:45 at 02:45 local on 2026-09-27; 03:00 is shifted to 03:45.
        (
            "Pacific/Chatham",
            "0 * * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 9, 26, 13),
            [_utc(2026, 9, 26, 13, 15), _utc(2026, 9, 26, 14), _utc(2026, 9, 26, 14, 15)],
        ),
        (
            "Pacific/Chatham",
            "0 * * * *",
            DstGap.SKIP,
            DstRepeat.AUTO,
            _utc(2026, 9, 26, 13),
            [_utc(2026, 9, 26, 13, 15), _utc(2026, 9, 26, 14, 15)],
        ),
        # Lord Howe: half-hour DST. 02:15 does not exist on 2026-10-04 (02:00 +10:30 -> 02:30 +11).
        (
            "Australia/Lord_Howe",
            "15 2 * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 10, 3, 0),
            [_utc(2026, 10, 3, 15, 30), _utc(2026, 10, 4, 15, 15)],
        ),
        # Lord Howe fall back 2026-04-05: 01:45 at +11 (14:45Z) and at +10:30 (15:15Z).
        (
            "Australia/Lord_Howe",
            "45 1 * * *",
            DstGap.SHIFT,
            DstRepeat.TWICE,
            _utc(2026, 4, 4, 0),
            [_utc(2026, 4, 4, 14, 45), _utc(2026, 4, 4, 15, 15)],
        ),
        # Sao Paulo has no DST since 2019: a plain -03:00 offset all year.
        (
            "America/Sao_Paulo",
            "30 2 * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 11, 1, 0),
            [_utc(2026, 11, 1, 5, 30), _utc(2026, 11, 2, 5, 30)],
        ),
        # Kolkata +05:30.
        (
            "Asia/Kolkata",
            "0 9 * * *",
            DstGap.SHIFT,
            DstRepeat.AUTO,
            _utc(2026, 3, 8, 0),
            [_utc(2026, 3, 8, 3, 30), _utc(2026, 3, 9, 3, 30)],
        ),
    ],
)
def test_famous_cases(zone, expr, gap, repeat, after, expected):
    rule = Rule(ScheduleType.CRON, zone, expr, dst_gap=gap, dst_repeat=repeat)
    assert fires_between(rule, after, expected[-1], 100) == expected


def test_shifted_fire_when_starting_exactly_before_the_transition():
    rule = Rule(ScheduleType.CRON, NY, "30 2 * * *")
    assert next_fire(rule, _utc(2026, 3, 8, 6, 59, 59)) == _utc(2026, 3, 8, 7)
    assert next_fire(rule, _utc(2026, 3, 8, 7)) == _utc(2026, 3, 9, 6, 30)


def test_starting_inside_the_repeated_hour():
    once = Rule(ScheduleType.CRON, NY, "*/15 * * * *", dst_repeat=DstRepeat.ONCE)
    twice = Rule(ScheduleType.CRON, NY, "*/15 * * * *", dst_repeat=DstRepeat.TWICE)
    first_0145 = _utc(2026, 11, 1, 5, 45)  # 01:45 EDT
    assert next_fire(once, first_0145) == _utc(2026, 11, 1, 7)  # 02:00 EST
    assert next_fire(twice, first_0145) == _utc(2026, 11, 1, 6)  # 01:00 EST
    inside_second = _utc(2026, 11, 1, 6, 10)  # 01:10 EST
    assert next_fire(once, inside_second) == _utc(2026, 11, 1, 7)
    assert next_fire(twice, inside_second) == _utc(2026, 11, 1, 6, 15)


def test_preview_notes():
    gap = preview(Rule(ScheduleType.CRON, NY, "30 2 * * *"), _utc(2027, 3, 13, 12), 2)
    assert gap[0].at_utc == _utc(2027, 3, 14, 7)
    assert gap[0].note == "02:30 does not exist on 2027-03-14 (DST gap): shifted to 03:00 EDT"
    assert gap[0].local_time.utcoffset() == timedelta(hours=-4)
    assert gap[1].note is None

    twice = preview(Rule(ScheduleType.CRON, NY, "30 1 * * *", dst_repeat=DstRepeat.TWICE), _utc(2026, 10, 31, 12), 2)
    assert [p.note for p in twice] == [
        "01:30 occurs twice (DST ends): first occurrence",
        "01:30 occurs twice (DST ends): second occurrence",
    ]
    once = preview(Rule(ScheduleType.CRON, NY, "30 1 * * *"), _utc(2026, 10, 31, 12), 1)
    assert once[0].note == "01:30 occurs twice (DST ends): first occurrence only"

    hourly = preview(Rule(ScheduleType.CRON, NY, "0 * * * *"), _utc(2026, 3, 8, 6, 30), 1)
    assert hourly[0].note is not None and "merged" in hourly[0].note
