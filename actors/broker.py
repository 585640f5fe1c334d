"""The Dramatiq broker: Redis, with the recovery knobs set explicitly.

A killed worker's messages return only through the Redis broker's "maintenance", which runs with
probability maintenance_chance / 1e6 per fetch and only after heartbeat_timeout (ms). The service does
not rely on it (PostgreSQL's outbox sweep re-enqueues lost runs), but sets both so recovery through the
broker is also bounded.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, CurrentMessage

from actors.heartbeat import WorkerHeartbeat
from core.settings import Settings

FIRE_QUEUE = "scheduler-fire"


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
    return broker


def install_broker(settings: Settings) -> RedisBroker:
    broker = make_broker(settings)
    dramatiq.set_broker(broker)
    return broker
