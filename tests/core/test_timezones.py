from datetime import datetime, timedelta, timezone

import pytest

from core.timezones import (
    format_offset,
    is_ambiguous,
    is_gap,
    load_zone,
    next_transition,
    previous_transition,
    require_aware,
    utcoffset_at,
)

UTC = timezone.utc


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Pacific/Chatham", "Asia/Kolkata", "Etc/GMT+5"])
def test_load_known(name):
    assert str(load_zone(name)) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "Mars/Base",
        "America",
        "../etc/passwd",
        "/etc/localtime",
        "America/../UTC",
        "a\\b",
        "UTC\0",
        "x" * 100,
        None,
        5,
    ],
)
def test_load_unknown(name):
    with pytest.raises(ValueError, match="unknown time zone"):
        load_zone(name)


def test_offsets_and_transitions():
    ny = load_zone("America/New_York")
    assert utcoffset_at(ny, datetime(2026, 1, 1, tzinfo=UTC)) == timedelta(hours=-5)
    t = next_transition(ny, datetime(2026, 1, 1, tzinfo=UTC))
    assert t == datetime(2026, 3, 8, 7, tzinfo=UTC)
    assert next_transition(ny, t) == datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert next_transition(ny, datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC)) is None
    assert previous_transition(ny, datetime(2026, 6, 1, tzinfo=UTC), since=datetime(2026, 1, 1, tzinfo=UTC)) == t
    assert next_transition(load_zone("Asia/Kolkata"), datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_gap_and_ambiguity():
    ny = load_zone("America/New_York")
    assert is_gap(ny, datetime(2026, 3, 8, 2, 30))
    assert not is_gap(ny, datetime(2026, 3, 8, 3, 0))
    assert is_ambiguous(ny, datetime(2026, 11, 1, 1, 30))
    assert not is_ambiguous(ny, datetime(2026, 11, 1, 2, 0))
    assert not is_ambiguous(ny, datetime(2026, 3, 8, 2, 30))


def test_require_aware_and_format():
    with pytest.raises(ValueError):
        require_aware(datetime(2026, 1, 1))
    plus2 = timezone(timedelta(hours=2))
    assert require_aware(datetime(2026, 1, 1, 2, tzinfo=plus2)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert format_offset(timedelta(hours=12, minutes=45)) == "+12:45"
    assert format_offset(timedelta(hours=-3)) == "-03:00"
