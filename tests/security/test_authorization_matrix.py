"""Every REST route and GraphQL operation × {anonymous, reader, writer (owner), writer (other), admin}.

Each cell starts from the same stored state (a schedule of wendy's with a pending execution and a
failed one), runs the request, and checks allow/deny; on deny nothing stored changes.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.auth import bearer
from tests.support.factories import insert_execution

WHO = ["anonymous", "reader", "owner", "other", "admin"]
SCHEDULE = {"name": "owned", "schedule_type": "interval", "interval_seconds": 3600, "target_command": "cmd.test.authz"}


async def seed(client, keys, db) -> tuple[str, str, str, str, str]:
    """wendy's schedule, a pending manual run of it, a failed one, one awaiting its report and a backfill
    of the schedule (of an empty range): their ids."""
    created = await client.post("/api/v1/schedules", json=SCHEDULE, headers=bearer(keys, "owner"))
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    triggered = await client.post(f"/api/v1/schedules/{schedule_id}/trigger", headers=bearer(keys, "owner"))
    assert triggered.status_code == 200, triggered.text
    failed = await insert_execution(db, schedule_id, status="failed", attempts=1)
    awaiting = await insert_execution(db, schedule_id, status="awaiting", attempts=1, trigger_type="manual")
    window = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}
    backfill = await client.post(
        f"/api/v1/schedules/{schedule_id}/backfill", json=window, headers=bearer(keys, "owner")
    )
    assert backfill.status_code == 200, backfill.text
    backfill_id = backfill.json()["backfill"]["id"]
    calendar = await client.post("/api/v1/calendars", json={"name": "authz"}, headers=bearer(keys, "owner"))
    assert calendar.status_code == 201, calendar.text
    return schedule_id, triggered.json()["execution_id"], str(failed["id"]), str(awaiting["id"]), backfill_id


async def fingerprint(db) -> tuple:
    rows = []
    for table in ("schedules", "executions", "audit_log"):
        rows.append(
            await db.fetchval(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
            )
        )
    return tuple(rows)


def new_schedule() -> dict:
    return {**SCHEDULE, "name": f"new-{uuid.uuid4().hex[:8]}"}


# (name, method, path, body, allowed roles). "{id}" is wendy's schedule, "{eid}" its pending execution,
# "{fid}" its failed one, "{aid}" one awaiting its completion report, "{bid}" a backfill of it.
BACKFILL_WINDOW = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-03T00:00:00Z", "dry_run": True}
READ_ALL = {"reader", "owner", "other", "admin"}
READ_OWNED = {"reader", "owner", "admin"}
WRITE_OWNED = {"owner", "admin"}
WRITE_ANY = {"owner", "other", "admin"}
REST = [
    ("create", "POST", "/api/v1/schedules", new_schedule, WRITE_ANY),
    ("list", "GET", "/api/v1/schedules", None, READ_OWNED),  # otto gets 200 with none of wendy's
    ("get", "GET", "/api/v1/schedules/{id}", None, READ_OWNED),
    ("update", "PUT", "/api/v1/schedules/{id}", lambda: {"priority": 9}, WRITE_OWNED),
    ("delete", "DELETE", "/api/v1/schedules/{id}", None, WRITE_OWNED),
    ("pause", "POST", "/api/v1/schedules/{id}/pause", None, WRITE_OWNED),
    ("resume", "POST", "/api/v1/schedules/{id}/resume", None, WRITE_OWNED),
    ("trigger", "POST", "/api/v1/schedules/{id}/trigger", None, WRITE_OWNED),
    (
        "preview",
        "POST",
        "/api/v1/schedules/preview",
        lambda: {"schedule_type": "cron", "cron_expression": "0 9 * * *"},
        READ_ALL,
    ),
    ("bulk-create", "POST", "/api/v1/schedules/bulk/create", lambda: {"schedules": [new_schedule()]}, WRITE_ANY),
    (
        "bulk-operation",
        "POST",
        "/api/v1/schedules/bulk/operation",
        lambda: {"schedule_ids": ["{id}"], "operation": "pause"},
        WRITE_OWNED,
    ),
    ("executions", "GET", "/api/v1/executions", None, READ_OWNED),
    ("execution", "GET", "/api/v1/executions/{eid}", None, READ_OWNED),
    ("running", "GET", "/api/v1/executions/running", None, READ_ALL),
    ("schedule-executions", "GET", "/api/v1/schedules/{id}/executions", None, READ_OWNED),
    ("stats", "GET", "/api/v1/executions/stats/{id}", None, READ_OWNED),
    ("audit", "GET", "/api/v1/audit", None, READ_OWNED),
    ("dead-letters", "GET", "/api/v1/executions?dead_lettered=false", None, READ_OWNED),
    ("retry", "POST", "/api/v1/executions/{fid}/retry", None, WRITE_OWNED),
    ("complete", "POST", "/api/v1/executions/{aid}/complete", lambda: {"status": "succeeded"}, WRITE_OWNED),
    ("backfill", "POST", "/api/v1/schedules/{id}/backfill", lambda: dict(BACKFILL_WINDOW), WRITE_OWNED),
    ("backfills", "GET", "/api/v1/schedules/{id}/backfills", None, READ_OWNED),
    ("backfill-get", "GET", "/api/v1/schedules/{id}/backfills/{bid}", None, READ_OWNED),
    ("backfill-cancel", "DELETE", "/api/v1/schedules/{id}/backfills/{bid}", None, WRITE_OWNED),
    ("schedule-ics", "GET", "/api/v1/schedules/{id}/calendar.ics", None, READ_OWNED),
    ("calendar-create", "POST", "/api/v1/calendars", lambda: {"name": f"c-{uuid.uuid4().hex[:8]}"}, WRITE_ANY),
    ("calendars", "GET", "/api/v1/calendars", None, READ_ALL),
    ("calendar", "GET", "/api/v1/calendars/authz", None, READ_ALL),
    ("calendar-update", "PUT", "/api/v1/calendars/authz", lambda: {"name": "authz", "yearly": ["12-25"]}, WRITE_OWNED),
    ("calendar-delete", "DELETE", "/api/v1/calendars/authz", None, WRITE_OWNED),
    ("calendar-import", "POST", "/api/v1/calendars/authz/import", lambda: HOLIDAY_ICS, WRITE_OWNED),
]
# Calendars are shared: everyone sees them, so another writer is refused (403) rather than not shown (404).
SHARED = {"calendar-update", "calendar-delete", "calendar-import"}
HOLIDAY_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
    "DTSTART;VALUE=DATE:20301225\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def fill(value, ids: tuple[str, ...]):
    if isinstance(value, str):
        for name, ident in zip(("{id}", "{eid}", "{fid}", "{aid}", "{bid}"), ids):
            value = value.replace(name, ident)
        return value
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def rest_allowed(response, name: str) -> bool:
    if response.status_code >= 300:
        return False
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if name == "bulk-operation":
        return body["succeeded"] == 1
    if name in ("list", "executions", "audit", "dead-letters"):
        return body["total"] > 0  # the owner's data is visible (an empty page means hidden)
    return True


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("name", "method", "path", "body", "allowed"), REST, ids=[r[0] for r in REST])
async def test_rest_matrix(secure_client, keys, db, who, name, method, path, body, allowed):
    ids = await seed(secure_client, keys, db)
    before = await fingerprint(db)
    payload = fill(body(), ids) if body else None
    response = await secure_client.request(method, fill(path, ids), json=payload, headers=bearer(keys, who))
    assert response.status_code < 500, response.text
    expected = who in allowed
    assert rest_allowed(response, name) == expected, (who, name, response.status_code, response.text[:300])
    if who == "anonymous":
        assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    elif not expected and method != "GET":
        assert await fingerprint(db) == before
        if who == "reader" or name in SHARED:
            assert response.status_code == 403
        elif name != "bulk-operation":
            assert response.status_code == 404  # another creator's schedule is not visible


GQL = [
    ("schedule", "query($id: UUID!) { r: schedule(id: $id) { id } }", READ_OWNED),
    ("schedules", "{ r: schedules { totalCount } }", READ_OWNED),
    ("execution", "query($eid: UUID!) { r: execution(id: $eid) { id } }", READ_OWNED),
    ("executions", "{ r: executions { totalCount } }", READ_OWNED),
    ("runningExecutions", "{ r: runningExecutions { id } }", READ_ALL),
    ("executionStats", "query($id: UUID!) { r: executionStats(scheduleId: $id) { total } }", READ_OWNED),
    (
        "previewSchedule",
        '{ r: previewSchedule(input: {scheduleType: CRON, cronExpression: "0 9 * * *"}) { at } }',
        READ_ALL,
    ),
    ("auditLog", "{ r: auditLog { totalCount } }", READ_OWNED),
    (
        "createSchedule",
        'mutation { r: createSchedule(input: {name: "gql-new", scheduleType: INTERVAL, '
        'intervalSeconds: 60, targetCommand: "cmd.test.x"}) { __typename } }',
        WRITE_ANY,
    ),
    (
        "updateSchedule",
        "mutation($id: UUID!) { r: updateSchedule(id: $id, input: {priority: 9}) { __typename } }",
        WRITE_OWNED,
    ),
    ("deleteSchedule", "mutation($id: UUID!) { r: deleteSchedule(id: $id) { __typename } }", WRITE_OWNED),
    ("pauseSchedule", "mutation($id: UUID!) { r: pauseSchedule(id: $id) { __typename } }", WRITE_OWNED),
    ("resumeSchedule", "mutation($id: UUID!) { r: resumeSchedule(id: $id) { __typename } }", WRITE_OWNED),
    ("triggerSchedule", "mutation($id: UUID!) { r: triggerSchedule(id: $id) { __typename } }", WRITE_OWNED),
    ("retryExecution", "mutation($fid: UUID!) { r: retryExecution(id: $fid) { __typename } }", WRITE_OWNED),
    (
        "completeExecution",
        "mutation($aid: UUID!) { r: completeExecution(id: $aid, report: {status: SUCCEEDED}) { __typename } }",
        WRITE_OWNED,
    ),
    ("deadLetters", "{ r: executions(deadLettered: false) { totalCount } }", READ_OWNED),
    (
        "backfillSchedule",
        'mutation($id: UUID!) { r: backfillSchedule(id: $id, input: {start: "2020-01-01T00:00:00Z", '
        'end: "2020-01-03T00:00:00Z", dryRun: true}) { __typename } }',
        WRITE_OWNED,
    ),
    (
        "cancelBackfill",
        "mutation($id: UUID!, $bid: UUID!) { r: cancelBackfill(scheduleId: $id, id: $bid) { __typename } }",
        WRITE_OWNED,
    ),
    ("backfills", "query($id: UUID!) { r: backfills(scheduleId: $id) { id } }", READ_OWNED),
    ("calendars", "{ r: calendars { name } }", READ_ALL),
    ("calendar", '{ r: calendar(name: "authz") { name } }', READ_ALL),
    (
        "createCalendar",
        'mutation { r: createCalendar(input: {name: "gql-cal"}) { __typename } }',
        WRITE_ANY,
    ),
    (
        "updateCalendar",
        'mutation { r: updateCalendar(name: "authz", input: {name: "authz", yearly: ["12-25"]}) { __typename } }',
        WRITE_OWNED,
    ),
    ("deleteCalendar", 'mutation { r: deleteCalendar(name: "authz") { __typename } }', WRITE_OWNED),
    (
        "bulkCreateSchedules",
        'mutation { r: bulkCreateSchedules(inputs: [{name: "gql-bulk", scheduleType: INTERVAL, '
        'intervalSeconds: 60, targetCommand: "cmd.test.x"}]) { __typename } }',
        WRITE_ANY,
    ),
    (
        "bulkScheduleOperation",
        "mutation($id: String!) { r: bulkScheduleOperation(ids: [$id], operation: "
        "PAUSE) { __typename ... on BulkOperationSuccess { succeeded } } }",
        WRITE_OWNED,
    ),
]


def gql_allowed(body: dict, name: str) -> bool:
    if body.get("errors"):
        return False
    result = body["data"]["r"]
    if result is None:
        return False
    if isinstance(result, dict) and "__typename" in result:
        return result["__typename"] not in ("ForbiddenError", "NotFoundError") and result.get("succeeded", 1) == 1
    if isinstance(result, dict) and "totalCount" in result:
        return result["totalCount"] > 0
    return True


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("name", "query", "allowed"), GQL, ids=[g[0] for g in GQL])
async def test_graphql_matrix(secure_client, keys, db, who, name, query, allowed):
    schedule_id, execution_id, failed_id, awaiting_id, backfill_id = await seed(secure_client, keys, db)
    before = await fingerprint(db)
    named = {"id": schedule_id, "eid": execution_id, "fid": failed_id, "aid": awaiting_id, "bid": backfill_id}
    variables = {k: v for k, v in named.items() if f"${k}" in query}
    response = await secure_client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer(keys, who)
    )
    if who == "anonymous":
        assert response.status_code == 401
        assert await fingerprint(db) == before
        return
    assert response.status_code == 200, response.text
    expected = who in allowed
    assert gql_allowed(response.json(), name) == expected, (who, name, response.text[:300])
    if not expected and query.startswith("mutation"):
        assert await fingerprint(db) == before


async def test_open_probes_need_no_credentials(secure_client):
    for path in ("/health", "/live", "/ready", "/metrics"):
        assert (await secure_client.get(path)).status_code == 200, path


async def test_header_naming_someone_else_needs_admin(secure_client, keys, db):
    body = {**SCHEDULE, "name": "for-bob"}
    refused = await secure_client.post(
        "/api/v1/schedules", json=body, headers={**bearer(keys, "owner"), "X-Created-By": "bob"}
    )
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "X-Created-By"
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0
    done = await secure_client.post(
        "/api/v1/schedules", json=body, headers={**bearer(keys, "admin"), "X-Created-By": "bob"}
    )
    assert done.status_code == 201 and done.json()["created_by"] == "bob"
    assert await db.fetchval("SELECT actor FROM audit_log WHERE action = 'schedule.created'") == "ada"
    same = await secure_client.post(
        "/api/v1/schedules", json={**body, "name": "own"}, headers={**bearer(keys, "owner"), "X-Created-By": "wendy"}
    )
    assert same.status_code == 201


async def test_bad_and_revoked_keys_are_refused(secure_client, keys, clean_db):
    for header in ({"Authorization": "Bearer sk_nope_nope"}, {"Authorization": "Basic abc"}, {"X-API-Key": "garbage"}):
        response = await secure_client.get("/api/v1/schedules", headers=header)
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    assert (await secure_client.get("/api/v1/schedules", headers={"X-API-Key": keys["reader"]})).status_code == 200
    from datetime import datetime, timezone

    from models.db import make_engine, make_session_factory
    from services.auth import ApiKeyService

    engine = make_engine(clean_db, pool_size=1)
    service = ApiKeyService(make_session_factory(engine), 0)
    await service.revoke(keys["reader"].split("_")[1], datetime.now(timezone.utc))
    await engine.dispose()
    assert (await secure_client.get("/api/v1/schedules", headers=bearer(keys, "reader"))).status_code == 401


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 401), ("reader", 403), ("owner", 403), ("other", 403), ("admin", 200)]
)
async def test_dramatiq_dashboard_is_for_admins(secure_client, keys, who, status):
    response = await secure_client.get("/dramatiq/", headers=bearer(keys, who))
    assert response.status_code == status, response.text[:300]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status >= 400:
        assert response.json()["code"] in ("unauthenticated", "forbidden")


async def test_dramatiq_dashboard_takes_the_sign_in_cookie(secure_client, keys):
    for who, status in (("reader", 403), ("admin", 200)):
        response = await secure_client.get("/dramatiq/", headers={"Cookie": f"scheduler_api_key={keys[who]}"})
        assert response.status_code == status, (who, response.text[:300])


async def test_dramatiq_dashboard_refuses_a_queue_action_without_a_key(secure_client):
    response = await secure_client.post("/dramatiq/queues/default/delete_all")
    assert response.status_code == 401
