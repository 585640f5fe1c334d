"""When a core publish counts as delivered: against the real NATS server, through a TCP proxy that can
hold the client's traffic or cut the connection (faults a test cannot ask the system server for)."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlsplit

import nats
import pytest

from runtime.nats_client import NatsConnection
from services.publisher import CommandPublisher, Outgoing
from tests.support.servers import nats_url
from tests.support.tcp_proxy import TcpProxy

NATS_HOST, NATS_PORT = urlsplit(nats_url()).hostname, urlsplit(nats_url()).port


class NatsProxy(TcpProxy):
    """Forwards TCP between clients and the NATS server.

    `holding`: the client's bytes are swallowed except PINGs, so the server keeps answering PINGs but
    never sees a publish (a connection dying behind a PONG).
    """

    def __init__(self) -> None:
        super().__init__(NATS_HOST, NATS_PORT)
        self.holding = False

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def from_client(self, chunk: bytes) -> bytes:
        return b"PING\r\n" * chunk.count(b"PING\r\n") if self.holding else chunk


async def wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def proxy():
    p = NatsProxy()
    await p.start()
    yield p
    await p.cut()


@pytest.fixture
async def observer():
    """A subscriber connected to the server directly, and the messages it received (subject, body)."""
    client = await nats.connect(f"nats://{NATS_HOST}:{NATS_PORT}")
    received: list[tuple[str, bytes]] = []

    async def on_message(msg) -> None:
        received.append((msg.subject, msg.data))

    subject = f"test.publisher.{uuid.uuid4().hex}"
    await client.subscribe(subject + ".>", cb=on_message)
    await client.flush()
    yield subject, received
    await client.close()


@pytest.fixture
async def connection(proxy):
    """The service's NATS connection, through the proxy."""
    conn = NatsConnection(proxy.url, name="test-publisher")
    yield conn
    await conn.close()


def command(subject: str, body: bytes, **kw) -> Outgoing:
    return Outgoing(execution_id=str(uuid.uuid4()), subject=subject, body=body, headers={}, **kw)


async def test_a_core_publish_counts_as_delivered_only_once_the_server_has_it(proxy, observer, connection):
    subject, received = observer
    publisher = CommandPublisher(connection)
    [first] = await publisher.deliver_many([command(f"{subject}.a", b"first")])
    assert first.ok and first.via == "core"
    await wait_until(lambda: (f"{subject}.a", b"first") in received)

    # The server still answers PINGs (a flush would succeed) but receives none of the publishes.
    proxy.holding = True
    [second] = await publisher.deliver_many([command(f"{subject}.a", b"second", timeout_seconds=1.0)])
    assert not second.ok and not second.unreachable  # connected but unconfirmed: the schedule's backoff
    assert "did not confirm" in (second.error or "")
    assert (f"{subject}.a", b"second") not in received


async def test_a_command_held_while_the_connection_drops_fails_and_is_not_sent_on_reconnect(
    proxy, observer, connection
):
    subject, received = observer
    publisher = CommandPublisher(connection)
    [warm] = await publisher.deliver_many([command(f"{subject}.x", b"warm")])
    assert warm.ok
    client = await connection.connection()

    # Held half a second for its instant; the connection drops meanwhile.
    held = asyncio.ensure_future(
        publisher.deliver_many([command(f"{subject}.x", b"held", delay_seconds=0.5, timeout_seconds=1.0)])
    )
    await asyncio.sleep(0.1)
    await proxy.cut()
    [outcome] = await held
    assert not outcome.ok and outcome.unreachable  # our outage: retried soon, no retry spent

    await proxy.restore()
    await wait_until(lambda: client.is_connected)
    # Anything nats-py had buffered would be written on reconnect, before this later publish.
    [later] = await publisher.deliver_many([command(f"{subject}.x", b"later")])
    assert later.ok
    await wait_until(lambda: (f"{subject}.x", b"later") in received)
    assert (f"{subject}.x", b"held") not in received


async def test_each_delivery_says_when_its_outcome_was_known_a_reply_included(connection):
    """settled_at - written_at is the publish's duration: a request's covers the responder's wait."""
    responder = await nats.connect(f"nats://{NATS_HOST}:{NATS_PORT}")
    subject = f"test.publisher.{uuid.uuid4().hex}"

    async def slow_reply(msg) -> None:
        await asyncio.sleep(0.3)
        await msg.respond(b'{"ok": true}')

    await responder.subscribe(f"{subject}.rpc", cb=slow_reply)
    await responder.flush()
    try:
        publisher = CommandPublisher(connection)
        core, request = await publisher.deliver_many(
            [command(f"{subject}.core", b"c"), command(f"{subject}.rpc", b"r", mode="request", timeout_seconds=5)]
        )
        assert core.ok and request.ok and request.via == "request"
        assert 0 <= core.settled_at - core.written_at < 0.3
        assert 0.3 <= request.settled_at - request.written_at < 5
    finally:
        await responder.close()
