"""Small builders shared by the API tests."""

from __future__ import annotations

from typing import Any


def cron_body(name: str = "daily", **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "schedule_type": "cron",
        "cron_expression": "0 9 * * *",
        "timezone": "America/New_York",
        "target_command": "cmd.notification.send.bulk",
        "command_payload": {"notification_type": "daily_summary"},
        "tags": ["email", "daily"],
        "priority": 7,
    }
    body.update(overrides)
    return body


def interval_body(name: str = "every-minute", seconds: int = 60, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "schedule_type": "interval",
        "interval_seconds": seconds,
        "target_command": "cmd.analytics.collect.metrics",
        "command_payload": {"metrics": ["sales"]},
    }
    body.update(overrides)
    return body


async def create(client, body: dict[str, Any], creator: str = "svc-a") -> dict[str, Any]:
    response = await client.post("/api/v1/schedules", json=body, headers={"X-Created-By": creator})
    assert response.status_code == 201, response.text
    return response.json()
