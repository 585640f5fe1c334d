"""Bad GraphQL input answers with errors, never a 500 or a hang, and changes nothing."""

from __future__ import annotations

import pytest

DEEPEST_VALID = "{ schedules { edges { node { executions { edges { node { id } } } } } } }"
TOO_DEEP = "{ schedules { edges { node { executions { edges { node { id { a { b } } } } } } } } }"

CASES = [
    ("syntax error", {"query": "{ schedules { edges { node { id }"}),
    ("unknown field", {"query": "{ schedules { nope } }"}),
    ("unknown enum value", {"query": "{ schedules(filter: {status: PAUSEDISH}) { totalCount } }"}),
    (
        "wrong variable type",
        {"query": "query($n: Int!) { schedules(first: $n) { totalCount } }", "variables": {"n": "ten"}},
    ),
    ("missing variable", {"query": "query($n: Int!) { schedules(first: $n) { totalCount } }"}),
    ("bad uuid", {"query": '{ schedule(id: "not-a-uuid") { id } }'}),
    ("first over the cap", {"query": "{ schedules(first: 1000) { totalCount } }"}),
    ("first negative", {"query": "{ executions(first: -1) { totalCount } }"}),
    ("forged cursor", {"query": '{ schedules(after: "garbage!!") { totalCount } }'}),
    ("mutation with wrong input type", {"query": "mutation { createSchedule(input: 5) { __typename } }"}),
    ("input missing required field", {"query": 'mutation { createSchedule(input: {name: "x"}) { __typename } }'}),
    ("over deep", {"query": TOO_DEEP}),
    ("too many aliases", {"query": "{ " + " ".join(f"a{i}: runningExecutions {{ id }}" for i in range(40)) + " }"}),
    ("too many tokens", {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(3000)) + " }"}),
    ("not a document", {"query": 42}),
    ("operation name unknown", {"query": "query A { __typename }", "operationName": "B"}),
]


@pytest.mark.parametrize(("name", "payload"), CASES, ids=[c[0] for c in CASES])
async def test_bad_documents_answer_errors(client, db, name, payload):
    response = await client.post("/graphql", json=payload, timeout=10)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:  # the request itself is unusable: a plain explanation
        assert response.text.strip()
    else:
        body = response.json()
        assert body.get("errors") and body.get("data") is None, body
        assert all("Unexpected error" not in e["message"] for e in body["errors"])
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0


async def test_raw_garbage_bodies(client):
    for content in (b"{not json", b"[]", b"", b"\xff\xfe"):
        response = await client.post("/graphql", content=content, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (content, response.status_code, response.text)


async def test_depth_limit_allows_the_deepest_real_query_and_names_itself(client):
    ok = await client.post("/graphql", json={"query": DEEPEST_VALID})
    assert not ok.json().get("errors"), ok.text
    too_deep = (await client.post("/graphql", json={"query": TOO_DEEP})).json()
    assert any("maximum operation depth" in e["message"] for e in too_deep["errors"])


async def test_a_nul_inside_an_override_payload_is_a_validation_error(client, db):
    created = await client.post(
        "/api/v1/schedules",
        json={"name": "n", "schedule_type": "interval", "interval_seconds": 60, "target_command": "cmd.t.n"},
    )
    query = (
        'mutation($id: UUID!) { triggerSchedule(id: $id, overridePayload: {a: {b: "x\\u0000"}}) {'
        " __typename ... on ValidationError { errors { field message } } } }"
    )
    body = (await client.post("/graphql", json={"query": query, "variables": {"id": created.json()["id"]}})).json()
    member = body["data"]["triggerSchedule"]
    assert member["__typename"] == "ValidationError"
    assert member["errors"][0]["field"] == "overridePayload" and "NUL" in member["errors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM executions") == 0
