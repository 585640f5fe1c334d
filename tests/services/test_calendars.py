"""Calendars against the real PostgreSQL: a listed calendar's slots are recorded `skipped` by the ticker,
an edit of the calendar changes the next slots, and a calendar in use cannot be deleted."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.errors import Conflict, ValidationFailed
from models.db import make_session_factory
from services.calendars import CalendarService
from services.schemas import CalendarIn, PreviewRequest, ScheduleUpdate
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


async def test_late_slots_an_edit_or_a_resume_records_follow_the_calendars_too(engine, schedules, calendars):
    await calendars.create(CalendarIn(name="freeze"), ACTOR, T0)
    created = await schedules.create(
        interval("late", 86400, misfire_grace_seconds=3600, exclude_calendars=["freeze"]), ACTOR, T0
    )
    slot = created.next_run_at
    await calendars.update("freeze", CalendarIn(name="freeze", dates=[slot.date()]), ACTOR, T0)
    # No ticker ran: the edit of the rule records the old rule's late slot, and the calendar skips it.
    await schedules.update(created.id, ScheduleUpdate(interval_seconds=43200), ACTOR, slot + timedelta(minutes=1))
    (row,) = await rows(engine, "SELECT status, reason, scheduled_for, finished_at FROM executions")
    assert (row.status, row.reason, row.scheduled_for) == ("skipped", "calendar:freeze", slot)
    assert row.finished_at == slot + timedelta(minutes=1)

    paused = await schedules.pause(created.id, ACTOR, slot + timedelta(minutes=2))
    next_slot = paused.next_run_at
    await calendars.update("freeze", CalendarIn(name="freeze", dates=[next_slot.date()]), ACTOR, T0)
    await schedules.resume(created.id, ACTOR, next_slot + timedelta(minutes=1))
    resumed = await rows(engine, "SELECT status, reason FROM executions WHERE scheduled_for = :at", at=next_slot)
    assert [(r.status, r.reason) for r in resumed] == [("skipped", "calendar:freeze")]
