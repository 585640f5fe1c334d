"""The Dramatiq broker: Redis, with the recovery knobs set explicitly.

A killed worker's messages return through the Redis broker's "maintenance", which runs with
probability maintenance_chance / 1e6 per command on a queue, for the consumers whose broker heartbeat
is heartbeat_timeout (ms) old. The ticker marks the consumer of a worker whose own heartbeat lapsed as
dead at once (services.liveness), so its prefetched messages come back within seconds; PostgreSQL's
outbox sweep re-enqueues lost runs anyway after REENQUEUE_AFTER_SECONDS.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, CurrentMessage, Middleware

from actors.heartbeat import WorkerHeartbeat
from actors.probes import WorkerProbes
from core.settings import Settings, get_settings
from runtime import tracing
from runtime.logging import configure_process

FIRE_QUEUE = "scheduler-fire"
# Runs that are already late and were handed over once before (lost hand-overs, overdue retries, runs
# reaped from a dead worker). Their own queue and a better actor priority: a worker takes them before
# the fresh slots it has prefetched, instead of after a catch-up backlog that may take tens of seconds.
OVERDUE_QUEUE = "scheduler-fire-overdue"


class ProcessSetup(Middleware):
    """Configures the service's log format and tracing in each Dramatiq worker process once it has
    booted (its stderr is then the pipe through which Dramatiq's parent process writes its lines)."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        configure_process("worker")
        tracing.setup(get_settings(), "worker")


def make_broker(settings: Settings) -> RedisBroker:
    broker = RedisBroker(
        url=settings.REDIS_URL,
        namespace=settings.BROKER_NAMESPACE,
        heartbeat_timeout=settings.BROKER_HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=settings.BROKER_MAINTENANCE_CHANCE,
    )
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(WorkerHeartbeat(settings))
    broker.add_middleware(WorkerProbes(settings))
    broker.add_middleware(ProcessSetup())
    return broker


def install_broker(settings: Settings) -> RedisBroker:
    broker = make_broker(settings)
    dramatiq.set_broker(broker)
    return broker
