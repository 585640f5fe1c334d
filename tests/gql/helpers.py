"""Posting GraphQL documents over HTTP in tests."""

from __future__ import annotations

from typing import Any

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
