"""The OpenAPI description lists every REST route with its problem responses."""

from __future__ import annotations

EXPECTED = {
    ("post", "/api/v1/schedules"),
    ("get", "/api/v1/schedules"),
    ("get", "/api/v1/schedules/{schedule_id}"),
    ("put", "/api/v1/schedules/{schedule_id}"),
    ("delete", "/api/v1/schedules/{schedule_id}"),
    ("post", "/api/v1/schedules/{schedule_id}/pause"),
    ("post", "/api/v1/schedules/{schedule_id}/resume"),
    ("post", "/api/v1/schedules/{schedule_id}/trigger"),
    ("post", "/api/v1/schedules/bulk/create"),
    ("post", "/api/v1/schedules/bulk/operation"),
    ("post", "/api/v1/schedules/preview"),
    ("get", "/api/v1/executions"),
    ("get", "/api/v1/executions/{execution_id}"),
    ("get", "/api/v1/executions/running"),
    ("get", "/api/v1/schedules/{schedule_id}/executions"),
    ("get", "/api/v1/executions/stats/{schedule_id}"),
    ("get", "/health"),
    ("get", "/health/detailed"),
    ("get", "/ready"),
    ("get", "/live"),
}


async def test_openapi_documents_every_route_and_the_problem_format(client):
    spec = (await client.get("/openapi.json")).json()
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert documented >= EXPECTED
    create = spec["paths"]["/api/v1/schedules"]["post"]
    assert "201" in create["responses"] and "422" in create["responses"]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert (await client.get("/docs")).status_code == 200
