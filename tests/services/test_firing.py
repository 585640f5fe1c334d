"""The worker's batch step against the real PostgreSQL, Redis and NATS (JetStream included)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import nats
import pytest
import redis.asyncio as redis
import sqlalchemy as sa

from core.outcomes import Decision
from runtime.nats_client import NatsConnection
from services.firing import FiringService
from services.locks import ScheduleLocks
from services.publisher import CommandPublisher
from services.runs import Outcome
from services.schemas import ScheduleCreate
from services.ticking import tick
from tests.support.database import rows
from tests.support.factories import ACTOR
from tests.support.servers import nats_url

NATS_URL = nats_url()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def nats_client():
    client = await nats.connect(NATS_URL)
    yield client
    await client.close()


@pytest.fixture
async def firing(engine, redis_client, service_settings):
    connection = NatsConnection(NATS_URL, name="firing-tests")
    yield FiringService(engine, ScheduleLocks(redis_client, 30), CommandPublisher(connection, 0), service_settings)
    await connection.close()


def subject() -> str:
    return f"cmd.test.{uuid.uuid4().hex[:12]}"


async def due_execution(engine, schedules, settings, target: str, **extra) -> uuid.UUID:
    """Create an immediate schedule and let one tick record its run; returns the execution id."""
    now = utc_now()
    body = ScheduleCreate(name=f"n-{uuid.uuid4().hex[:6]}", schedule_type="immediate", target_command=target, **extra)
    await schedules.create(body, ACTOR, now)
    result = await tick(engine, now, settings)
    return result.dispatch[-1].execution_id


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def on_message(self, msg) -> None:
        self.messages.append(msg)

    async def wait(self, count: int, timeout: float = 10) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            assert asyncio.get_running_loop().time() < deadline, f"expected {count} messages, got {len(self.messages)}"
            await asyncio.sleep(0.02)


async def test_publish_records_success_and_a_redelivery_is_a_no_op(
    engine, schedules, firing, service_settings, nats_client
):
    target = subject()
    inbox = Inbox()
    await nats_client.subscribe(target, cb=inbox.on_message)
    execution_id = await due_execution(
        engine, schedules, service_settings, target, command_payload={"id": "{{execution_id}}", "n": "{{attempt}}"}
    )
    result = await firing.fire([execution_id], utc_now, 0.5)
    assert [o.status for o in result.outcomes] == ["succeeded"] and result.locks_acquired == 1
    await inbox.wait(1)
    message = inbox.messages[0]
    assert json.loads(message.data) == {"id": str(execution_id), "n": "1"}
    assert message.headers["Nats-Msg-Id"] == str(execution_id) and message.headers["Scheduler-Attempt"] == "1"
    (row,) = await rows(engine, "SELECT status, attempts, published_subject, message_id, attempt_log FROM executions")
    assert (row.status, row.attempts, row.published_subject, row.message_id) == (
        "succeeded",
        1,
        target,
        str(execution_id),
    )
    assert row.attempt_log[0]["status"] == "succeeded" and row.attempt_log[0]["via"] == "core"
    again = await firing.fire([execution_id], utc_now, 0.5)
    assert again.claimed == 0 and again.outcomes == []
    await asyncio.sleep(0.2)
    assert len(inbox.messages) == 1


async def test_jetstream_acknowledges_and_drops_a_repeat_of_the_same_run(
    engine, schedules, firing, service_settings, nats_client
):
    prefix = f"cmd.jstest{uuid.uuid4().hex[:8]}"
    stream = f"JSTEST{uuid.uuid4().hex[:8]}".upper()
    js = nats_client.jetstream()
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
    try:
        execution_id = await due_execution(engine, schedules, service_settings, f"{prefix}.run")
        first = await firing.fire([execution_id], utc_now, 0.5)
        assert first.outcomes[0].status == "succeeded" and first.outcomes[0].via == "jetstream"
        # As if the outcome had been lost after the publish: the run is attempted again.
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # a state no transition reaches
            await conn.execute(sa.text("UPDATE executions SET status='pending'"))
        second = await firing.fire([execution_id], utc_now, 0.5)
        assert second.outcomes[0].status == "succeeded"
        info = await js.stream_info(stream)
        assert info.state.messages == 1
    finally:
        await js.delete_stream(stream)


async def test_error_reply_retries_with_backoff_then_fails(engine, schedules, firing, service_settings, nats_client):
    target = subject()
    calls = []

    async def responder(msg):
        calls.append(msg.headers.get("Scheduler-Attempt"))
        await msg.respond(b'{"error": "boom"}')

    await nats_client.subscribe(target, cb=responder)
    execution_id = await due_execution(
        engine,
        schedules,
        service_settings,
        target,
        delivery_mode="request",
        max_retries=1,
        retry_delay=10,
        request_timeout_seconds=2,
    )
    first = await firing.fire([execution_id], utc_now, 0.0)
    (outcome,) = first.outcomes
    assert outcome.status == "retrying" and "boom" in outcome.error and outcome.retry_in_ms == 10_000
    (row,) = await rows(engine, "SELECT status, next_attempt_at, finished_at FROM executions")
    assert row.status == "retrying" and row.next_attempt_at is not None and row.finished_at is None
    assert (await firing.fire([execution_id], utc_now, 0.0)).claimed == 0  # not due yet
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE executions SET next_attempt_at = now()"))
    final = await firing.fire([execution_id], utc_now, 0.0)
    assert final.outcomes[0].status == "failed"
    (row,) = await rows(engine, "SELECT status, attempts, attempt_log FROM executions")
    assert row.status == "failed" and row.attempts == 2 and calls == ["1", "2"]
    assert [entry["status"] for entry in row.attempt_log] == ["retrying", "failed"]


async def test_busy_concurrency_slots_defer_a_fresh_run_and_skip_a_stale_one(
    engine, schedules, firing, service_settings, redis_client
):
    execution_id = await due_execution(
        engine, schedules, service_settings, subject(), max_concurrent=1, misfire_grace_seconds=60
    )
    (schedule_id,) = [r.id for r in await rows(engine, "SELECT id FROM schedules")]
    await redis_client.set(f"scheduler:lock:{schedule_id}:0", "someone-else", px=30_000)
    try:
        fresh = await firing.fire([execution_id], utc_now, 0.5)
        (row,) = await rows(engine, "SELECT status, reason, attempts, next_attempt_at FROM executions")
        # Within its misfire grace the run waits for a slot (a deferral is not an attempt) ...
        assert [(o.status, o.reason) for o in fresh.outcomes] == [("retrying", "lock_conflict")]
        assert row.attempts == 0 and row.next_attempt_at is not None
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "UPDATE executions SET scheduled_for = scheduled_for - interval '10 minutes', "
                    "not_before = not_before - interval '10 minutes', next_attempt_at = now()"
                )
            )
        stale = await firing.fire([execution_id], utc_now, 0.5)
    finally:
        await redis_client.delete(f"scheduler:lock:{schedule_id}:0")
    # ... past it, the slot is recorded skipped with the reason.
    assert [(o.status, o.reason) for o in stale.outcomes] == [("skipped", "lock_conflict")]


async def test_a_schedules_backlog_in_one_batch_goes_out_at_once_in_slot_order(
    engine, schedules, firing, service_settings, nats_client
):
    target = subject()
    inbox = Inbox()
    await nats_client.subscribe(target, cb=inbox.on_message)
    await nats_client.flush()
    first = await due_execution(
        engine, schedules, service_settings, target, max_concurrent=1, command_payload={"run": "{{execution_id}}"}
    )
    (schedule_id,) = [r.id for r in await rows(engine, "SELECT id FROM schedules")]
    runs = [first] + [(await schedules.trigger(schedule_id, ACTOR, utc_now())).execution_id for _ in range(4)]
    # One slot, five runs in one batch (a catch-up hands a schedule's backlog over at once): each takes
    # the slot in turn, none is deferred to another round trip through the queue.
    result = await firing.fire(list(reversed(runs)), utc_now, 0.5)
    assert [o.status for o in result.outcomes] == ["succeeded"] * 5 and result.locks_acquired == 5
    await inbox.wait(5)
    assert [json.loads(m.data)["run"] for m in inbox.messages] == [str(r) for r in runs]
    logs = await rows(engine, "SELECT attempts, jsonb_array_length(attempt_log) AS tries FROM executions")
    assert {(r.attempts, r.tries) for r in logs} == {(1, 1)}
    assert await firing.locks.redis.exists(f"scheduler:lock:{schedule_id}:0") == 0


async def test_a_claim_passes_over_a_run_another_transaction_holds_instead_of_waiting(
    engine, schedules, firing, service_settings
):
    held = await due_execution(engine, schedules, service_settings, subject())
    free = await due_execution(engine, schedules, service_settings, subject())
    async with engine.connect() as other, other.begin():  # another batch's claim or record, still open
        await other.execute(sa.text("SELECT 1 FROM executions WHERE id = :id FOR UPDATE"), {"id": held})
        claimed = await asyncio.wait_for(firing.claim([held, free], utc_now(), "w#1"), 10)
        # Waiting for it let two batches holding copies of the same runs deadlock.
        assert [c.execution_id for c in claimed] == [free]
    (row,) = await rows(engine, "SELECT status FROM executions WHERE id = :id", id=held)
    assert row.status == "pending"


async def test_runs_of_paused_or_deleted_schedules_do_not_go_out(engine, schedules, firing, service_settings):
    paused_run = await due_execution(engine, schedules, service_settings, subject())
    deleted_run = await due_execution(engine, schedules, service_settings, subject())
    by_run = {r.id: r.schedule_id for r in await rows(engine, "SELECT id, schedule_id FROM executions")}
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE schedules SET status='paused' WHERE id=:i"), {"i": by_run[paused_run]})
    await schedules.delete(by_run[deleted_run], ACTOR, utc_now())
    result = await firing.fire([paused_run, deleted_run], utc_now, 0.5)
    assert {(o.execution_id, o.status, o.reason) for o in result.outcomes} == {
        (paused_run, "missed", "paused"),
        (deleted_run, "cancelled", "deleted"),
    }


async def test_nats_unreachable_means_retry_not_loss(engine, schedules, service_settings, redis_client):
    dead = NatsConnection("nats://127.0.0.1:1", name="unreachable")
    firing = FiringService(engine, ScheduleLocks(redis_client, 30), CommandPublisher(dead, 0), service_settings)
    execution_id = await due_execution(engine, schedules, service_settings, subject(), retry_delay=5)
    result = await firing.fire([execution_id], utc_now, 0.0)
    assert result.outcomes[0].status == "retrying" and "NATS unavailable" in result.outcomes[0].error
    assert result.outcomes[0].retry_in_ms == 5000
    # It goes back when NATS does (actors.waiting_room), not on the backoff timer.
    assert result.waiting_for_nats == result.outcomes and result.retries == []


async def test_with_nats_unreachable_a_schedules_backlog_waits_for_it_without_more_tries(
    engine, schedules, service_settings, redis_client
):
    dead = NatsConnection("nats://127.0.0.1:1", name="unreachable")
    firing = FiringService(engine, ScheduleLocks(redis_client, 30), CommandPublisher(dead, 0), service_settings)
    first = await due_execution(engine, schedules, service_settings, subject(), max_concurrent=1)
    (schedule_id,) = [r.id for r in await rows(engine, "SELECT id FROM schedules")]
    second = (await schedules.trigger(schedule_id, ACTOR, utc_now())).execution_id
    result = await firing.fire([first, second], utc_now, 0.0)
    # The first run found NATS down; the second, which needed the slot after it, is not tried against it.
    assert result.locks_acquired == 1
    assert sorted((o.execution_id, o.status) for o in result.waiting_for_nats) == sorted(
        [(first, "retrying"), (second, "retrying")]
    )


async def test_a_run_blocked_by_unreachable_redis_retries_on_its_timer(
    engine, schedules, service_settings, nats_client
):
    unreachable = redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    firing = FiringService(
        engine,
        ScheduleLocks(unreachable, 30),
        CommandPublisher(NatsConnection(NATS_URL), 0),
        service_settings,
    )
    execution_id = await due_execution(engine, schedules, service_settings, subject(), retry_delay=5)
    result = await firing.fire([execution_id], utc_now, 0.0)
    (outcome,) = result.outcomes
    assert outcome.status == "retrying" and "lock service unavailable" in outcome.error and outcome.retry_in_ms == 5000
    assert result.retries == [outcome] and result.waiting_for_nats == []
    await unreachable.aclose()


async def test_our_outage_spends_neither_the_retry_budget_nor_the_backoff_within_the_grace(
    engine, schedules, service_settings, redis_client
):
    dead = NatsConnection("nats://127.0.0.1:1", name="unreachable")
    firing = FiringService(engine, ScheduleLocks(redis_client, 30), CommandPublisher(dead, 0), service_settings)
    # No retries left and a five-minute backoff: a failure of the target would end the run at once.
    execution_id = await due_execution(engine, schedules, service_settings, subject(), retry_delay=300, max_retries=0)
    for _ in range(3):
        (outcome,) = (await firing.fire([execution_id], utc_now, 0.0)).outcomes
        assert outcome.status == "retrying" and outcome.retry_in_ms <= 5000
        async with engine.begin() as conn:  # let the next attempt be claimed now
            await conn.execute(
                sa.text("UPDATE executions SET next_attempt_at = now() WHERE id = :id"), {"id": execution_id}
            )
    (row,) = await rows(engine, "SELECT status, attempts, attempt_log FROM executions WHERE id = :id", id=execution_id)
    assert row.status == "retrying" and row.attempts == 0 and len(row.attempt_log) == 3


async def test_past_its_grace_a_run_blocked_by_our_outage_gets_the_schedules_backoff(
    engine, schedules, service_settings, redis_client
):
    dead = NatsConnection("nats://127.0.0.1:1", name="unreachable")
    firing = FiringService(engine, ScheduleLocks(redis_client, 30), CommandPublisher(dead, 0), service_settings)
    execution_id = await due_execution(
        engine, schedules, service_settings, subject(), retry_delay=300, max_retries=0, misfire_grace_seconds=5
    )
    later = utc_now() + timedelta(seconds=60)
    (outcome,) = (await firing.fire([execution_id], lambda: later, 0.0)).outcomes
    assert outcome.status == "failed" and "NATS unavailable" in outcome.error


async def test_a_run_handed_over_early_is_published_at_its_instant(
    engine, schedules, firing, service_settings, nats_client
):
    target = subject()
    inbox = Inbox()
    received_at: list[datetime] = []

    async def on_message(msg):
        received_at.append(utc_now())
        await inbox.on_message(msg)

    await nats_client.subscribe(target, cb=on_message)
    await nats_client.flush()
    # A long lead keeps the claim before the slot on a loaded machine (the tick and claim take time).
    settings = service_settings.model_copy(update={"DISPATCH_LEAD_MS": 4000})
    now = utc_now()
    slot = now + timedelta(seconds=2)
    await schedules.create(
        ScheduleCreate(name=f"o-{uuid.uuid4().hex[:6]}", schedule_type="once", run_at=slot, target_command=target),
        ACTOR,
        now - timedelta(seconds=1),
    )
    (dispatch,) = (await tick(engine, now, settings)).dispatch
    assert dispatch.due == slot
    result = await firing.fire([dispatch.execution_id], utc_now, 0.5)
    await inbox.wait(1)
    assert received_at[0] >= slot  # never before the instant
    assert [o.status for o in result.outcomes] == ["succeeded"] and result.outcomes[0].started_at == slot
    # The lag metric reads the publish instant, held to the slot, never the earlier claim.
    assert slot <= result.outcomes[0].published_at <= received_at[0]
    (row,) = await rows(engine, "SELECT status, started_at FROM executions WHERE id = :id", id=dispatch.execution_id)
    assert row.status == "succeeded" and row.started_at == slot


async def test_a_run_reaped_from_a_dead_worker_goes_out_at_once_through_the_next_one(
    engine, schedules, service_settings, redis_client, nats_client
):
    """Worker A claims and holds the lease, then dies; the sweep reaps the run from it (no heartbeat)
    and frees the lease, so worker B publishes it without waiting for the lease's TTL."""
    from services.locks import lease_token
    from services.outbox import sweep

    target = subject()
    inbox = Inbox()
    await nats_client.subscribe(target, cb=inbox.on_message)
    connection = NatsConnection(NATS_URL, name="firing-tests-b")
    locks = ScheduleLocks(redis_client, 30)
    frozen = FiringService(engine, locks, CommandPublisher(connection, 0), service_settings, worker_id="worker-a")
    taker = FiringService(engine, locks, CommandPublisher(connection, 0), service_settings, worker_id="worker-b")
    lease = None
    try:
        execution_id = await due_execution(
            engine, schedules, service_settings, target, max_concurrent=1, misfire_grace_seconds=60
        )
        claim = frozen.new_claim()
        (claimed,) = await frozen.claim([execution_id], utc_now(), claim)
        (lease,) = await locks.acquire_many([(claimed.schedule_id, 1, lease_token(execution_id, claim))])
        assert lease is not None

        swept = await sweep(engine, utc_now(), service_settings, dead_workers={"worker-a"})
        assert swept.reaped_retrying == 1
        await locks.release_held(swept.freed_leases)
        result = await taker.fire([execution_id], utc_now, 0.5)
        assert [o.status for o in result.outcomes] == ["succeeded"]  # no wait for the dead lease's TTL
        await inbox.wait(1)

        (row,) = await rows(
            engine, "SELECT status, claimed_by, attempt_log FROM executions WHERE id = :id", id=execution_id
        )
        assert row.status == "succeeded" and row.claimed_by.startswith("worker-b#")
        assert [e["status"] for e in row.attempt_log] == ["lost", "succeeded"]
        await asyncio.sleep(0.3)
        assert len(inbox.messages) == 1
    finally:
        if lease is not None:
            await redis_client.delete(lease.key)
        await connection.close()


async def test_a_frozen_workers_late_outcome_does_not_overwrite_the_claim_that_took_its_run_over(
    engine, schedules, service_settings, redis_client
):
    from services.outbox import sweep

    locks = ScheduleLocks(redis_client, 30)
    dead = NatsConnection("nats://127.0.0.1:1", name="unused")
    frozen = FiringService(engine, locks, CommandPublisher(dead, 0), service_settings, worker_id="worker-a")
    taker = FiringService(engine, locks, CommandPublisher(dead, 0), service_settings, worker_id="worker-b")
    execution_id = await due_execution(engine, schedules, service_settings, subject())
    claim_a, claim_b = frozen.new_claim(), taker.new_claim()
    (claimed,) = await frozen.claim([execution_id], utc_now(), claim_a)
    assert (await sweep(engine, utc_now(), service_settings, dead_workers={"worker-a"})).reaped_retrying == 1
    (taken,) = await taker.claim([execution_id], utc_now(), claim_b)

    def outcome(run, decision):
        return Outcome.of(run, utc_now(), decision, run.target_command)

    await frozen.record(
        [outcome(claimed, Decision.retry_at(1000, "late"))], utc_now(), claim_a
    )  # A resumes while B holds the run
    (row,) = await rows(engine, "SELECT status, claimed_by, attempts FROM executions WHERE id = :id", id=execution_id)
    assert (row.status, row.claimed_by, row.attempts) == ("running", claim_b, 2)
    await taker.record([outcome(taken, Decision.succeeded("core"))], utc_now(), claim_b)
    (row,) = await rows(engine, "SELECT status, attempt_log FROM executions WHERE id = :id", id=execution_id)
    assert row.status == "succeeded" and [e["status"] for e in row.attempt_log] == ["lost", "succeeded"]


async def test_outcomes_wait_for_postgresql_to_come_back_instead_of_being_dropped(
    engine, clean_db, schedules, service_settings, redis_client
):
    """The worker published and PostgreSQL went away before it recorded: it records when PostgreSQL is
    back (through a proxy that drops every connection and refuses new ones for 2 s)."""
    from sqlalchemy.engine import make_url

    from models.db import make_engine
    from tests.support.tcp_proxy import TcpProxy

    url = make_url(clean_db)
    proxy = TcpProxy(url.host or "localhost", url.port or 5432)
    await proxy.start()
    proxied = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), pool_size=2)
    unused = NatsConnection("nats://127.0.0.1:1", name="unused")
    worker = FiringService(
        proxied, ScheduleLocks(redis_client, 30), CommandPublisher(unused, 0), service_settings, worker_id="worker-pg"
    )
    try:
        execution_id = await due_execution(engine, schedules, service_settings, subject())
        claim = worker.new_claim()
        (run,) = await worker.claim([execution_id], utc_now(), claim)
        done = Outcome.of(run, utc_now(), Decision.succeeded("core"), run.target_command)
        await proxy.cut()
        recording = asyncio.create_task(worker.record_when_possible([done], utc_now(), claim, utc_now))
        await asyncio.sleep(2)
        assert not recording.done(), recording  # still trying, not given up
        await proxy.restore()
        await asyncio.wait_for(recording, 30)
        (row,) = await rows(engine, "SELECT status, claimed_by FROM executions WHERE id = :id", id=execution_id)
        assert (row.status, row.claimed_by) == ("succeeded", claim)
    finally:
        await proxy.cut()
        await proxied.dispose()
