"""Domain events on NATS: `evt.scheduler.schedule.*` and `evt.scheduler.execution.*`.

Events are notifications, not the record (PostgreSQL is): they go out on core NATS after the change
commits, fire-and-forget, and a lost event never blocks or undoes a change. An execution event carries
the run's `correlation_id` and `traceparent` (also as a `traceparent` header).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger("services.events")

SCHEDULE_EVENT_PREFIX = "evt.scheduler.schedule."
EXECUTION_EVENT_PREFIX = "evt.scheduler.execution."


class EventSink(Protocol):
    async def emit(self, subject: str, body: dict[str, Any]) -> None: ...

    async def emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> None: ...


class NullEvents:
    """For tests and tools that do not need events."""

    async def emit(self, subject: str, body: dict[str, Any]) -> None:
        return None

    async def emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        return None


class RecordingEvents:
    """Keeps emitted events in memory (fast unit tests only)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    async def emit(self, subject: str, body: dict[str, Any]) -> None:
        self.emitted.append((subject, body))

    async def emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.emitted.extend(events)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _headers_of(body: dict[str, Any]) -> dict[str, str] | None:
    """An event about a run carries the run's W3C traceparent as a header too (None: no headers)."""
    traceparent = body.get("traceparent")
    return {"traceparent": traceparent} if traceparent else None


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=_default, separators=(",", ":")).encode()


class NatsEvents:
    """Publishes events through a `runtime.nats_client.NatsConnection`."""

    def __init__(self, nats_connection) -> None:
        self.nats = nats_connection

    async def emit(self, subject: str, body: dict[str, Any]) -> None:
        await self.emit_many([(subject, body)])

    async def emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish events in order; when NATS is unavailable the batch is dropped with ONE warning
        (a worker's batch carries two events per run: one line each flooded the logs in outages)."""
        if not events:
            return
        try:
            client = await self.nats.connection()
            for subject, body in events:
                await client.publish(subject, encode(body), headers=_headers_of(body))
        except Exception as error:  # events are best effort by design
            log.warning(
                "events not published",
                extra={
                    "action": "events.publish_failed",
                    "subject": events[0][0],
                    "count": len(events),
                    "error": str(error),
                },
            )
