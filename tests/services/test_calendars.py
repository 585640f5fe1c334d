"""Calendars against the real PostgreSQL: a listed calendar's slots are recorded `skipped` by the ticker,
an edit of the calendar changes the next slots, and a calendar in use cannot be deleted."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.errors import Conflict, ValidationFailed
from models.db import make_session_factory
from services.calendars import CalendarService
from services.schemas import CalendarIn, PreviewRequest
from services.ticking import tick
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, interval


@pytest.fixture
def calendars(engine) -> CalendarService:
    return CalendarService(make_session_factory(engine))


async def test_the_ticker_skips_excluded_slots_and_follows_an_edit_of_the_calendar(
    engine, schedules, calendars, settings
):
    await calendars.create(CalendarIn(name="freeze"), ACTOR, T0)
    created = await schedules.create(interval("daily", 86400, exclude_calendars=["freeze"]), ACTOR, T0)
    assert created.exclude_calendars == ["freeze"]
    slot = created.next_run_at
    following = slot + timedelta(days=1)
    assert (await tick(engine, slot, settings)).fired == 1  # an empty calendar excludes nothing

    # An edit of the calendar changes the next slot of the schedule that lists it.
    await calendars.update("freeze", CalendarIn(name="freeze", dates=[following.date()]), ACTOR, T0)
    result = await tick(engine, following, settings)
    assert result.excluded == 1 and result.fired == 0
    recorded = await rows(engine, "SELECT status, reason, scheduled_for FROM executions ORDER BY scheduled_for")
    assert [(r.status, r.reason, r.scheduled_for) for r in recorded] == [
        ("pending", None, slot),
        ("skipped", "calendar:freeze", following),
    ]
    (schedule,) = await rows(engine, "SELECT next_run_at FROM schedules")
    assert schedule.next_run_at == following + timedelta(days=1)


async def test_a_calendar_in_use_is_not_deleted_and_unknown_names_are_refused(schedules, calendars):
    await calendars.create(CalendarIn(name="holidays", yearly=["12-25"]), ACTOR, T0)
    created = await schedules.create(interval("uses", 60, exclude_calendars=["holidays"]), ACTOR, T0)
    with pytest.raises(Conflict) as refused:
        await calendars.delete("holidays", ACTOR, T0)
    assert "uses" in str(refused.value) and str(created.id) in str(refused.value)
    assert (await calendars.get("holidays")).used_by == [created.id]
    with pytest.raises(ValidationFailed) as unknown:
        await schedules.create(interval("bad", 60, exclude_calendars=["nope"]), ACTOR, T0)
    assert [e.field for e in unknown.value.errors] == ["exclude_calendars"]
    await schedules.delete(created.id, ACTOR, T0)
    await calendars.delete("holidays", ACTOR, T0)
    assert await calendars.list() == []


async def test_the_preview_marks_excluded_slots(schedules, calendars):
    await calendars.create(CalendarIn(name="weekends", windows=["* * * * sat,sun"]), ACTOR, T0)
    request = PreviewRequest(
        schedule_type="cron",
        cron_expression="0 9 * * *",
        timezone="UTC",
        after=T0,
        count=7,
        exclude_calendars=["weekends"],
    )
    out = await schedules.preview(request, T0)
    for fire in out.fire_times:
        weekend = fire.at.weekday() >= 5
        assert fire.excluded_by == ("calendar:weekends" if weekend else None)
    assert sum(f.excluded_by is not None for f in out.fire_times) == 2
    assert date(2000, 1, 1) < out.fire_times[0].at.date()
