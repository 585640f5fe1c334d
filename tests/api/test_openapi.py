"""The OpenAPI description lists every REST route with its problem responses and the API-key schemes;
/docs and GraphiQL load their assets from this server."""

from __future__ import annotations

from api.hardening import DASHBOARD_CSP

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


async def test_every_api_v1_operation_declares_the_bearer_and_x_api_key_schemes(client):
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"]) == ("http", "bearer")
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == (
        "apiKey",
        "header",
        "X-API-Key",
    )
    operations = [
        (method, path, operation)
        for path, item in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    ]
    assert {(method, path) for method, path, _ in operations} >= {e for e in EXPECTED if e[1].startswith("/api/v1/")}
    for method, path, operation in operations:
        assert operation.get("security") == [{"bearer": []}, {"apiKey": []}], (method, path)
    assert all("security" not in operation for operation in spec["paths"]["/health"].values())


async def test_docs_and_graphiql_pages_load_their_assets_from_this_server(client):
    for path, assets in (
        ("/docs", ["/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/swagger-ui/swagger-ui.css"]),
        (
            "/graphql",
            [
                "/vendor/graphiql/react.production.min.js",
                "/vendor/graphiql/react-dom.production.min.js",
                "/vendor/graphiql/graphiql.min.js",
                "/vendor/graphiql/graphiql.min.css",
            ],
        ),
    ):
        page = await client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        assert "//" not in page.text.replace("http://www.w3.org/2000/svg", ""), f"{path} names another host"
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy, policy
        for asset in assets:
            assert asset in page.text, (path, asset)
            served = await client.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset
    assert (await client.get("/")).headers["content-security-policy"] == DASHBOARD_CSP


async def test_no_page_loads_redoc_from_a_cdn(client):
    assert (await client.get("/redoc")).status_code == 404
