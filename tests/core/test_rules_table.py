from datetime import datetime, timedelta, timezone

import pytest

from core.errors import FieldError
from core.rules import (
    DstGap,
    Rule,
    ScheduleType,
    fires_between,
    jitter_offset_seconds,
    next_fire,
    preview,
    validate_rule,
)

UTC = timezone.utc
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def u(*a):
    return datetime(*a, tzinfo=UTC)


CRON = ScheduleType.CRON
INTERVAL = ScheduleType.INTERVAL
ONCE = ScheduleType.ONCE
IMMEDIATE = ScheduleType.IMMEDIATE

ROWS = [
    # (id, rule, after, expected next fires)
    (
        "cron-utc",
        Rule(CRON, cron_expression="*/15 * * * *"),
        u(2026, 5, 1, 12, 7),
        [u(2026, 5, 1, 12, 15), u(2026, 5, 1, 12, 30), u(2026, 5, 1, 12, 45)],
    ),
    (
        "cron-strictly-after",
        Rule(CRON, cron_expression="0 * * * *"),
        u(2026, 5, 1, 12),
        [u(2026, 5, 1, 13), u(2026, 5, 1, 14)],
    ),
    (
        "cron-sub-second-after",
        Rule(CRON, cron_expression="0 * * * *"),
        u(2026, 5, 1, 11, 59, 59, 999999),
        [u(2026, 5, 1, 12)],
    ),
    (
        "cron-seconds",
        Rule(CRON, cron_expression="*/20 * * * * *"),
        u(2026, 5, 1, 12, 0, 5),
        [u(2026, 5, 1, 12, 0, 20), u(2026, 5, 1, 12, 0, 40), u(2026, 5, 1, 12, 1, 0)],
    ),
    (
        "cron-ny-summer",
        Rule(CRON, "America/New_York", "0 9 * * *"),
        u(2026, 5, 1, 12),
        [u(2026, 5, 1, 13), u(2026, 5, 2, 13)],
    ),
    (
        "cron-ny-winter",
        Rule(CRON, "America/New_York", "0 9 * * *"),
        u(2026, 12, 1, 0),
        [u(2026, 12, 1, 14), u(2026, 12, 2, 14)],
    ),
    (
        "cron-kolkata",
        Rule(CRON, "Asia/Kolkata", "0 9 * * 1-5"),
        u(2026, 5, 1, 12),
        [u(2026, 5, 4, 3, 30), u(2026, 5, 5, 3, 30)],
    ),
    (
        "cron-or-rule",
        Rule(CRON, cron_expression="0 0 13 * 5"),
        u(2026, 1, 1),
        [u(2026, 1, 2), u(2026, 1, 9), u(2026, 1, 13), u(2026, 1, 16)],
    ),
    ("cron-leap-day", Rule(CRON, cron_expression="0 0 29 2 *"), u(2026, 1, 1), [u(2028, 2, 29), u(2032, 2, 29)]),
    ("cron-impossible", Rule(CRON, cron_expression="0 0 30 2 *"), u(2026, 1, 1), []),
    (
        "cron-start-at",
        Rule(CRON, cron_expression="0 * * * *", start_at=u(2026, 6, 1, 0, 30)),
        u(2026, 5, 1),
        [u(2026, 6, 1, 1), u(2026, 6, 1, 2)],
    ),
    (
        "cron-start-at-inclusive",
        Rule(CRON, cron_expression="0 * * * *", start_at=u(2026, 6, 1, 1)),
        u(2026, 5, 1),
        [u(2026, 6, 1, 1)],
    ),
    (
        "cron-start-at-fraction",
        Rule(CRON, cron_expression="* * * * * *", start_at=u(2026, 6, 1, 1, 0, 0, 500)),
        u(2026, 5, 1),
        [u(2026, 6, 1, 1, 0, 1)],
    ),
    (
        "cron-end-at-inclusive",
        Rule(CRON, cron_expression="0 * * * *", end_at=u(2026, 5, 1, 14)),
        u(2026, 5, 1, 12),
        [u(2026, 5, 1, 13), u(2026, 5, 1, 14)],
    ),
    ("cron-after-end", Rule(CRON, cron_expression="0 * * * *", end_at=u(2026, 5, 1, 14)), u(2026, 5, 1, 14), []),
    (
        "interval-before-anchor",
        Rule(INTERVAL, interval_seconds=3600, start_at=u(2026, 5, 1, 12, 30)),
        u(2026, 5, 1),
        [u(2026, 5, 1, 12, 30), u(2026, 5, 1, 13, 30)],
    ),
    (
        "interval-at-anchor",
        Rule(INTERVAL, interval_seconds=3600, start_at=u(2026, 5, 1, 12, 30)),
        u(2026, 5, 1, 12, 30),
        [u(2026, 5, 1, 13, 30)],
    ),
    (
        "interval-grid",
        Rule(INTERVAL, interval_seconds=7, start_at=u(2026, 5, 1)),
        u(2026, 5, 1, 0, 1),
        [u(2026, 5, 1, 0, 1, 3), u(2026, 5, 1, 0, 1, 10)],
    ),
    (
        "interval-far",
        Rule(INTERVAL, interval_seconds=86400, start_at=u(2000, 1, 1, 3)),
        u(2026, 5, 1, 12),
        [u(2026, 5, 2, 3)],
    ),
    (
        "interval-ignores-dst",
        Rule(INTERVAL, "America/New_York", interval_seconds=3600, start_at=u(2026, 3, 8, 5)),
        u(2026, 3, 8, 5),
        [u(2026, 3, 8, 6), u(2026, 3, 8, 7), u(2026, 3, 8, 8)],
    ),
    (
        "interval-end",
        Rule(INTERVAL, interval_seconds=60, start_at=u(2026, 5, 1), end_at=u(2026, 5, 1, 0, 2)),
        u(2026, 5, 1),
        [u(2026, 5, 1, 0, 1), u(2026, 5, 1, 0, 2)],
    ),
    (
        "interval-sub-second-anchor",
        Rule(INTERVAL, interval_seconds=10, start_at=u(2026, 5, 1, 0, 0, 0, 250000)),
        u(2026, 5, 1, 0, 0, 5),
        [u(2026, 5, 1, 0, 0, 10, 250000)],
    ),
    ("once", Rule(ONCE, run_at=u(2026, 5, 2, 8)), u(2026, 5, 1), [u(2026, 5, 2, 8)]),
    ("once-past", Rule(ONCE, run_at=u(2026, 5, 2, 8)), u(2026, 5, 2, 8), []),
    ("immediate", Rule(IMMEDIATE, run_at=u(2026, 5, 1, 12)), u(2026, 5, 1, 11, 59, 59), [u(2026, 5, 1, 12)]),
    ("immediate-no-run-at", Rule(IMMEDIATE), u(2026, 5, 1), []),
]


@pytest.mark.parametrize("rule,after,expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_next_fires(rule, after, expected):
    got = fires_between(rule, after, after + timedelta(days=3650), len(expected) + 1)
    assert got[: len(expected)] == expected
    if len(got) > len(expected):
        assert rule.schedule_type in (CRON, INTERVAL)  # recurring: more fires follow
    first = next_fire(rule, after)
    assert first == (expected[0] if expected else None)
    for f in got:
        assert f.tzinfo is UTC


def test_fires_between_bounds_and_limit():
    rule = Rule(CRON, cron_expression="0 * * * *")
    assert fires_between(rule, u(2026, 5, 1, 0), u(2026, 5, 1, 3), 10) == [
        u(2026, 5, 1, 1),
        u(2026, 5, 1, 2),
        u(2026, 5, 1, 3),
    ]
    assert fires_between(rule, u(2026, 5, 1, 0), u(2026, 5, 1, 3), 2) == [u(2026, 5, 1, 1), u(2026, 5, 1, 2)]
    assert fires_between(rule, u(2026, 5, 1, 0), u(2026, 5, 1, 3), 0) == []


def test_naive_inputs_rejected():
    with pytest.raises(ValueError):
        next_fire(Rule(CRON, cron_expression="* * * * *"), datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        next_fire(Rule(ONCE, run_at=datetime(2026, 1, 1)), u(2025, 1, 1))


def test_invalid_rule_raises():
    with pytest.raises(ValueError):
        next_fire(Rule(CRON, cron_expression="nope"), NOW)
    with pytest.raises(ValueError):
        next_fire(Rule(CRON, "Mars/Base", "* * * * *"), NOW)
    with pytest.raises(ValueError):
        next_fire(Rule(INTERVAL, interval_seconds=60), NOW)


def test_preview_local_time():
    p = preview(Rule(CRON, "Europe/Berlin", "0 9 * * *"), u(2026, 5, 1, 12), 2)
    assert [x.at_utc for x in p] == [u(2026, 5, 2, 7), u(2026, 5, 3, 7)]
    assert p[0].local_time.hour == 9 and str(p[0].local_time.tzinfo) == "Europe/Berlin"
    assert p[0].note is None
    assert preview(Rule(ONCE, run_at=u(2026, 5, 2)), NOW, 5)[0].note is None


def test_jitter_deterministic_and_bounded():
    a = jitter_offset_seconds("sched-1", u(2026, 5, 1, 12), 30)
    assert a == jitter_offset_seconds("sched-1", u(2026, 5, 1, 12), 30)
    assert 0 <= a <= 30
    values = {jitter_offset_seconds(f"s{i}", u(2026, 5, 1, 12), 30) for i in range(50)}
    assert len(values) > 40  # spreads
    assert jitter_offset_seconds("x", u(2026, 5, 1, 12), 0) == 0.0
    plus2 = timezone(timedelta(hours=2))
    assert jitter_offset_seconds("x", u(2026, 5, 1, 12), 30) == jitter_offset_seconds(
        "x", datetime(2026, 5, 1, 14, tzinfo=plus2), 30
    )


# ---------------------------------------------------------------- validation

VALID = [
    Rule(CRON, "America/New_York", "0 9 * * 1-5"),
    Rule(CRON, cron_expression="0 0 29 2 *"),  # fires within 2 years from NOW (2028-02-29)
    Rule(INTERVAL, interval_seconds=60, start_at=NOW),
    Rule(INTERVAL, interval_seconds=60, start_at=NOW, end_at=NOW + timedelta(minutes=5)),
    Rule(ONCE, run_at=NOW + timedelta(hours=1)),
    Rule(ONCE, run_at=NOW),
    Rule(IMMEDIATE, run_at=NOW),
    Rule(IMMEDIATE),
    Rule(CRON, cron_expression="@daily", dst_gap=DstGap.SKIP),
]


@pytest.mark.parametrize("rule", VALID)
def test_valid_rules(rule):
    assert validate_rule(rule, NOW, lookahead_days=1000) == []


INVALID = [
    ("bad-type", Rule("weekly"), {"schedule_type"}),  # type: ignore[arg-type]
    ("cron-missing", Rule(CRON), {"cron_expression"}),
    ("cron-garbage", Rule(CRON, cron_expression="every day"), {"cron_expression"}),
    ("cron-never", Rule(CRON, cron_expression="0 0 30 2 *"), {"cron_expression"}),
    ("cron-too-rare", Rule(CRON, cron_expression="0 0 29 2 *"), {"cron_expression"}),  # lookahead 366
    ("bad-zone", Rule(CRON, "Mars/Base", "* * * * *"), {"timezone"}),
    (
        "bad-dst",
        Rule(CRON, cron_expression="* * * * *", dst_gap="sometimes", dst_repeat="never"),
        {"dst_gap", "dst_repeat"},
    ),  # type: ignore[arg-type]
    ("interval-missing", Rule(INTERVAL, start_at=NOW), {"interval_seconds"}),
    ("interval-zero", Rule(INTERVAL, interval_seconds=0, start_at=NOW), {"interval_seconds"}),
    ("interval-negative", Rule(INTERVAL, interval_seconds=-5, start_at=NOW), {"interval_seconds"}),
    ("interval-float", Rule(INTERVAL, interval_seconds=1.5, start_at=NOW), {"interval_seconds"}),  # type: ignore[arg-type]
    ("interval-bool", Rule(INTERVAL, interval_seconds=True, start_at=NOW), {"interval_seconds"}),
    ("interval-too-long", Rule(INTERVAL, interval_seconds=367 * 86400, start_at=NOW), {"interval_seconds"}),
    ("interval-no-anchor", Rule(INTERVAL, interval_seconds=60), {"start_at"}),
    ("once-missing", Rule(ONCE), {"run_at"}),
    ("once-past", Rule(ONCE, run_at=NOW - timedelta(seconds=1)), {"run_at"}),
    ("once-too-far", Rule(ONCE, run_at=NOW + timedelta(days=367)), {"run_at"}),
    ("once-naive", Rule(ONCE, run_at=datetime(2026, 6, 1)), {"run_at"}),
    (
        "cron-on-interval",
        Rule(INTERVAL, interval_seconds=60, start_at=NOW, cron_expression="* * * * *"),
        {"cron_expression"},
    ),
    ("interval-on-cron", Rule(CRON, cron_expression="* * * * *", interval_seconds=60), {"interval_seconds"}),
    ("run-at-on-cron", Rule(CRON, cron_expression="* * * * *", run_at=NOW), {"run_at"}),
    (
        "window-on-once",
        Rule(ONCE, run_at=NOW + timedelta(hours=1), start_at=NOW, end_at=NOW + timedelta(days=1)),
        {"start_at", "end_at"},
    ),
    ("end-before-start", Rule(CRON, cron_expression="* * * * *", start_at=NOW, end_at=NOW), {"end_at"}),
    ("end-no-fire", Rule(CRON, cron_expression="0 9 * * *", start_at=NOW, end_at=NOW + timedelta(hours=1)), {"end_at"}),
    ("end-in-past", Rule(CRON, cron_expression="* * * * *", end_at=NOW - timedelta(days=1)), {"end_at"}),
    ("naive-start", Rule(CRON, cron_expression="* * * * *", start_at=datetime(2026, 6, 1)), {"start_at"}),
    (
        "many",
        Rule(CRON, "Nowhere/Zone", None, interval_seconds=5, run_at=NOW),
        {"timezone", "cron_expression", "interval_seconds", "run_at"},
    ),
]


@pytest.mark.parametrize("rule,fields", [r[1:] for r in INVALID], ids=[r[0] for r in INVALID])
def test_invalid_rules(rule, fields):
    errors = validate_rule(rule, NOW, lookahead_days=366)
    assert {e.field for e in errors} == fields
    for e in errors:
        assert isinstance(e, FieldError) and e.message


def test_validation_messages():
    [err] = validate_rule(Rule(INTERVAL, interval_seconds=60, start_at=NOW, cron_expression="* * * * *"), NOW, 30)
    assert err.message == "only valid for cron schedules"
    [err] = validate_rule(Rule(CRON, cron_expression="0 0 30 2 *"), NOW, 30)
    assert "never fires" in err.message
    [err] = validate_rule(Rule(CRON, cron_expression="61 * * * *"), NOW, 30)
    assert err.message == "minute field: 61 is outside 0-59"
    [err] = validate_rule(Rule(CRON, "Mars/Base", "* * * * *"), NOW, 30)
    assert "unknown time zone" in err.message


def test_validate_requires_aware_now():
    with pytest.raises(ValueError):
        validate_rule(Rule(CRON, cron_expression="* * * * *"), datetime(2026, 1, 1), 30)
