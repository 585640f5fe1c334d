"""Request bodies and calls shared by the REST and GraphQL tests."""

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


SCHEDULE_FIELDS = """
    __typename
    ... on Schedule { id name status version scheduleType cronExpression intervalSeconds timezone targetCommand
                      commandPayload priority tags nextRunAt createdBy updatedBy statusReason }
    ... on Error { message code }
    ... on ValidationError { errors { field message } }
    ... on ConflictError { errors { field message } }
    ... on NotFoundError { errors { field message } }
    ... on QuotaExceededError { errors { field message } }
"""


async def gql(client, query: str, variables: dict[str, Any] | None = None, actor: str | None = None) -> dict[str, Any]:
    headers = {"X-Performed-By": actor} if actor else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def camel(body: dict[str, Any]) -> dict[str, Any]:
    """A REST (snake_case) body as a GraphQL input (camelCase; enum values upper case)."""
    enums = {"schedule_type", "dst_gap", "dst_repeat", "catchup", "delivery_mode"}
    result = {}
    for key, value in body.items():
        parts = key.split("_")
        name = parts[0] + "".join(p.title() for p in parts[1:])
        result[name] = value.upper() if key in enums and isinstance(value, str) else value
    return result
