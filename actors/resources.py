"""Per-process clients of the worker, created lazily on the AsyncIO middleware's event loop."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from actors import heartbeat
from actors.handoff import HandOff
from core.settings import Settings, get_settings
from core.tuning import REDIS_CONNECT_TIMEOUT_SECONDS, WORKER_REDIS_SOCKET_TIMEOUT_SECONDS
from models.db import make_engine
from runtime import tracing
from runtime.nats_client import NatsConnection
from services.events import NatsEvents
from services.firing import FiringService
from services.locks import ScheduleLocks
from services.publisher import CommandPublisher


class WorkerResources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE)
        self.redis = redis.from_url(
            settings.REDIS_URL,
            socket_timeout=WORKER_REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        )
        self.nats = NatsConnection.from_settings(settings, name=f"{settings.SERVICE_NAME}-worker")
        self.events = NatsEvents(self.nats)
        self.firing = FiringService(
            self.engine,
            ScheduleLocks(self.redis, settings.LOCK_TIMEOUT_SECONDS),
            CommandPublisher(self.nats, settings.NATS_STREAM_CACHE_SECONDS),
            settings,
            worker_id=heartbeat.worker_id(),
            traces=tracing.SpanTraces() if tracing.enabled() else None,
        )
        self.hand_off = HandOff(self.nats_is_up, settings.DISPATCH_BATCH_SIZE)

    async def nats_is_up(self) -> bool:
        try:
            return (await self.nats.connection()).is_connected
        except Exception:
            return False


_resources: WorkerResources | None = None
_lock: asyncio.Lock | None = None


async def resources() -> WorkerResources:
    """The process's clients; built on first use, inside the event loop that will use them."""
    global _resources, _lock
    if _resources is None:
        _lock = _lock or asyncio.Lock()
        async with _lock:
            if _resources is None:
                _resources = WorkerResources(get_settings())
    return _resources
