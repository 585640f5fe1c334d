"""services.presence against the real Redis: the live tickers and workers with their last beat, a
stopped or silent one dropped from the list, and the workers' hash left to the ticker's census."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from services.liveness import Heartbeat, WorkerRegistry
from services.presence import TickerHeartbeat, live_processes
from tests.support.servers import redis_url

REDIS_URL = redis_url()
BEAT = 0.2
DEAD_AFTER = 1.0


async def test_live_tickers_and_workers_are_listed_with_their_last_beat(redis_client, prefix):
    ticker = TickerHeartbeat(REDIS_URL, BEAT, DEAD_AFTER, prefix)
    worker = Heartbeat(REDIS_URL, BEAT, DEAD_AFTER, prefix, consumer_id="consumer-1")
    started = datetime.now(timezone.utc)
    ticker_id, worker_id = ticker.start(), worker.start()
    try:
        await asyncio.sleep(3 * BEAT)
        found = {(p.kind, p.id): p for p in await live_processes(redis_client, prefix)}
        assert set(found) == {("ticker", ticker_id), ("worker", worker_id)}
        for process in found.values():
            assert process.age_seconds is not None and 0 <= process.age_seconds < DEAD_AFTER
            assert abs((process.last_beat - started).total_seconds()) < 5  # Redis's clock is this host's
        assert ticker.beaten_at is not None and time.monotonic() - ticker.beaten_at < DEAD_AFTER
        assert ticker.running and worker.running
    finally:
        ticker.stop()
        worker.stop()
    assert await live_processes(redis_client, prefix) == []
    assert not ticker.running


async def test_a_silent_ticker_leaves_the_list_and_its_hash_but_a_departed_worker_stays_for_the_census(
    redis_client, prefix
):
    # Keys as a killed ticker and a killed worker leave them: a member in each hash, the key expiring.
    await redis_client.hset(f"{prefix}tickers", "gone-ticker", "")
    await redis_client.set(f"{prefix}ticker:gone-ticker", "1700000000000", px=100)
    await redis_client.hset(f"{prefix}workers", "gone-worker", "consumer-x")
    await redis_client.set(f"{prefix}worker:gone-worker", "1700000000000", px=100)
    await asyncio.sleep(0.3)

    assert await live_processes(redis_client, prefix) == []
    assert await redis_client.hkeys(f"{prefix}tickers") == []
    assert await redis_client.hkeys(f"{prefix}workers") == [b"gone-worker"]
    registry = WorkerRegistry(redis_client, 0, prefix)
    await redis_client.set(f"{prefix}workers:epoch", "1")  # warm: the census may name the departed
    assert (await registry.census()).departed == {"gone-worker": "consumer-x"}


async def test_a_worker_key_without_a_beat_time_is_listed_without_one(redis_client, prefix):
    await redis_client.hset(f"{prefix}workers", "older", "")
    await redis_client.set(f"{prefix}worker:older", "older", px=5000)
    [process] = await live_processes(redis_client, prefix)
    assert (process.kind, process.id, process.last_beat, process.age_seconds) == ("worker", "older", None, None)
