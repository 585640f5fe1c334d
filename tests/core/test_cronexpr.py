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
        ("H H(0-5) * * *", "h h(0-5) * * *", False, False),
        ("0 0 ? * MON", "0 0 ? * mon", False, False),
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
        ("0 0 1 1 * 2030", "day-of-week field: 2030 is outside 0-6"),  # 6 fields: seconds must be FIRST
        ("@reboot", "unsupported macro"),
        ("@every 5m", "unsupported macro"),
        ("60 * * * *", "minute field: 60 is outside 0-59"),
        ("* 24 * * *", "hour field: 24 is outside 0-23"),
        ("* * 32 * *", "day-of-month field: 32 is outside 1-31"),
        ("* * 0 * *", "day-of-month field: 0 is outside 1-31"),
        ("* * * 13 *", "month field: 13 is outside 1-12"),
        ("* * * * 8", "day-of-week field: 8 is outside 0-6"),
        ("60 * * * * *", "second field: 60 is outside 0-59"),
        ("*/0 * * * *", "minute field: step '0' must be a whole number of at least 1"),
        ("*/60 * * * *", "minute field: step 60 is larger than the field's span (0-59)"),
        ("0 */24 * * *", "hour field: step 24 is larger"),
        ("0 0 */31 * *", "day-of-month field: step 31 is larger"),
        ("0 0 * */12 *", "month field: step 12 is larger"),
        ("0 0 * * */7", "day-of-week field: step 7 is larger"),
        ("0 0 L-31 * *", "day-of-month field: 31 in L-n is outside 1-30"),
        ("0 0 32W * *", "day-of-month field: 32 in nW is outside 1-31"),
        ("0 0 * * 5#6", "day-of-week field: 6 in d#n is outside 1-5"),
        ("0 0 * * L", "day-of-week field: 'L' alone is ambiguous"),
        ("0 0 * * funday", "day-of-week field: 'funday' is not a number or a name"),
        ("H(9-2) * * * *", "minute field: H(9-2) needs a range in ascending order"),
        ("R * * * *", "minute field: 'r' is not a number or a name"),
        ("a b c d e", "minute field: 'a' is not a number or a name"),
        ("? * * * *", "minute field: '?' is not a value"),
        ("1,,2 * * * *", "minute field: '' is not a value"),
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
