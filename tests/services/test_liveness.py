"""Worker heartbeats against the real Redis: a killed or frozen process is named dead, a live one never;
Redis losing its data names nobody dead until the heartbeats are back; Redis unreachable names nobody."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import redis.asyncio as redis

from services.liveness import Heartbeat, WorkerRegistry
from tests.support.harness import ROOT
from tests.support.servers import redis_url

REDIS_URL = redis_url()
DEAD_AFTER = 3.0
BEAT = 0.2

_BEATING_PROCESS = """
import sys, time
from services.liveness import Heartbeat
print(Heartbeat(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]).start(), flush=True)
time.sleep(120)
"""


def beating_process(prefix: str, consumer_id: str = "") -> subprocess.Popen:
    """Another process that beats under `prefix`; it prints its worker id first."""
    return subprocess.Popen(
        [sys.executable, "-c", _BEATING_PROCESS, REDIS_URL, str(BEAT), str(DEAD_AFTER), prefix, consumer_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def eventually(check, timeout: float = 15.0, message: str = ""):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, message
        await asyncio.sleep(0.1)


async def test_a_killed_or_frozen_worker_is_named_dead_and_a_live_one_is_not(redis_client, prefix):
    registry = WorkerRegistry(redis_client, DEAD_AFTER, prefix)
    alive = Heartbeat(REDIS_URL, BEAT, DEAD_AFTER, prefix)
    alive_id = alive.start()
    process = beating_process(prefix)
    try:
        victim_id = process.stdout.readline().strip()
        assert victim_id and victim_id != alive_id
        never_beaten = "host:1:never"
        # Right after the first beats the registry is not warm yet: nobody is named dead, not even a
        # claimer that never beat (its heartbeat may simply not be back yet after a Redis restart).
        assert await registry.dead_among([never_beaten]) == set()
        await eventually(lambda: registry.dead_among([never_beaten]), message="the registry never warmed up")

        # Frozen (SIGSTOP): dead once its key expires; alive again when it resumes.
        os.kill(process.pid, signal.SIGSTOP)
        dead = await eventually(lambda: registry.dead_among([alive_id, victim_id]), message="the frozen worker")
        assert dead == {victim_id}
        os.kill(process.pid, signal.SIGCONT)
        await eventually(lambda: _is_alive(registry, victim_id), message="the resumed worker beats again")

        # Killed: dead once its key expires, for good; the live worker never was.
        process.kill()
        dead = await eventually(lambda: registry.dead_among([alive_id, victim_id]), message="the killed worker")
        assert dead == {victim_id}
        await asyncio.sleep(DEAD_AFTER)
        assert await registry.dead_among([alive_id, victim_id]) == {victim_id}
    finally:
        process.kill()
        process.wait()
        alive.stop()
    # A clean stop removes the key at once.
    assert not await redis_client.exists(alive.key)
    assert await registry.dead_among([alive_id]) == {alive_id}


async def _is_alive(registry: WorkerRegistry, worker_id: str) -> bool:
    return worker_id not in await registry.dead_among([worker_id])


async def test_redis_losing_its_data_names_nobody_dead_until_the_heartbeats_are_back(redis_client, prefix):
    registry = WorkerRegistry(redis_client, DEAD_AFTER, prefix)
    worker = Heartbeat(REDIS_URL, BEAT, DEAD_AFTER, prefix)
    worker_id = worker.start()
    try:
        await redis_client.set(f"{prefix}workers:epoch", 0)  # warm long ago
        assert await registry.dead_among([worker_id, "gone"]) == {"gone"}
        # What a restart without persistence does to these keys:
        await redis_client.delete(f"{prefix}workers:epoch", worker.key)
        for _ in range(5):  # 2 s into the warm-up (4 s) after the loss: nobody is named dead, though the
            # live worker's key is missing until its next beat and "gone" has none at all
            assert await registry.dead_among([worker_id, "gone"]) == set()
            await asyncio.sleep(0.4)
        await eventually(lambda: registry.dead_among([worker_id, "gone"]), message="warm again")
        assert await registry.dead_among([worker_id, "gone"]) == {"gone"}
    finally:
        worker.stop()


async def test_redis_unreachable_names_nobody_dead_and_a_heartbeat_survives_it(prefix):
    unreachable = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        assert await WorkerRegistry(unreachable, DEAD_AFTER, prefix).dead_among(["anyone"]) == set()
    finally:
        await unreachable.aclose()
    worker = Heartbeat("redis://127.0.0.1:1/0", BEAT, DEAD_AFTER, prefix)
    assert worker.start()  # the process starts and keeps working; its runs fall back to LOCK_TIMEOUT
    assert worker.beat() is False
    worker.stop()


async def test_the_census_reports_a_departed_worker_until_a_ticker_takes_it_and_never_a_clean_stop(
    redis_client, prefix
):
    """A killed worker may hold prefetched queue messages no claim names: the census reports it, with its
    Dramatiq consumer id, once its key is gone, until one ticker takes it out of the hash."""
    registry = WorkerRegistry(redis_client, DEAD_AFTER, prefix)
    stopped = Heartbeat(REDIS_URL, BEAT, DEAD_AFTER, prefix, consumer_id="consumer-stopped")
    stopped_id = stopped.start()
    process = beating_process(prefix, consumer_id="consumer-killed")
    try:
        victim_id = process.stdout.readline().strip()
        await redis_client.set(f"{prefix}workers:epoch", 0)  # warm long ago
        assert (await registry.census()).departed == {}
        stopped.stop()  # a clean stop: Dramatiq requeued its messages itself, nothing to release
        process.kill()
        census = await eventually(lambda: _departed(registry), message="the killed worker departs")
        assert census.departed == {victim_id: "consumer-killed"} and not census.queues_lost
        assert (await registry.census()).departed == census.departed  # reported until taken
        other_ticker = WorkerRegistry(redis_client, DEAD_AFTER, prefix)
        assert (await other_ticker.census()).departed == census.departed
        assert await registry.take(census.departed) == [victim_id]
        assert await other_ticker.take(census.departed) == []  # one ticker acts on a death, not each
        assert (await registry.census()).departed == {}
        assert not await redis_client.hexists(f"{prefix}workers", stopped_id)
    finally:
        process.kill()
        process.wait()
        stopped.stop()


async def test_releasing_a_dead_consumer_marks_it_silent_in_dramatiqs_heartbeats(redis_client, prefix):
    """Dramatiq requeues the unacked messages of consumers whose heartbeat score is older than its
    timeout; the registry sets the score of a dead one to 0, and never adds one Dramatiq removed."""
    heartbeats = f"{prefix}__heartbeats__"
    await redis_client.zadd(heartbeats, {"dead-consumer": 1_800_000_000_000, "live-consumer": 1_800_000_000_000})
    registry = WorkerRegistry(redis_client, DEAD_AFTER, prefix)
    assert await registry.release_consumers(["dead-consumer", "gone-consumer", ""]) == 1
    assert await redis_client.zscore(heartbeats, "dead-consumer") == 0
    assert await redis_client.zscore(heartbeats, "live-consumer") == 1_800_000_000_000
    assert await redis_client.zscore(heartbeats, "gone-consumer") is None


async def _departed(registry: WorkerRegistry):
    census = await registry.census()
    return census if census.departed else None


async def test_the_census_reports_redis_losing_its_queues_once(redis_client, prefix):
    registry = WorkerRegistry(redis_client, DEAD_AFTER, prefix)
    worker = Heartbeat(REDIS_URL, BEAT, DEAD_AFTER, prefix)
    worker.start()
    try:
        first = await registry.census()  # the first census of a process cannot tell a loss
        assert not first.queues_lost and not first.departed
        assert not (await registry.census()).queues_lost
        await redis_client.delete(f"{prefix}workers:epoch", f"{prefix}workers", worker.key)  # a restart, empty
        assert (await registry.census()).queues_lost
        await eventually(lambda: redis_client.exists(f"{prefix}workers:epoch"), message="the worker beats again")
        later = [await registry.census() for _ in range(3)]
        assert not any(c.queues_lost for c in later) and not any(c.departed for c in later)  # warming up
    finally:
        worker.stop()
    unreachable = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        census = await WorkerRegistry(unreachable, DEAD_AFTER, prefix).census()
        assert not census.queues_lost and not census.departed
    finally:
        await unreachable.aclose()
