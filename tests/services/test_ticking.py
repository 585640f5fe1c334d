"""The ticker's transaction against the real PostgreSQL: slots, misfires, completion, concurrency."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from core.rules import Rule, ScheduleType, next_fire
from models.db import make_engine
from services.outbox import next_due_at, sweep
from services.schemas import ScheduleCreate
from services.schemas import ScheduleUpdate as ScheduleUpdateBody
from services.ticking import tick
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, interval


async def test_due_schedule_gets_one_pending_row_and_advances(engine, schedules, settings):
    created = await schedules.create(interval("a", 60), ACTOR, T0)
    due = created.next_run_at
    lead = timedelta(milliseconds=settings.DISPATCH_LEAD_MS)
    assert (await tick(engine, due - lead - timedelta(seconds=1), settings)).claimed == 0
    result = await tick(engine, due, settings)
    assert result.claimed == 1 and result.fired == 1 and len(result.dispatch) == 1
    again = await tick(engine, due, settings)  # planning twice at one instant adds nothing
    assert again.claimed == 0 and again.dispatch == []
    (row,) = await rows(engine, "SELECT status, scheduled_for, enqueued_at FROM executions")
    assert row.status == "pending" and row.scheduled_for == due and row.enqueued_at == due
    (schedule,) = await rows(engine, "SELECT next_run_at, run_count, last_run_at FROM schedules")
    assert schedule.next_run_at == due + timedelta(seconds=60)
    assert (schedule.run_count, schedule.last_run_at) == (1, due)


async def test_outage_follows_misfire_policy_and_records_reasons(engine, schedules, settings):
    created = await schedules.create(interval("late", 60, misfire_grace_seconds=90, catchup="latest"), ACTOR, T0)
    now = created.next_run_at + timedelta(minutes=10, seconds=30)
    result = await tick(engine, now, settings)
    statuses = await rows(engine, "SELECT status, reason, scheduled_for FROM executions ORDER BY scheduled_for")
    fired = [r for r in statuses if r.status == "pending"]
    missed = [r for r in statuses if r.status == "missed"]
    # 11 slots due; the last one (30 s late) and the one before (90 s late) are within the grace.
    assert len(statuses) == 11 and len(fired) == 2 and result.fired == 2
    assert {r.reason for r in missed} == {"missed"} and result.missed == 9
    assert [e["reason"] for e in result.missed_events] == ["missed"] * 9
    (schedule,) = await rows(engine, "SELECT next_run_at FROM schedules")
    assert schedule.next_run_at > now


async def test_once_and_max_runs_complete(engine, schedules, settings):
    once = await schedules.create(
        ScheduleCreate(
            name="once", schedule_type="once", run_at=T0 + timedelta(minutes=5), target_command="cmd.t.once"
        ),
        ACTOR,
        T0,
    )
    capped = await schedules.create(interval("capped", 60, max_runs=2), ACTOR, T0)
    now = T0 + timedelta(minutes=5)
    result = await tick(engine, now, settings)
    assert result.completed == 2
    states = dict(await rows(engine, "SELECT name, status FROM schedules"))
    assert states == {"once": "completed", "capped": "completed"}
    counts = dict(await rows(engine, "SELECT schedule_id, count(*) FROM executions WHERE status='pending' GROUP BY 1"))
    assert counts[once.id] == 1 and counts[capped.id] == 2


async def test_two_tickers_never_record_a_slot_twice(engine, schedules, settings, clean_db):
    for i in range(300):
        await schedules.create(interval(f"s{i}", 10 + i % 7), ACTOR, T0)
    other = make_engine(clean_db, pool_size=2)
    # No dispatch lead here: with it, a pass may also take slots up to a lead past `now`, which would
    # blur the exact count below (the lead has its own tests).
    small = settings.model_copy(update={"TICKER_BATCH_SIZE": 37, "DISPATCH_LEAD_MS": 0})
    try:
        for step in range(1, 25):
            now = T0 + timedelta(seconds=5 * step)
            while True:  # three tickers, each claiming batches of 37, until nothing is left due
                results = await asyncio.gather(
                    tick(engine, now, small), tick(other, now, small), tick(engine, now, small)
                )
                if not any(r.batch_full for r in results):
                    break
    finally:
        await other.dispose()
    (dupes,) = await rows(engine, "SELECT count(*) - count(DISTINCT (schedule_id, scheduled_for)) FROM executions")
    assert dupes[0] == 0
    # Every slot of every schedule up to the last tick exists exactly once: no gaps either.
    expected = 0
    for _name, start, seconds in await rows(engine, "SELECT name, start_at, interval_seconds FROM schedules"):
        rule = Rule(ScheduleType.INTERVAL, interval_seconds=seconds, start_at=start)
        slot = next_fire(rule, T0)
        while slot <= T0 + timedelta(seconds=120):
            expected += 1
            slot = next_fire(rule, slot)
    (total,) = await rows(engine, "SELECT count(*) FROM executions")
    assert total[0] == expected


async def test_unevaluable_rule_disables_schedule_with_reason(engine, schedules, settings):
    created = await schedules.create(interval("broken", 60), ACTOR, T0)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE schedules SET schedule_type='cron', cron_expression='not a cron'"))
    result = await tick(engine, created.next_run_at, settings)
    assert [d[0] for d in result.disabled] == [created.id]
    (row,) = await rows(engine, "SELECT status, status_reason, next_run_at FROM schedules")
    assert row.status == "disabled" and "can no longer be evaluated" in row.status_reason and row.next_run_at is None
    (audit,) = await rows(engine, "SELECT actor, action FROM audit_log WHERE action='schedule.disabled'")
    assert audit.actor == "scheduler"


async def test_jittered_slot_waits_in_the_outbox_until_due(engine, schedules, settings):
    created = await schedules.create(interval("jitter", 600, jitter_seconds=300), ACTOR, T0)
    slot = created.next_run_at
    result = await tick(engine, slot, settings)
    (row,) = await rows(engine, "SELECT id, not_before, enqueued_at FROM executions")
    assert row.not_before >= slot and row.not_before - slot <= timedelta(seconds=300)
    lead = timedelta(milliseconds=settings.DISPATCH_LEAD_MS)
    if row.not_before <= slot + lead:  # jitter within the lead: handed over at once, with its instant
        assert [(d.execution_id, d.due) for d in result.dispatch] == [
            (row.id, row.not_before if row.not_before > slot else None)
        ]
    else:
        assert result.dispatch == [] and row.enqueued_at is None
        assert await next_due_at(engine) == row.not_before
        assert (await sweep(engine, row.not_before - lead - timedelta(seconds=1), settings)).dispatch == []
        # Handed over when its instant enters the lead, carrying the instant the worker waits for.
        handed = await sweep(engine, row.not_before - lead, settings)
        assert [(d.execution_id, d.due) for d in handed.dispatch] == [(row.id, row.not_before)]


async def test_delete_and_retime_keep_slots_that_fell_due_before_any_tick(engine, schedules, settings):
    """A slot due but not yet recorded is never dropped silently: delete records it with a reason,
    a rule change plans it by the misfire rules."""
    deleted = await schedules.create(interval("deleted", 10), ACTOR, T0)
    retimed = await schedules.create(interval("retimed", 10, misfire_grace_seconds=300), ACTOR, T0)
    later = T0 + timedelta(seconds=45)  # slots at +10, +20, +30, +40 fell due; no ticker ran
    await schedules.delete(deleted.id, ACTOR, later)
    await schedules.update(retimed.id, ScheduleUpdateBody(interval_seconds=60), ACTOR, later)
    rows_by = {}
    for row in await rows(engine, "SELECT schedule_id, status, reason FROM executions"):
        rows_by.setdefault(row.schedule_id, []).append((row.status, row.reason))
    assert rows_by[deleted.id] == [("cancelled", "deleted")] * 4
    assert sorted(rows_by[retimed.id]) == [("pending", None)] * 4  # within the grace: they fire


async def test_slot_within_the_lead_is_handed_over_early_with_its_instant(engine, schedules, settings):
    lead = timedelta(milliseconds=settings.DISPATCH_LEAD_MS)
    assert lead > timedelta(0)
    created = await schedules.create(interval("early", 60), ACTOR, T0)
    slot = created.next_run_at
    assert (await tick(engine, slot - lead - timedelta(milliseconds=1), settings)).claimed == 0
    early = slot - lead / 2
    result = await tick(engine, early, settings)
    assert result.fired == 1 and result.missed == 0
    (dispatch,) = result.dispatch
    assert dispatch.due == slot  # the worker publishes at the instant, not at hand-over
    (row,) = await rows(engine, "SELECT status, scheduled_for, enqueued_at FROM executions")
    assert (row.status, row.scheduled_for, row.enqueued_at) == ("pending", slot, early)
    (schedule,) = await rows(engine, "SELECT next_run_at, run_count FROM schedules")
    assert schedule.next_run_at == slot + timedelta(seconds=60) and schedule.run_count == 1
    # At the instant itself the slot is already recorded: nothing more to do.
    assert (await tick(engine, slot, settings)).dispatch == []


async def test_without_a_lead_a_slot_is_handed_over_only_when_due(engine, schedules, settings):
    no_lead = settings.model_copy(update={"DISPATCH_LEAD_MS": 0})
    created = await schedules.create(interval("late-hand-over", 60), ACTOR, T0)
    slot = created.next_run_at
    assert (await tick(engine, slot - timedelta(milliseconds=1), no_lead)).claimed == 0
    (dispatch,) = (await tick(engine, slot, no_lead)).dispatch
    assert dispatch.due is None
