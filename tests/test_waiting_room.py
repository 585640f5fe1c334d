"""Runs waiting for NATS: kept while it is unreachable, sent on once when it is back (actors.waiting_room).

The first two tests drive the room with a switch for "is NATS up" (pure logic); the last one with a
real nats-server that is stopped and started again, through the worker's own NatsConnection.
"""

from __future__ import annotations

import asyncio
import time

from actors.waiting_room import WaitingRoom
from runtime.nats_client import NatsConnection
from tests.support.servers import PrivateNats


async def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_ids_wait_while_down_and_go_once_in_the_order_they_failed_when_up():
    up = False
    sent: list[list[str]] = []

    async def is_up() -> bool:
        return up

    room = WaitingRoom(is_up, sent.append, poll_seconds=0.01)
    room.park(["a", "b"])
    await asyncio.sleep(0.2)
    room.park(["b", "c"])  # a run that failed twice (the sweep's copy) is sent once
    await asyncio.sleep(0.2)
    assert sent == [] and len(room) == 3
    up = True
    await wait_until(lambda: sent)
    await asyncio.sleep(0.2)
    assert sent == [["a", "b", "c"]] and len(room) == 0


async def test_ids_stay_when_the_queue_is_unreachable_and_go_at_the_next_check():
    calls: list[list[str]] = []

    async def is_up() -> bool:
        return True

    def send(ids: list[str]) -> None:
        calls.append(ids)
        if len(calls) == 1:
            raise ConnectionError("redis down")

    room = WaitingRoom(is_up, send, poll_seconds=0.01)
    room.park(["x", "y"])
    await wait_until(lambda: len(calls) == 2)
    assert calls == [["x", "y"], ["x", "y"]] and len(room) == 0


async def test_with_a_real_nats_server_the_ids_go_when_it_is_back():
    sent: list[list[str]] = []
    with PrivateNats() as server:
        connection = NatsConnection(server.url, name="waiting-room-test")
        assert (await connection.connection()).is_connected

        async def is_up() -> bool:
            try:
                return (await connection.connection()).is_connected
            except Exception:
                return False

        room = WaitingRoom(is_up, sent.append, poll_seconds=0.05)
        try:
            await asyncio.to_thread(server.stop)
            room.park(["r1", "r2"])
            await asyncio.sleep(3)  # several checks, and the client's reconnect attempts, while it is down
            assert sent == [] and len(room) == 2
            await asyncio.to_thread(server.start)
            await wait_until(lambda: sent, timeout=30)
            assert sent == [["r1", "r2"]] and len(room) == 0
        finally:
            await connection.close()
