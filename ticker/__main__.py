"""`python -m ticker`: run the ticker until SIGTERM/SIGINT.

Besides the loop, the process beats in Redis (services.presence: /health/detailed lists it) and serves
its metrics and probes on TICKER_METRICS_PORT (runtime.probes, checks from ticker.loop.Pulse).
"""

import asyncio
import signal

import redis.asyncio as redis

import actors  # noqa: F401  (installs the broker the actors send through)
from core.settings import Settings, get_settings
from core.tuning import REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS, TICKER_DATABASE_POOL_SIZE
from models.db import make_engine
from runtime import metrics
from runtime.logging import configure_process
from runtime.nats_client import NatsConnection
from runtime.probes import Check, serve_probes
from services.events import NatsEvents
from services.failures import FinalFailures
from services.liveness import WorkerRegistry, prefix_for
from services.locks import ScheduleLocks
from services.presence import TickerHeartbeat
from services.publisher import CommandPublisher
from ticker.dispatch import queue_enqueuer
from ticker.loop import Pulse, run_loop


def ticker_heartbeat(settings: Settings) -> TickerHeartbeat:
    return TickerHeartbeat(
        settings.REDIS_URL,
        settings.WORKER_HEARTBEAT_SECONDS,
        settings.WORKER_DEAD_AFTER_SECONDS,
        prefix_for(settings.BROKER_NAMESPACE),
    )


def probes_of(pulse: Pulse, beat: TickerHeartbeat) -> tuple[Check, Check]:
    """The ticker's /live and /ready checks: the loop's pulse, answered with the ticker's id."""

    def named(check: Check) -> Check:
        def answer() -> tuple[bool, dict]:
            healthy, details = check()
            return healthy, {"ticker_id": beat.worker_id, **details}

        return answer

    return named(pulse.live), named(pulse.ready)


async def main() -> None:
    settings = get_settings()
    configure_process("ticker")
    metrics.install(metrics.TICKER)
    pulse = Pulse()
    beat = ticker_heartbeat(settings)
    await asyncio.to_thread(beat.start)
    probes = serve_probes("ticker", settings.METRICS_HOST, settings.TICKER_METRICS_PORT, *probes_of(pulse, beat))
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
            pulse=pulse,
            failures=FinalFailures(engine, CommandPublisher(nats, settings.NATS_STREAM_CACHE_SECONDS), settings),
        )
    finally:
        await asyncio.to_thread(beat.stop)
        if probes is not None:
            probes.stop()
        await client.aclose()
        await nats.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
