"""Deliver rendered commands to NATS.

`auto` mode publishes through JetStream and awaits the PubAck when a stream covers the subject (the
stream then drops a repeat of the same `Nats-Msg-Id` within its duplicate window), otherwise it is a
core publish confirmed by a barrier: a message to our own inbox, published after the commands on the
same connection; its echo proves the server has processed them (see `AckInbox.barrier` for why not
nats-py's `flush`). `request` mode waits for a reply; an error reply
(`Nats-Service-Error` header, or a JSON body with `error` or `"success": false`) is a failure.
A batch is published concurrently: one round trip's latency for the lot, not one per command.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

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
    written_at: float | None = None  # when its publish began (epoch seconds); None if never attempted
    # When its outcome was known (epoch seconds): the PubAck, barrier echo or reply arrived, or the
    # attempt failed or timed out; None if never attempted.
    settled_at: float | None = None
    # The failure is ours, not the target's: NATS was unreachable, or the connection was down when the
    # attempt ended (the command may or may not have reached the server).
    unreachable: bool = False
    # Written but not confirmed (no PubAck, no barrier echo, no reply in time): the server may have it.
    may_have_published: bool = False


def reply_error(headers: dict[str, str] | None, data: bytes) -> str | None:
    """The error an RPC reply carries, or None for a successful reply."""
    if headers and (headers.get("Nats-Service-Error") or headers.get("Nats-Service-Error-Code")):
        return (
            f"error reply: {headers.get('Nats-Service-Error-Code', '')} {headers.get('Nats-Service-Error', '')}".strip()
        )
    try:
        body = json.loads(data) if data else None
    except ValueError:
        return None
    if isinstance(body, dict) and (body.get("error") or body.get("success") is False):
        return f"error reply: {json.dumps(body.get('error') or body)[:500]}"
    return None


class AckInbox:
    """PubAcks of JetStream publishes, collected through ONE wildcard reply subscription.

    nats-py's `js.publish` is a request per message: a random token (os.urandom), a future, a
    `wait_for` timer and a response-map entry each, too costly with hundreds of commands due at one
    instant (bench/RESULTS.md has the profile). Here a publish is a plain
    publish with reply subject `<inbox>.<counter>`, so all commands of an instant leave in one
    tight loop, and their acks are awaited together afterwards under one timeout. The same
    subscription receives the echo of `barrier` messages, which confirm core publishes.
    """

    def __init__(self) -> None:
        self._client: Any = None
        self._prefix = ""
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future] = {}

    async def _ensure(self, client: Any) -> None:
        if client is self._client:
            return  # nats-py re-subscribes after a reconnect on its own
        self._prefix = client.new_inbox()
        await client.subscribe(self._prefix + ".*", cb=self._on_reply)
        self._client = client

    async def _on_reply(self, msg: Any) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) + 1 :], None)
        if future is not None and not future.done():
            future.set_result((msg, time.time()))

    async def publish(
        self, client: Any, subject: str, body: bytes, headers: dict[str, str]
    ) -> tuple[str, asyncio.Future]:
        """Publish; returns (token, future), the future resolving to the server's reply (a PubAck, an
        error or a status) and its arrival (epoch seconds)."""
        return await self._expect(
            client, lambda token: client.publish(subject, body, reply=f"{self._prefix}.{token}", headers=headers)
        )

    async def barrier(self, client: Any) -> tuple[str, asyncio.Future]:
        """Publish an empty message to our own inbox; returns (token, future), the future resolving when
        the server echoes it back (to the echo and its arrival, epoch seconds).

        A NATS server processes one connection's messages in order, so the echo proves that every
        publish written before the barrier on this connection reached the server and was routed to
        the subscribers it had. nats-py's `flush()` cannot prove that: it writes its PING straight to
        the socket while earlier publishes still wait in the client's pending buffer, so the PING
        travels AHEAD of them (seen on the wire with nats-py 2.16), and a server stopping or a
        connection breaking right after the PONG loses publishes that `flush` had confirmed.
        """
        return await self._expect(client, lambda token: client.publish(f"{self._prefix}.{token}", b""))

    async def _expect(self, client: Any, send: Callable[[str], Awaitable[None]]) -> tuple[str, asyncio.Future]:
        """Register a future under a new token, then `send(token)`; the reply to `<inbox>.<token>`
        resolves it. A failed send leaves no entry behind."""
        await self._ensure(client)
        token = str(next(self._tokens))
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await send(token)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return token, future

    def forget(self, tokens: list[str]) -> None:
        """Drop the entries of replies that will not be awaited any more (timed out)."""
        for token in tokens:
            self._pending.pop(token, None)


def pub_ack(reply: Any, stream: str) -> Delivery:
    """The Delivery a JetStream reply stands for: a PubAck, an API error, or a status such as 503."""
    status = (reply.headers or {}).get("Status") if reply.headers else None
    if status and status != "200":
        return Delivery(False, "jetstream", error=f"no stream answered (status {status})")
    try:
        body = json.loads(reply.data)
    except ValueError:
        return Delivery(False, "jetstream", error="unreadable PubAck")
    if "error" in body:
        return Delivery(False, "jetstream", error=f"APIError: {json.dumps(body['error'])[:400]}")
    return Delivery(True, "jetstream", body.get("stream", stream), body.get("seq"), bool(body.get("duplicate")))


class CommandPublisher:
    def __init__(self, nats_connection, stream_cache_seconds: float = 30.0) -> None:
        self.nats = nats_connection
        self.stream_cache_seconds = stream_cache_seconds
        self._streams: dict[str, tuple[float, str | None]] = {}
        self._acks = AckInbox()

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
        """Publish a batch, each command at its `delay_seconds`; one Delivery per command, in order.

        Commands due at the same instant are written in one tight loop; JetStream acks, request
        replies and the core barrier are then awaited concurrently.
        """
        if not batch:
            return []
        try:
            client = await self.nats.connection()
        except Exception as error:
            return [Delivery(False, "none", error=f"NATS unavailable: {error}", unreachable=True) for _ in batch]
        results: list[Delivery | None] = [None] * len(batch)
        acks: list[tuple[int, str, tuple[str, asyncio.Future]]] = []
        waits: list[asyncio.Task] = []
        core_indexes: list[int] = []
        written: dict[int, float] = {}
        started = time.monotonic()
        for index in sorted(range(len(batch)), key=lambda i: batch[i].delay_seconds):
            item = batch[index]
            wait = item.delay_seconds - (time.monotonic() - started)
            if wait > 0:
                await asyncio.sleep(wait)
            if not client.is_connected:  # lost while holding: nothing written, so certainly not published
                results[index] = Delivery(
                    False, item.mode, error="NATS connection lost before publishing", unreachable=True
                )
                continue
            written[index] = time.time()
            await self._write(client, item, index, results, acks, waits, core_indexes)
        waits.extend(self._confirmations(client, batch, acks, core_indexes, results))
        if waits:
            await asyncio.gather(*waits)
        lost = not client.is_connected
        return [
            replace(r, written_at=written.get(i), unreachable=r.unreachable or (lost and not r.ok))
            if r is not None
            else Delivery(False, "none", error="not attempted")
            for i, r in enumerate(results)
        ]

    async def _write(
        self,
        client: Any,
        item: Outgoing,
        index: int,
        results: list[Delivery | None],
        acks: list[tuple[int, str, tuple[str, asyncio.Future]]],
        waits: list[asyncio.Task],
        core_indexes: list[int],
    ) -> None:
        """Writes one command: a request starts as a task in `waits`, a core publish joins `core_indexes`,
        a JetStream publish adds its pending ack to `acks`; a failure to write is the command's result."""
        try:
            if item.mode == "request":
                waits.append(asyncio.ensure_future(self._request(client, item, index, results)))
                return
            stream = await self.stream_for(item.subject)
            if stream is None:
                await client.publish(item.subject, item.body, headers=item.headers)
                core_indexes.append(index)
                return
            headers = {**item.headers, "Nats-Expected-Stream": stream}
            acks.append((index, stream, await self._acks.publish(client, item.subject, item.body, headers)))
        except Exception as error:
            results[index] = Delivery(
                False,
                item.mode,
                error=f"{type(error).__name__}: {error}"[:500],
                may_have_published=isinstance(error, TimeoutError),
                settled_at=time.time(),
            )

    def _confirmations(
        self,
        client: Any,
        batch: list[Outgoing],
        acks: list[tuple[int, str, tuple[str, asyncio.Future]]],
        core_indexes: list[int],
        results: list[Delivery | None],
    ) -> list[asyncio.Task]:
        """Tasks awaiting the JetStream acks and the core barrier, each bounded by its commands' longest timeout."""
        tasks = []
        if acks:
            tasks.append(
                asyncio.ensure_future(
                    self._await_acks(acks, max(batch[i].timeout_seconds for i, _, _ in acks), results)
                )
            )
        if core_indexes:
            tasks.append(
                asyncio.ensure_future(
                    self._confirm_core(
                        client, core_indexes, max(batch[i].timeout_seconds for i in core_indexes), results
                    )
                )
            )
        return tasks

    async def _request(self, client: Any, item: Outgoing, index: int, results: list[Delivery | None]) -> None:
        try:
            reply = await client.request(item.subject, item.body, timeout=item.timeout_seconds, headers=item.headers)
            problem = reply_error(reply.headers, reply.data)
            results[index] = Delivery(problem is None, "request", error=problem, settled_at=time.time())
        except Exception as error:
            timed_out = isinstance(error, TimeoutError)
            results[index] = Delivery(
                False,
                "request",
                error=f"{type(error).__name__}: {error}"[:500],
                may_have_published=timed_out,
                settled_at=time.time(),
            )

    async def _await_acks(
        self, acks: list[tuple[int, str, tuple[str, asyncio.Future]]], timeout: float, results: list[Delivery | None]
    ) -> None:
        await asyncio.wait([future for _, _, (_, future) in acks], timeout=timeout)
        late: list[str] = []
        for index, stream, (token, future) in acks:
            if future.done():
                reply, arrived_at = future.result()
                results[index] = replace(pub_ack(reply, stream), settled_at=arrived_at)
            else:
                future.cancel()
                late.append(token)
                results[index] = Delivery(
                    False,
                    "jetstream",
                    error="TimeoutError: no PubAck in time",
                    may_have_published=True,
                    settled_at=time.time(),
                )
        self._acks.forget(late)

    async def _confirm_core(
        self, client: Any, indexes: list[int], timeout: float, results: list[Delivery | None]
    ) -> None:
        """Core publishes succeed when the barrier after them comes back within `timeout` seconds."""
        token = None
        try:
            token, echo = await self._acks.barrier(client)
            _, echoed_at = await asyncio.wait_for(echo, timeout)
            confirmed = Delivery(True, "core", settled_at=echoed_at)
        except Exception as error:
            if token is not None:
                self._acks.forget([token])
            if isinstance(error, asyncio.TimeoutError):
                error = TimeoutError(f"NATS did not confirm within {timeout:g} s")
            confirmed = Delivery(
                False,
                "core",
                error=f"flush failed: {type(error).__name__}: {error}"[:500],
                may_have_published=True,
                settled_at=time.time(),
            )
        for index in indexes:
            results[index] = confirmed
