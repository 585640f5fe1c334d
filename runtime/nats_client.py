"""One lazily (re)connected NATS client per process."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client as NATS


class NatsConnection:
    """Connects on first use and reconnects forever afterwards; never blocks start-up."""

    def __init__(self, url: str, name: str = "scheduler-service") -> None:
        self.url = url
        self.name = name
        self._client: NATS | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> NATS:
        client = self._client
        if client is not None and client.is_connected:
            return client
        async with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = await nats.connect(
                    servers=self.url.split(","),
                    name=self.name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                )
            if not self._client.is_connected:
                raise ConnectionError("NATS is reconnecting")
            return self._client

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.close()
