from datetime import datetime

import pytest

from core.cronexpr import matches, next_wall_time, parse_cron


@pytest.mark.parametrize(
    "expr,normalized,has_seconds,hour_star",
    [
        ("*/15 * * * *", "*/15 * * * *", False, True),
        ("0 9 * * 1-5", "0 9 * * 1-5", False, False),
        ("  0   9 * * MON-FRI ", "0 9 * * mon-fri", False, False),
        ("30 0 9 * * *", "30 0 9 * * *", True, False),
        ("*/10 * * * * *", "*/10 * * * * *", True, True),
        ("0 0 13 * 5", "0 0 13 * 5", False, False),
        ("0 0 L * *", "0 0 l * *", False, False),
        ("0 0 * * 5#2", "0 0 * * 5#2", False, False),
        ("0 0 * jan,jul sun", "0 0 * jan,jul sun", False, False),
        ("@yearly", "0 0 1 1 *", False, False),
        ("@annually", "0 0 1 1 *", False, False),
        ("@monthly", "0 0 1 * *", False, False),
        ("@weekly", "0 0 * * 0", False, False),
        ("@daily", "0 0 * * *", False, False),
        ("@midnight", "0 0 * * *", False, False),
        ("@hourly", "0 * * * *", False, True),
        ("@HOURLY", "0 * * * *", False, True),
        ("0 0 30 2 *", "0 0 30 2 *", False, False),  # valid syntax, never fires
    ],
)
def test_valid(expr, normalized, has_seconds, hour_star):
    spec = parse_cron(expr)
    assert spec.expr == normalized
    assert spec.has_seconds is has_seconds
    assert spec.hour_is_wildcard is hour_star


@pytest.mark.parametrize(
    "expr,fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("garbage", "5 fields"),
        ("* * * *", "5 fields"),
        ("* * * * * * *", "5 fields"),
        ("0 0 1 1 * 2030", "not acceptable"),  # 6 fields: seconds must be FIRST; 2030 is no weekday
        ("@reboot", "unsupported macro"),
        ("@every 5m", "unsupported macro"),
        ("60 * * * *", "out of range"),
        ("* 24 * * *", "out of range"),
        ("* * 32 * *", "out of range"),
        ("* * * 13 *", "out of range"),
        ("* * * * 8", "out of range"),
        ("*/0 * * * *", "not acceptable"),
        ("H * * * *", "not supported"),
        ("R * * * *", "not supported"),
        ("a b c d e", "invalid cron expression"),
        ("? * * * *", "invalid cron expression"),
        ("x" * 300, "longer than"),
    ],
)
def test_invalid(expr, fragment):
    with pytest.raises(ValueError) as info:
        parse_cron(expr)
    assert fragment in str(info.value)


def test_non_string_rejected():
    with pytest.raises(ValueError):
        parse_cron(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "expr,start,expected",
    [
        # at-or-after semantics
        ("0 12 * * *", datetime(2026, 3, 1, 12, 0, 0), datetime(2026, 3, 1, 12, 0, 0)),
        ("0 12 * * *", datetime(2026, 3, 1, 12, 0, 1), datetime(2026, 3, 2, 12, 0, 0)),
        ("0 12 * * *", datetime(2026, 3, 1, 12, 0, 0, 1), datetime(2026, 3, 2, 12, 0, 0)),
        ("*/15 * * * *", datetime(2026, 3, 1, 10, 7, 30), datetime(2026, 3, 1, 10, 15)),
        # seconds field first
        ("30 0 9 * * *", datetime(2026, 3, 1, 9, 0, 0), datetime(2026, 3, 1, 9, 0, 30)),
        ("*/20 * * * * *", datetime(2026, 3, 1, 9, 0, 41), datetime(2026, 3, 1, 9, 1, 0)),
        # OR rule: the 13th (Tue 2026-01-13) AND Fridays (2026-01-02, 2026-01-09)
        ("0 0 13 * 5", datetime(2026, 1, 1), datetime(2026, 1, 2)),
        ("0 0 13 * 5", datetime(2026, 1, 2, 0, 0, 1), datetime(2026, 1, 9)),
        ("0 0 13 * 5", datetime(2026, 1, 9, 0, 0, 1), datetime(2026, 1, 13)),
        ("0 0 13 * 5", datetime(2026, 1, 13, 0, 0, 1), datetime(2026, 1, 16)),
        # leap day and impossible dates
        ("0 0 29 2 *", datetime(2026, 3, 1), datetime(2028, 2, 29)),
        ("0 0 30 2 *", datetime(2026, 3, 1), None),
        ("0 0 31 4 *", datetime(2026, 3, 1), None),
        ("@yearly", datetime(2026, 3, 1), datetime(2027, 1, 1)),
    ],
)
def test_next_wall_time(expr, start, expected):
    assert next_wall_time(parse_cron(expr), start) == expected


def test_next_wall_time_rejects_aware():
    from datetime import timezone

    with pytest.raises(ValueError):
        next_wall_time(parse_cron("* * * * *"), datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_matches():
    spec = parse_cron("0 0 13 * 5")
    assert matches(spec, datetime(2026, 2, 13))  # Friday the 13th
    assert matches(spec, datetime(2026, 3, 13))
    assert matches(spec, datetime(2026, 3, 6))  # a Friday
    assert not matches(spec, datetime(2026, 3, 7))
    assert not matches(spec, datetime(2026, 3, 6, 0, 0, 1))
