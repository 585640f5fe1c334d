"""The overdue lane: runs the sweep found lost or reaped are taken before a backlog of fresh slots.

Against the real Redis, with a real Dramatiq worker, in a private namespace: the ticker's enqueuer
sends a backlog of fresh batches and one overdue batch to actors declared exactly like ours (queue
names and priorities from actors.fire), and the worker's processing order is recorded.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from actors.broker import FIRE_QUEUE, OVERDUE_QUEUE
from actors.fire import FIRE_PRIORITY, OVERDUE_PRIORITY, fire_batch, fire_overdue
from core.outcomes import Decision
from core.settings import Settings
from services.ticking import Dispatch
from tests.support.servers import redis_url
from ticker.dispatch import queue_enqueuer

REDIS_URL = redis_url()


def test_the_real_actors_use_the_two_lanes():
    assert (fire_batch.queue_name, fire_batch.priority) == (FIRE_QUEUE, FIRE_PRIORITY)
    assert (fire_overdue.queue_name, fire_overdue.priority) == (OVERDUE_QUEUE, OVERDUE_PRIORITY)
    assert OVERDUE_PRIORITY < FIRE_PRIORITY  # Dramatiq runs the lower number first


@pytest.fixture
def private_broker():
    namespace = f"lanes-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    yield broker
    broker.close()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


def run_worker_until(broker: RedisBroker, threads: int, done, timeout: float = 30) -> None:
    """Run a real Dramatiq worker on `broker` until `done()` or the timeout (the caller asserts)."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()


def test_an_overdue_batch_overtakes_a_backlog_of_fresh_ones(private_broker):
    processed: list[str] = []
    lock = threading.Lock()

    def record(ids: list[str]) -> None:
        time.sleep(0.02)  # a batch takes a moment, so the backlog is real
        with lock:
            processed.append(ids[0])

    fresh = dramatiq.actor(
        record, actor_name="lanes_fresh", queue_name=FIRE_QUEUE, priority=FIRE_PRIORITY, broker=private_broker
    )
    overdue = dramatiq.actor(
        record, actor_name="lanes_overdue", queue_name=OVERDUE_QUEUE, priority=OVERDUE_PRIORITY, broker=private_broker
    )
    enqueue = queue_enqueuer(Settings(DISPATCH_BATCH_SIZE=1, _env_file=None), fresh, overdue)
    backlog = [Dispatch(uuid.uuid4(), 5) for _ in range(60)]
    reaped = Dispatch(uuid.uuid4(), 5, overdue=True)
    assert asyncio.run(enqueue(backlog)) == []
    assert asyncio.run(enqueue([reaped])) == []  # sent after the whole backlog

    run_worker_until(private_broker, 1, lambda: len(processed) >= 61)
    assert len(processed) == 61, f"only {len(processed)} of 61 batches processed"
    position = processed.index(str(reaped.execution_id))
    # FIFO would make it the 61st; it waits at most for the batches the worker had already started.
    assert position <= 3, position
    assert [i for i in processed if i != str(reaped.execution_id)] == [str(d.execution_id) for d in backlog]


def test_retries_go_to_the_overdue_lane_grouped_by_their_backoff_rounded_up(monkeypatch):
    """A retry is past its instant: it must not come back behind a catch-up's backlog of fresh slots."""
    from datetime import datetime, timezone

    from actors import fire, handoff
    from services.runs import Outcome

    sent: list[tuple[str, list[str], int]] = []
    for actor in (fire.fire_batch, fire.fire_overdue):
        monkeypatch.setattr(
            actor, "send_with_options", lambda args, delay, _name=actor.actor_name: sent.append((_name, args[0], delay))
        )
    now = datetime.now(timezone.utc)

    def retrying(ms: int) -> Outcome:
        return Outcome(uuid.uuid4(), uuid.uuid4(), "interval", 1, now, now, Decision.retry_at(ms, "failed"))

    outcomes = [retrying(ms) for ms in (1000, 400, 1000, 2500, 1001)]
    handoff.send_retries(outcomes, batch_size=2)
    ids = [str(o.execution_id) for o in outcomes]
    assert {name for name, _, _ in sent} == {"fire_overdue"}
    assert sorted((delay, tuple(batch)) for _, batch, delay in sent) == sorted(
        [(1000, (ids[0], ids[1])), (1000, (ids[2],)), (2000, (ids[4],)), (3000, (ids[3],))]
    )


def test_an_overdue_run_due_later_waits_in_the_queue_until_its_instant(private_broker):
    """A retry handed over again after Redis lost its queues keeps its backoff: its message is delayed to its instant,
    while a run due now goes at once."""
    from datetime import datetime, timedelta, timezone

    processed: dict[str, datetime] = {}

    def record(ids: list[str]) -> None:
        processed[ids[0]] = datetime.now(timezone.utc)

    overdue = dramatiq.actor(
        record, actor_name="lanes_delayed", queue_name=OVERDUE_QUEUE, priority=OVERDUE_PRIORITY, broker=private_broker
    )
    fresh = dramatiq.actor(record, actor_name="lanes_fresh_2", queue_name=FIRE_QUEUE, broker=private_broker)
    enqueue = queue_enqueuer(Settings(_env_file=None), fresh, overdue)
    sent_at = datetime.now(timezone.utc)
    later = Dispatch(uuid.uuid4(), 5, sent_at + timedelta(seconds=2), overdue=True)
    now = Dispatch(uuid.uuid4(), 5, overdue=True)
    assert asyncio.run(enqueue([later, now])) == []

    run_worker_until(private_broker, 2, lambda: len(processed) >= 2)
    assert set(processed) == {str(later.execution_id), str(now.execution_id)}
    assert processed[str(now.execution_id)] < later.due
    assert processed[str(later.execution_id)] >= later.due  # never before the instant it was due
