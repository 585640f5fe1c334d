"""The whole pipeline once: REST create → ticker → queue → worker → NATS, with history recorded."""

from __future__ import annotations

import json

import httpx
import nats

from tests.support.harness import unique_subject, wait_for


async def test_cron_with_seconds_reaches_nats_with_headers_and_history(stack):
    for name in ("api", "ticker", "worker"):
        stack.start(name)
    subject = unique_subject()
    received = []
    nc = await nats.connect(stack.nats_url)

    async def on_message(msg):
        received.append(msg)

    await nc.subscribe(subject, cb=on_message)
    async with httpx.AsyncClient(base_url=stack.api) as http:
        created = await http.post(
            "/api/v1/schedules",
            json={
                "name": "every-second",
                "schedule_type": "cron",
                "cron_expression": "* * * * * *",
                "target_command": subject,
                "command_payload": {"slot": "{{scheduled_for}}", "run": "{{execution_id}}"},
            },
        )
        assert created.status_code == 201, created.text
        await wait_for(lambda: len(received) >= 3, 30, message="three commands")
        first = received[0]
        body = json.loads(first.data)
        assert first.headers["Nats-Msg-Id"] == body["run"] == first.headers["Scheduler-Execution-Id"]
        assert first.headers["Scheduler-Schedule-Id"] == created.json()["id"]
        assert body["slot"] == first.headers["Scheduler-Scheduled-For"]
        execution = (await http.get(f"/api/v1/executions/{body['run']}")).json()
        assert execution["status"] == "succeeded" and execution["attempts"] == 1
        assert execution["published_subject"] == subject and execution["message_id"] == body["run"]
        slots = [m.headers["Scheduler-Scheduled-For"] for m in received]
        assert len(slots) == len(set(slots))
    await nc.close()
