"""Snooze: a pause with `until`, ended by the ticker's pass, against the real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.errors import Conflict, ValidationFailed
from services.events import RecordingEvents
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, interval
from ticker.tick import run_tick


async def _nothing_enqueued(dispatch):
    return []


async def _pass(engine, now, settings, events=None):
    return await run_tick(engine, now, settings, _nothing_enqueued, events or RecordingEvents())


async def test_a_snoozed_schedule_resumes_by_itself_at_until_and_its_slots_follow_the_misfire_policy(
    engine, schedules, settings
):
    created = await schedules.create(interval("nap", 60, misfire_grace_seconds=30, catchup="latest"), ACTOR, T0)
    until = T0 + timedelta(minutes=10)
    paused = await schedules.pause(created.id, ACTOR, T0, "deploy", until=until)
    assert paused.status == "paused" and paused.paused_until == until

    before = await _pass(engine, until - timedelta(seconds=1), settings)
    assert before.snoozes_ended == 0
    (still,) = await rows(engine, "SELECT status FROM schedules")
    assert still.status == "paused"

    events = RecordingEvents()
    report = await _pass(engine, until, settings, events)

    assert report.snoozes_ended == 1
    (row,) = await rows(engine, "SELECT status, paused_until, paused_at, next_run_at FROM schedules")
    assert row.status == "active" and row.paused_until is None and row.paused_at is None
    assert row.next_run_at > until
    slots = await rows(engine, "SELECT status, reason FROM executions WHERE trigger_type = 'scheduled'")
    assert len(slots) == 10 and sum(s.status == "missed" and s.reason == "paused" for s in slots) == 9
    (audit,) = await rows(engine, "SELECT actor, reason FROM audit_log WHERE action = 'schedule.resumed'")
    assert audit.actor == "scheduler" and until.isoformat() in audit.reason
    assert [s for s, _ in events.emitted if s.endswith("schedule.resumed")] == ["evt.scheduler.schedule.resumed"]


@pytest.mark.parametrize(
    ("offset", "naive", "message"),
    [(timedelta(0), False, "future"), (-timedelta(hours=1), False, "future"), (timedelta(hours=1), True, "offset")],
)
async def test_a_snooze_that_is_not_a_future_instant_is_refused_and_changes_nothing(
    engine, schedules, offset, naive, message
):
    created = await schedules.create(interval("bad", 60), ACTOR, T0)
    until = T0 + offset
    if naive:
        until = until.replace(tzinfo=None)

    with pytest.raises(ValidationFailed) as refused:
        await schedules.pause(created.id, ACTOR, T0, until=until)

    (error,) = refused.value.errors
    assert error.field == "until" and message in error.message
    (row,) = await rows(engine, "SELECT status, paused_until, version FROM schedules")
    assert (row.status, row.paused_until, row.version) == ("active", None, created.version)
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'schedule.paused'") == []


async def test_a_new_until_replaces_the_old_one_and_the_same_one_twice_is_one_change(engine, schedules):
    created = await schedules.create(interval("again", 60), ACTOR, T0)
    first, later = T0 + timedelta(hours=1), T0 + timedelta(hours=2)

    await schedules.pause(created.id, ACTOR, T0, until=first)
    await schedules.pause(created.id, ACTOR, T0, until=first)
    moved = await schedules.pause(created.id, ACTOR, T0, "longer", until=later)
    forever = await schedules.pause(created.id, ACTOR, T0)

    assert moved.paused_until == later and moved.status_reason == "longer"
    assert forever.status == "paused" and forever.paused_until is None
    audits = await rows(
        engine, "SELECT after->>'paused_until' AS until FROM audit_log WHERE action = 'schedule.paused' ORDER BY id"
    )
    assert len(audits) == 3 and audits[-1].until is None


async def test_a_snooze_resumed_by_hand_is_over_and_the_ticker_leaves_the_schedule_alone(engine, schedules, settings):
    created = await schedules.create(interval("woken", 60), ACTOR, T0)
    until = T0 + timedelta(minutes=5)
    await schedules.pause(created.id, ACTOR, T0, until=until)
    resumed = await schedules.resume(created.id, ACTOR, T0 + timedelta(minutes=1))
    assert resumed.paused_until is None
    await schedules.pause(created.id, ACTOR, T0 + timedelta(minutes=2))

    report = await _pass(engine, until + timedelta(seconds=1), settings)

    assert report.snoozes_ended == 0
    (row,) = await rows(engine, "SELECT status FROM schedules")
    assert row.status == "paused"


async def test_only_an_active_or_paused_schedule_can_be_snoozed(engine, schedules):
    created = await schedules.create(interval("done", 60), ACTOR, T0)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE schedules SET status = 'completed'"))

    with pytest.raises(Conflict) as refused:
        await schedules.pause(created.id, ACTOR, T0, until=T0 + timedelta(hours=1))

    assert refused.value.errors[0].field == "status"
