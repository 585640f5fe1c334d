"""docs/cron.md is true: every example of its dialect table fires as listed, every refusal reads as listed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.cronexpr import next_wall_time, parse_cron

DOC = (Path(__file__).parents[2] / "docs" / "cron.md").read_text()
START = datetime(2026, 1, 31, 20)
ROW = re.compile(r"^\| [^|]+ \| `([^`]+)` \| [^|]+ \| ([A-Z][a-z]{2} \d\d-\d\d [\d:]+(?:, [^|]+)?) \|$", re.M)
REFUSAL = re.compile(r"^\| `([^`]+)` \| ([^|]+) \|$", re.M)


def _fires(expr: str, count: int) -> list[str]:
    spec = parse_cron(expr, "example")
    fmt = "%a %m-%d %H:%M:%S" if spec.has_seconds else "%a %m-%d %H:%M"
    out, t = [], START
    for _ in range(count):
        found = next_wall_time(spec, t)
        assert found is not None
        out.append(found.strftime(fmt))
        t = found + timedelta(seconds=1)
    return out


EXAMPLES = ROW.findall(DOC)
REFUSALS = REFUSAL.findall(DOC)


def test_the_tables_are_read():
    assert len(EXAMPLES) >= 25 and len(REFUSALS) >= 10


@pytest.mark.parametrize("expr,listed", EXAMPLES, ids=[e for e, _ in EXAMPLES])
def test_every_example_fires_as_listed(expr, listed):
    assert _fires(expr, 3) == listed.split(", ")


@pytest.mark.parametrize("expr,message", REFUSALS, ids=[e for e, _ in REFUSALS])
def test_every_refusal_reads_as_listed(expr, message):
    with pytest.raises(ValueError) as info:
        parse_cron(expr)
    assert str(info.value) == message.strip()


@pytest.mark.parametrize(
    "expr,start,expected",
    [
        # The cases of the issue: wrap-around ranges with steps fire at the hours they name.
        ("0 23-3/2 * * *", datetime(2026, 3, 1), ["01:00", "03:00", "23:00", "01:00"]),
        ("0 20-5/5 * * *", datetime(2026, 3, 1), ["01:00", "20:00", "01:00", "20:00"]),
    ],
)
def test_wrapping_steps(expr, start, expected):
    spec, t, got = parse_cron(expr), start, []
    for _ in expected:
        t = next_wall_time(spec, t)
        got.append(t.strftime("%H:%M"))
        t += timedelta(seconds=1)
    assert got == expected


def test_nearest_weekday_never_leaves_the_month():
    spec = parse_cron("0 0 30W * *")
    fires, t = [], datetime(2026, 1, 1)
    for _ in range(12):
        t = next_wall_time(spec, t)
        fires.append(t.date())
        t += timedelta(days=1)
    assert all(f.month != 2 for f in fires[:11])
    assert next_wall_time(spec, datetime(2026, 2, 1)).date() == datetime(2026, 3, 30).date()


def test_hashed_values_depend_on_the_key_and_stay_within_their_range():
    resolved = {parse_cron("H H(0-5) * * *", str(n)).resolved for n in range(200)}
    assert len(resolved) > 50  # a fleet spreads
    for text in resolved:
        minute, hour = map(int, text.split()[:2])
        assert 0 <= minute <= 59 and 0 <= hour <= 5
    assert parse_cron("H H * * *", "a").resolved == parse_cron("H H * * *", "a").resolved
    assert parse_cron("0 9 * * *", "a") is parse_cron("0 9 * * *", "b")  # no H: the key is ignored
