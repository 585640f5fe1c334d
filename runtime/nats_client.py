"""One lazily (re)connected NATS client per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS

from core.tuning import (
    FAILED_CONNECT_BACKOFF_SECONDS,
    INITIAL_CONNECT_TIMEOUT_SECONDS,
    NATS_ABANDON_TIMEOUT_SECONDS,
    NATS_CLOSE_TIMEOUT_SECONDS,
    NATS_CONNECT_TIMEOUT_SECONDS,
    NATS_RECONNECT_WAIT_SECONDS,
)

log = logging.getLogger("runtime.nats")


class NatsConnection:
    """Connects on first use and reconnects forever afterwards; never blocks start-up.

    nats-py's first `connect()` with unlimited reconnects never returns while the server is down,
    so the first connection attempt is bounded here; callers see ConnectionError and retry later.
    """

    def __init__(self, url: str, name: str = "scheduler-service", credentials: dict[str, str] | None = None) -> None:
        self.url = url
        self.name = name
        self.credentials = credentials or {}
        self._client: NATS | None = None
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None  # event-loop time of the last failed first connect

    @classmethod
    def from_settings(cls, settings, name: str) -> NatsConnection:
        """Authenticated with NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS_FILE when set."""
        credentials = {}
        if settings.NATS_USER:
            credentials.update(user=settings.NATS_USER, password=settings.NATS_PASSWORD or "")
        if settings.NATS_TOKEN:
            credentials["token"] = settings.NATS_TOKEN
        if settings.NATS_CREDS_FILE:
            credentials["user_credentials"] = settings.NATS_CREDS_FILE
        return cls(settings.NATS_URL, name=name, credentials=credentials)

    async def _on_error(self, error: Exception) -> None:
        log.debug("nats error", extra={"action": "nats.error", "error": str(error)})

    async def connection(self) -> NATS:
        client = self._client
        if client is not None and client.is_connected:
            return client
        async with self._lock:
            if self._client is None or self._client.is_closed:
                now = asyncio.get_running_loop().time()
                if self._failed_at is not None and now - self._failed_at < FAILED_CONNECT_BACKOFF_SECONDS:
                    raise ConnectionError(f"NATS at {self.url} unreachable (retrying shortly)")
                candidate = NATS()
                try:
                    await asyncio.wait_for(
                        candidate.connect(
                            servers=self.url.split(","),
                            name=self.name,
                            connect_timeout=NATS_CONNECT_TIMEOUT_SECONDS,
                            allow_reconnect=True,
                            max_reconnect_attempts=-1,
                            reconnect_time_wait=NATS_RECONNECT_WAIT_SECONDS,
                            # No buffering while disconnected: a publish then fails at once (and the run
                            # retries with backoff) instead of waiting in the client and going out on
                            # reconnect, after its attempt was already recorded failed and retried.
                            pending_size=-1,
                            error_cb=self._on_error,
                            **self.credentials,
                        ),
                        INITIAL_CONNECT_TIMEOUT_SECONDS,
                    )
                except BaseException as error:  # includes cancellation: never leave a half-open client
                    self._failed_at = asyncio.get_running_loop().time()
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(candidate.close(), NATS_ABANDON_TIMEOUT_SECONDS)
                    if isinstance(error, Exception):
                        raise ConnectionError(f"NATS at {self.url} unreachable: {type(error).__name__}") from error
                    raise
                self._client = candidate
            if not self._client.is_connected:
                raise ConnectionError("NATS is reconnecting")
            return self._client

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.close(), NATS_CLOSE_TIMEOUT_SECONDS)
