"""The outbox sweep: lost hand-overs are found again; runs whose worker vanished are reaped."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from runtime import metrics
from services.outbox import release_hand_over, sweep
from services.ticking import tick
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, interval
from tests.support.servers import redis_url


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


async def _claimed_run(engine, schedules, settings, locks, name: str, worker: str):
    """A run of a new schedule, claimed by `worker` at its slot and holding its lease: (slot, run id, lease key)."""
    from services.locks import lease_token

    created = await schedules.create(interval(f"w-{name}", 60), ACTOR, T0)
    slot = created.next_run_at
    (run,) = [d.execution_id for d in (await tick(engine, slot, settings)).dispatch]
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE executions SET status='running', started_at=:t, attempts=1, claimed_by=:w WHERE id=:id"),
            {"t": slot, "w": worker, "id": run},
        )
    (lease,) = await locks.acquire_many([(created.id, 1, lease_token(run, worker))])
    assert lease is not None
    return slot, run, lease.key


async def test_runs_of_a_worker_without_heartbeat_are_reaped_at_once_and_their_leases_freed(
    engine, schedules, settings
):
    """Long before LOCK_TIMEOUT_SECONDS: the dead worker's run goes back with its lease; the live one's stays."""
    import uuid

    import redis.asyncio as redis

    from services.events import NullEvents
    from services.liveness import Heartbeat, WorkerRegistry
    from services.locks import ScheduleLocks
    from ticker.tick import run_tick

    prefix = f"test-reap:{uuid.uuid4().hex[:8]}:"
    client = redis.from_url(redis_url())
    live = Heartbeat(redis_url(), 0.2, 3.0, prefix)
    live_id, dead_id = live.start(), f"gone:{uuid.uuid4().hex[:8]}"
    try:
        await client.set(f"{prefix}workers:epoch", 0)  # the registry has been warm for long
        runs = {}
        locks = ScheduleLocks(client, settings.LOCK_TIMEOUT_SECONDS)
        for name, worker in (("live", live_id), ("dead", dead_id)):
            claimed = await _claimed_run(engine, schedules, settings, locks, name, worker)
            slot, runs[name], runs[name + "-lease"] = claimed
        handed: list = []

        async def enqueue(dispatch):
            handed.extend(d.execution_id for d in dispatch)
            return []

        soon = slot + timedelta(seconds=2)
        assert settings.LOCK_TIMEOUT_SECONDS > 2  # so only the missing heartbeat can reap
        exported = CollectorRegistry()
        metrics.install(metrics.TICKER, exported)
        reaped_before = exported.get_sample_value("schedule_runs_reaped_total", {"status": "retrying"})
        report = await run_tick(
            engine, soon, settings, enqueue, NullEvents(), workers=WorkerRegistry(client, 3.0, prefix), locks=locks
        )
        assert report.reaped == 1 and runs["dead"] in handed and runs["live"] not in handed
        assert exported.get_sample_value("schedule_runs_reaped_total", {"status": "retrying"}) == reaped_before + 1
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


async def test_a_rescue_hands_over_again_every_run_handed_over_and_not_started(engine, schedules, settings):
    """After Redis lost its data the queue messages are gone (delayed retries too): pending runs handed
    over a moment ago, retries due now and retries due soon (delayed to their instant) are handed over
    again; a retry due later is left to the ordinary sweep."""
    handed_over = await schedules.create(interval("handed", 60), ACTOR, T0)
    due_now = await schedules.create(interval("retry-now", 60), ACTOR, T0)
    due_soon = await schedules.create(interval("retry-soon", 60), ACTOR, T0)
    due_later = await schedules.create(interval("retry-later", 60), ACTOR, T0)
    slot = handed_over.next_run_at
    runs = {d.execution_id for d in (await tick(engine, slot, settings)).dispatch}
    assert len(runs) == 4
    now = slot + timedelta(seconds=1)  # far below REENQUEUE_AFTER_SECONDS
    retry_at = {
        due_now.id: now - timedelta(milliseconds=200),
        due_soon.id: now + timedelta(seconds=3),
        due_later.id: now + timedelta(seconds=settings.REENQUEUE_AFTER_SECONDS + 5),
    }
    async with engine.begin() as conn:
        for schedule_id, at in retry_at.items():
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # a state no transition reaches
            await conn.execute(
                sa.text(
                    "UPDATE executions SET status='retrying', attempts=1, next_attempt_at=:at WHERE schedule_id=:s"
                ),
                {"at": at, "s": schedule_id},
            )
    run_of = {r.schedule_id: r.id for r in await rows(engine, "SELECT id, schedule_id FROM executions")}

    assert (await sweep(engine, now, settings)).dispatch == []  # without a rescue: nothing is stale yet
    rescued = await sweep(engine, now, settings, rescue=True)
    by_id = {d.execution_id: d for d in rescued.dispatch}
    assert set(by_id) == {run_of[handed_over.id], run_of[due_now.id], run_of[due_soon.id]}
    assert all(d.overdue for d in rescued.dispatch)
    assert by_id[run_of[handed_over.id]].due is None and by_id[run_of[due_now.id]].due is None
    assert by_id[run_of[due_soon.id]].due == retry_at[due_soon.id]  # not earlier than its backoff
    assert (rescued.requeued_pending, rescued.requeued_retries, rescued.rescued_upcoming) == (1, 1, 1)
    # The rescue marked what it handed over: the next ordinary sweep does not send them a third time.
    assert (await sweep(engine, now + timedelta(seconds=1), settings)).dispatch == []


async def test_a_departed_worker_has_its_consumer_released_once_and_a_lost_queue_is_rescued(
    engine, schedules, settings
):
    """The ticker learns of a death from the heartbeat census and marks the worker's Dramatiq consumer
    dead (Dramatiq then requeues exactly its unacked messages): once, and without re-sending every run
    handed over. When Redis lost its data, it hands over again what the lost queue held."""
    import uuid

    import redis.asyncio as redis

    from services.events import NullEvents
    from services.liveness import WorkerRegistry
    from ticker.tick import run_tick

    prefix = f"test-rescue:{uuid.uuid4().hex[:8]}:"
    client = redis.from_url(redis_url())
    try:
        await client.set(f"{prefix}workers:epoch", 0)  # the registry has been warm for long
        await client.hset(f"{prefix}workers", "killed-worker", "its-consumer")  # it beat; its key expired
        await client.zadd(f"{prefix}__heartbeats__", {"its-consumer": 1_800_000_000_000})
        created = await schedules.create(interval("stranded", 60), ACTOR, T0)
        slot = created.next_run_at
        (handed_over,) = [d.execution_id for d in (await tick(engine, slot, settings)).dispatch]
        handed: list = []

        async def enqueue(dispatch):
            handed.extend(d.execution_id for d in dispatch)
            return []

        registry = WorkerRegistry(client, 3.0, prefix)
        soon = slot + timedelta(seconds=2)
        report = await run_tick(engine, soon, settings, enqueue, NullEvents(), workers=registry)
        assert report.consumers_released == 1 and report.rescued == 0 and handed == []
        assert await client.zscore(f"{prefix}__heartbeats__", "its-consumer") == 0
        assert not await client.hexists(f"{prefix}workers", "killed-worker")
        report = await run_tick(engine, soon + timedelta(seconds=1), settings, enqueue, NullEvents(), workers=registry)
        assert report.consumers_released == 0 and handed == []

        await client.delete(f"{prefix}workers:epoch")  # Redis restarted empty: the queue is gone
        report = await run_tick(engine, soon + timedelta(seconds=2), settings, enqueue, NullEvents(), workers=registry)
        assert report.rescued == 1 and handed == [handed_over]
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
