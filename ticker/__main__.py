"""`python -m ticker`: run the ticker until SIGTERM/SIGINT."""

import asyncio
import signal

import redis.asyncio as redis

import actors  # noqa: F401  (installs the broker the actors send through)
from core.settings import get_settings
from core.tuning import REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS, TICKER_DATABASE_POOL_SIZE
from models.db import make_engine
from runtime.logging import configure_process
from runtime.nats_client import NatsConnection
from services.events import NatsEvents
from services.liveness import WorkerRegistry, prefix_for
from services.locks import ScheduleLocks
from ticker.dispatch import queue_enqueuer
from ticker.loop import run_loop


async def main() -> None:
    settings = get_settings()
    configure_process("ticker")
    engine = make_engine(settings.DATABASE_URL, pool_size=TICKER_DATABASE_POOL_SIZE)
    nats = NatsConnection.from_settings(settings, name=f"{settings.SERVICE_NAME}-ticker")
    # Short timeouts: a Redis outage must not hold up the tick (the sweep then reaps by LOCK_TIMEOUT only).
    client = redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await run_loop(
            engine,
            settings,
            queue_enqueuer(settings),
            NatsEvents(nats),
            stop,
            workers=WorkerRegistry(client, settings.WORKER_DEAD_AFTER_SECONDS, prefix_for(settings.BROKER_NAMESPACE)),
            locks=ScheduleLocks(client, settings.LOCK_TIMEOUT_SECONDS),
        )
    finally:
        await client.aclose()
        await nats.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
