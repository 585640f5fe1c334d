"""The outbox sweep: lost hand-overs are found again; runs whose worker vanished are reaped."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from services.outbox import release_hand_over, sweep
from services.ticking import tick
from tests.services.test_ticking import ACTOR, T0, interval, rows


async def test_manual_trigger_is_handed_over_once(engine, schedules, settings):
    created = await schedules.create(interval("t", 3600), ACTOR, T0)
    triggered = await schedules.trigger(created.id, ACTOR, T0)
    first = await sweep(engine, T0, settings)
    assert [d.execution_id for d in first.dispatch] == [triggered.execution_id]
    assert (await sweep(engine, T0 + timedelta(seconds=1), settings)).dispatch == []


async def test_lost_hand_over_is_requeued_after_the_threshold(engine, schedules, settings):
    created = await schedules.create(interval("lost", 60), ACTOR, T0)
    slot = created.next_run_at
    result = await tick(engine, slot, settings)  # handed over, but pretend the enqueue never happened
    (execution_id,) = [d.execution_id for d in result.dispatch]
    soon = slot + timedelta(seconds=settings.REENQUEUE_AFTER_SECONDS - 1)
    assert (await sweep(engine, soon, settings)).dispatch == []
    late = slot + timedelta(seconds=settings.REENQUEUE_AFTER_SECONDS + 1)
    assert [d.execution_id for d in (await sweep(engine, late, settings)).dispatch] == [execution_id]


async def test_failed_enqueue_is_released_for_the_next_sweep(engine, schedules, settings):
    created = await schedules.create(interval("released", 60), ACTOR, T0)
    result = await tick(engine, created.next_run_at, settings)
    await release_hand_over(engine, [d.execution_id for d in result.dispatch])
    again = await sweep(engine, created.next_run_at, settings)
    assert [d.execution_id for d in again.dispatch] == [d.execution_id for d in result.dispatch]


async def test_running_past_the_lock_timeout_is_reaped(engine, schedules, settings):
    created = await schedules.create(interval("reap", 60, max_retries=1), ACTOR, T0)
    slot = created.next_run_at
    await tick(engine, slot, settings)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE executions SET status='running', started_at=:t, attempts=1"), {"t": slot})
    before = slot + timedelta(seconds=settings.LOCK_TIMEOUT_SECONDS - 1)
    assert (await sweep(engine, before, settings)).reaped_retrying == 0
    after = slot + timedelta(seconds=settings.LOCK_TIMEOUT_SECONDS + 1)
    reaped = await sweep(engine, after, settings)
    assert reaped.reaped_retrying == 1 and len(reaped.dispatch) == 1
    (row,) = await rows(engine, "SELECT status, last_error, attempt_log FROM executions")
    assert row.status == "retrying" and "LOCK_TIMEOUT_SECONDS" in row.last_error
    assert row.attempt_log[-1]["status"] == "lost"
    # Out of attempts the second time: the run is failed, not retried forever.
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE executions SET status='running', started_at=:t, attempts=2"), {"t": after})
    final = await sweep(engine, after + timedelta(seconds=settings.LOCK_TIMEOUT_SECONDS + 1), settings)
    assert final.reaped_failed == 1 and final.dispatch == []
    (row,) = await rows(engine, "SELECT status, finished_at FROM executions")
    assert row.status == "failed" and row.finished_at is not None


async def test_a_pass_hands_over_what_the_sweep_found_before_the_slots_it_records(engine, schedules, settings):
    """After an outage a pass records many missed slots at once; older runs must not queue behind them."""
    from services.events import NullEvents
    from ticker.tick import run_tick

    lost = await schedules.create(interval("lost-first", 60), ACTOR, T0)
    (lost_run,) = [d.execution_id for d in (await tick(engine, lost.next_run_at, settings)).dispatch]
    later = lost.next_run_at + timedelta(seconds=settings.REENQUEUE_AFTER_SECONDS + 1)
    fresh = await schedules.create(interval("due-now", 60, start_at=later), ACTOR, T0)
    assert fresh.next_run_at == later
    handed: list = []

    async def enqueue(dispatch):
        handed.extend(d.execution_id for d in dispatch)
        return []

    report = await run_tick(engine, later, settings, enqueue, NullEvents())
    assert report.swept == 1 and report.fired >= 1
    assert handed[0] == lost_run and len(handed) == 1 + report.fired


async def test_runs_of_a_worker_without_heartbeat_are_reaped_at_once_and_their_leases_freed(engine, schedules, settings):
    """Long before LOCK_TIMEOUT_SECONDS: the dead worker's run goes back with its lease; the live one's stays."""
    import uuid

    import redis.asyncio as redis

    from services.events import NullEvents
    from services.liveness import Heartbeat, WorkerRegistry
    from services.locks import ScheduleLocks, lease_token
    from ticker.tick import run_tick

    prefix = f"test-reap:{uuid.uuid4().hex[:8]}:"
    client = redis.from_url("redis://localhost:6379/0")
    live = Heartbeat("redis://localhost:6379/0", 0.2, 3.0, prefix)
    live_id, dead_id = live.start(), f"gone:{uuid.uuid4().hex[:8]}"
    try:
        await client.set(f"{prefix}workers:epoch", 0)  # the registry has been warm for long
        runs = {}
        for name, worker in (("live", live_id), ("dead", dead_id)):
            created = await schedules.create(interval(f"w-{name}", 60), ACTOR, T0)
            slot = created.next_run_at
            (runs[name],) = [d.execution_id for d in (await tick(engine, slot, settings)).dispatch]
            async with engine.begin() as conn:
                await conn.execute(sa.text("UPDATE executions SET status='running', started_at=:t, attempts=1, "
                                           "claimed_by=:w WHERE id=:id"), {"t": slot, "w": worker, "id": runs[name]})
            locks = ScheduleLocks(client, settings.LOCK_TIMEOUT_SECONDS)
            (lease,) = await locks.acquire_many([(created.id, 1, lease_token(runs[name], worker))])
            assert lease is not None
            runs[name + "-lease"] = lease.key
        handed: list = []

        async def enqueue(dispatch):
            handed.extend(d.execution_id for d in dispatch)
            return []

        soon = slot + timedelta(seconds=2)
        assert settings.LOCK_TIMEOUT_SECONDS > 2  # so only the missing heartbeat can reap
        report = await run_tick(engine, soon, settings, enqueue, NullEvents(),
                                workers=WorkerRegistry(client, 3.0, prefix), locks=locks)
        assert report.reaped == 1 and runs["dead"] in handed and runs["live"] not in handed
        state = {r.id: r for r in await rows(engine, "SELECT id, status, last_error FROM executions")}
        assert state[runs["dead"]].status == "retrying" and dead_id in state[runs["dead"]].last_error
        assert state[runs["live"]].status == "running"
        assert not await client.exists(runs["dead-lease"]) and await client.exists(runs["live-lease"])
    finally:
        live.stop()
        leases = [key for name, key in runs.items() if name.endswith("-lease")]
        if leases:
            await client.delete(*leases)
        await client.aclose()
