"""Deliver rendered commands to NATS.

`auto` mode publishes through JetStream and awaits the PubAck when a stream covers the subject (the
stream then drops a repeat of the same `Nats-Msg-Id` within its duplicate window), otherwise it is a
core publish confirmed by a flush round trip. `request` mode waits for a reply; an error reply
(`Nats-Service-Error` header, or a JSON body with `error` or `"success": false`) is a failure.
A batch is published concurrently: one round trip's latency for the lot, not one per command.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from nats.js.errors import NotFoundError

MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True)
class Outgoing:
    execution_id: str
    subject: str
    body: bytes
    headers: dict[str, str]
    mode: str = "auto"
    timeout_seconds: float = 5.0
    delay_seconds: float = 0.0  # hold the publish this long (a run claimed ahead of its instant)


@dataclass(frozen=True)
class Delivery:
    ok: bool
    via: str  # "jetstream", "core" or "request"
    stream: str | None = None
    sequence: int | None = None
    duplicate: bool = False
    error: str | None = None


def reply_error(headers: dict[str, str] | None, data: bytes) -> str | None:
    """The error an RPC reply carries, or None for a successful reply."""
    if headers and (headers.get("Nats-Service-Error") or headers.get("Nats-Service-Error-Code")):
        return f"error reply: {headers.get('Nats-Service-Error-Code', '')} {headers.get('Nats-Service-Error', '')}".strip()
    try:
        body = json.loads(data) if data else None
    except ValueError:
        return None
    if isinstance(body, dict) and (body.get("error") or body.get("success") is False):
        return f"error reply: {json.dumps(body.get('error') or body)[:500]}"
    return None


class CommandPublisher:
    def __init__(self, nats_connection, stream_cache_seconds: float = 30.0) -> None:
        self.nats = nats_connection
        self.stream_cache_seconds = stream_cache_seconds
        self._streams: dict[str, tuple[float, str | None]] = {}

    async def stream_for(self, subject: str) -> str | None:
        """The JetStream stream covering `subject`, cached for `stream_cache_seconds`."""
        cached = self._streams.get(subject)
        if cached and time.monotonic() - cached[0] < self.stream_cache_seconds:
            return cached[1]
        client = await self.nats.connection()
        try:
            stream = await client.jetstream().find_stream_name_by_subject(subject)
        except NotFoundError:
            stream = None
        self._streams[subject] = (time.monotonic(), stream)
        return stream

    async def deliver_many(self, batch: list[Outgoing]) -> list[Delivery]:
        if not batch:
            return []
        try:
            client = await self.nats.connection()
        except Exception as error:
            return [Delivery(False, "none", error=f"NATS unavailable: {error}") for _ in batch]
        core_indexes: list[int] = []
        results: list[Delivery | None] = [None] * len(batch)
        js = client.jetstream()  # one context for the batch (building one per publish showed in the profile)

        async def one(index: int, item: Outgoing) -> None:
            if item.delay_seconds > 0:
                await asyncio.sleep(item.delay_seconds)
            try:
                if item.mode == "request":
                    reply = await client.request(item.subject, item.body, timeout=item.timeout_seconds, headers=item.headers)
                    problem = reply_error(reply.headers, reply.data)
                    results[index] = Delivery(problem is None, "request", error=problem)
                    return
                stream = await self.stream_for(item.subject)
                if stream is None:
                    await client.publish(item.subject, item.body, headers=item.headers)
                    core_indexes.append(index)
                    return
                ack = await js.publish(
                    item.subject, item.body, timeout=item.timeout_seconds, stream=stream, headers=item.headers
                )
                results[index] = Delivery(True, "jetstream", ack.stream, ack.seq, bool(ack.duplicate))
            except Exception as error:
                results[index] = Delivery(False, item.mode, error=f"{type(error).__name__}: {error}"[:500])

        await asyncio.gather(*(one(i, item) for i, item in enumerate(batch)))
        if core_indexes:
            # A core publish is only buffered until the server answers a PING after it.
            try:
                await client.flush(timeout=max(item.timeout_seconds for item in batch))
                flushed = Delivery(True, "core")
            except Exception as error:
                flushed = Delivery(False, "core", error=f"flush failed: {type(error).__name__}: {error}"[:500])
            for index in core_indexes:
                results[index] = flushed
        return [r if r is not None else Delivery(False, "none", error="not attempted") for r in results]
