"""executionEvents over a real WebSocket (graphql-transport-ws), fed by events published on real NATS."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import nats
from fastapi.testclient import TestClient

from runtime.http import create_app
from tests.support.servers import nats_url

SUBSCRIBE = (
    """subscription($id: UUID) { executionEvents(scheduleId: $id) { event executionId scheduleId status attempt } }"""
)


def publish_until(stop: threading.Event, events: list[tuple[str, dict]]) -> None:
    """Publish the events every 200 ms until told to stop (the subscription starts asynchronously)."""

    async def run():
        client = await nats.connect(nats_url())
        while not stop.is_set():
            for subject, body in events:
                await client.publish(subject, json.dumps(body).encode())
            await client.flush()
            await asyncio.sleep(0.2)
        await client.close()

    asyncio.run(run())


def create_schedule(http, name: str) -> str:
    body = {"name": name, "schedule_type": "interval", "interval_seconds": 3600, "target_command": "cmd.test.sub"}
    response = http.post("/api/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_execution_events_stream_only_the_requested_schedule(settings, clean_db):
    execution = str(uuid.uuid4())
    stop = threading.Event()
    with TestClient(create_app(settings)) as http:
        wanted, other = create_schedule(http, "wanted"), create_schedule(http, "other")
        events = [
            (
                "evt.scheduler.execution.succeeded",
                {"execution_id": str(uuid.uuid4()), "schedule_id": other, "status": "succeeded", "attempt": 1},
            ),
            (
                "evt.scheduler.execution.succeeded",
                {"execution_id": execution, "schedule_id": wanted, "status": "succeeded", "attempt": 2},
            ),
        ]
        publisher = threading.Thread(target=publish_until, args=(stop, events), daemon=True)
        with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init"})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {"id": wanted}}})
            publisher.start()
            try:
                message = ws.receive_json()
            finally:
                stop.set()
            assert message["type"] == "next", message
            event = message["payload"]["data"]["executionEvents"]
            assert event == {
                "event": "succeeded",
                "executionId": execution,
                "scheduleId": wanted,
                "status": "SUCCEEDED",
                "attempt": 2,
            }
            ws.send_json({"id": "1", "type": "complete"})
    publisher.join(timeout=5)


def test_subscription_with_a_bad_variable_is_an_error_not_a_crash(settings, clean_db):
    with TestClient(create_app(settings)) as http:
        with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init"})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json({"id": "7", "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {"id": "nope"}}})
            message = ws.receive_json()
            assert message["type"] == "error" and message["id"] == "7"
