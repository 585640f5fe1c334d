"""GraphQL over HTTP against the real PostgreSQL: queries, connections, typed mutation errors, limits."""

from __future__ import annotations

import sqlalchemy as sa

from tests.support.factories import insert_execution
from tests.support.http import SCHEDULE_FIELDS, camel, create, cron_body, gql, interval_body

CREATE = f"mutation($input: CreateScheduleInput!) {{ createSchedule(input: $input) {{ {SCHEDULE_FIELDS} }} }}"


async def test_create_then_read_with_fire_times_and_connection(client):
    created = await gql(client, CREATE, {"input": camel(cron_body("g"))}, actor="frontend")
    node = created["data"]["createSchedule"]
    assert node["__typename"] == "Schedule" and node["createdBy"] == "frontend" and node["scheduleType"] == "CRON"
    one = await gql(
        client,
        """query($id: UUID!) { schedule(id: $id) { name nextFireTimes(count: 3) { at localTime } } }""",
        {"id": node["id"]},
    )
    fires = one["data"]["schedule"]["nextFireTimes"]
    assert len(fires) == 3 and fires[0]["at"].startswith(node["nextRunAt"][:16])
    assert all(f["localTime"].split("T")[1].startswith("09:00") for f in fires)
    for i in range(4):
        await create(client, cron_body(f"more-{i}"))
    first = await gql(
        client, "{ schedules(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }"
    )
    page = first["data"]["schedules"]
    assert page["totalCount"] == 5 and page["pageInfo"]["hasNextPage"]
    names = [e["node"]["name"] for e in page["edges"]]
    cursor = page["pageInfo"]["endCursor"]
    while cursor:
        nxt = await gql(
            client,
            "query($a: String) { schedules(first: 2, after: $a) { pageInfo { "
            "hasNextPage endCursor } edges { node { name } } } }",
            {"a": cursor},
        )
        names += [e["node"]["name"] for e in nxt["data"]["schedules"]["edges"]]
        cursor = (
            nxt["data"]["schedules"]["pageInfo"]["endCursor"]
            if nxt["data"]["schedules"]["pageInfo"]["hasNextPage"]
            else None
        )
    assert sorted(names) == sorted(["g", "more-0", "more-1", "more-2", "more-3"])


async def test_mutation_failures_are_typed_members(client):
    bad = await gql(client, CREATE, {"input": camel(cron_body("bad", cron_expression="0 0 30 2 *"))})
    member = bad["data"]["createSchedule"]
    assert member["__typename"] == "ValidationError" and member["errors"][0]["field"] == "cronExpression"
    await gql(client, CREATE, {"input": camel(cron_body("dup"))}, actor="a")
    dup = await gql(client, CREATE, {"input": camel(cron_body("dup"))}, actor="a")
    assert dup["data"]["createSchedule"]["__typename"] == "ConflictError"
    missing = await gql(
        client, f'mutation {{ pauseSchedule(id: "00000000-0000-0000-0000-000000000000") {{ {SCHEDULE_FIELDS} }} }}'
    )
    assert missing["data"]["pauseSchedule"]["__typename"] == "NotFoundError"


async def test_update_with_stale_version_is_a_conflict(client, db):
    created = await create(client, interval_body())
    update = (
        "mutation($id: UUID!, $input: UpdateScheduleInput!) "
        f"{{ updateSchedule(id: $id, input: $input) {{ {SCHEDULE_FIELDS} }} }}"
    )
    ok = await gql(client, update, {"id": created["id"], "input": {"intervalSeconds": 120, "version": 1}})
    assert ok["data"]["updateSchedule"]["intervalSeconds"] == 120
    stale = await gql(client, update, {"id": created["id"], "input": {"priority": 1, "version": 1}})
    assert stale["data"]["updateSchedule"]["__typename"] == "ConflictError"
    assert stale["data"]["updateSchedule"]["code"] == "version_conflict"
    assert await db.fetchval("SELECT priority FROM schedules WHERE id = $1", created["id"]) == 5


async def test_bulk_create_names_invalid_items_by_index(client, db):
    inputs = [camel(cron_body("ok")), camel(cron_body("broken", timezone="Nowhere/City"))]
    result = await gql(
        client,
        """mutation($inputs: [CreateScheduleInput!]!) { bulkCreateSchedules(inputs: $inputs) {
        __typename ... on ValidationError { errors { field } } } }""",
        {"inputs": inputs},
    )
    member = result["data"]["bulkCreateSchedules"]
    assert member["__typename"] == "ValidationError" and member["errors"][0]["field"] == "schedules.1.timezone"
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0


async def test_page_of_fifty_with_last_execution_costs_constant_queries(client, settings):
    from datetime import datetime, timezone

    created = [await create(client, cron_body(f"n{i}"), creator=f"c{i % 10}") for i in range(50)]
    engine = client._transport.app.state.engine  # the app's own engine: count what it sends
    import asyncpg

    conn = await asyncpg.connect(settings.DATABASE_URL.replace("+asyncpg", ""))
    for schedule in created:
        await insert_execution(conn, schedule["id"], scheduled_for=datetime.now(timezone.utc), status="succeeded")
    await conn.close()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    query = (
        "query($n: Int!) { schedules(first: $n) { edges { node { name lastExecution { status } stats { total } } } } }"
    )
    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        small = await gql(client, query, {"n": 5})
        small_count = len(statements)
        statements.clear()
        big = await gql(client, query, {"n": 50})
        big_count = len(statements)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(big["data"]["schedules"]["edges"]) == 50
    assert all(e["node"]["lastExecution"]["status"] == "SUCCEEDED" for e in big["data"]["schedules"]["edges"])
    assert len(small["data"]["schedules"]["edges"]) == 5
    assert big_count == small_count, f"{small_count} statements for 5 schedules, {big_count} for 50"
    assert big_count <= 8


async def test_audit_log_query_filters_by_actor(client):
    await create(client, cron_body("a1"), creator="alice")
    await create(client, cron_body("b1"), creator="bob")
    result = await gql(
        client, """{ auditLog(filter: {actor: "alice"}) { totalCount edges { node { actor action after } } } }"""
    )
    log = result["data"]["auditLog"]
    assert log["totalCount"] == 1 and log["edges"][0]["node"]["action"] == "schedule.created"
    assert log["edges"][0]["node"]["after"]["name"] == "a1"


async def test_update_with_dry_run_answers_an_edit_preview_and_saves_nothing(client, db):
    created = await create(client, cron_body("dry"))
    query = """mutation($id: UUID!) { updateSchedule(id: $id, input: {cronExpression: "H 7 * * *"}, dryRun: true) {
        __typename ... on ScheduleEditPreview { schedule { cronExpression resolvedCron version }
        fireTimesBefore { localTime } fireTimesAfter { localTime } slotsRecorded { status } runsKept { id } } } }"""
    answer = (await gql(client, query, {"id": created["id"]}))["data"]["updateSchedule"]

    assert answer["__typename"] == "ScheduleEditPreview"
    assert answer["schedule"]["cronExpression"] == "H 7 * * *" and answer["schedule"]["version"] == 2
    minute = answer["schedule"]["resolvedCron"].split()[0]
    assert {f["localTime"][11:16] for f in answer["fireTimesAfter"]} == {f"07:{int(minute):02d}"}
    assert {f["localTime"][11:16] for f in answer["fireTimesBefore"]} == {"09:00"}
    stored = await db.fetchrow("SELECT cron_expression, version FROM schedules")
    assert (stored["cron_expression"], stored["version"]) == ("0 9 * * *", 1)


async def test_calendars_over_graphql_with_typed_errors(client):
    create = """mutation($i: CalendarInput!) { r: createCalendar(input: $i) { __typename
        ... on Calendar { name ranges { start end } version } ... on ValidationError { errors { field } } } }"""
    ok = await gql(client, create, {"i": {"name": "gq", "ranges": [{"start": "2030-01-01", "end": "2030-01-03"}]}})
    assert ok["data"]["r"] == {
        "__typename": "Calendar",
        "name": "gq",
        "ranges": [{"start": "2030-01-01", "end": "2030-01-03"}],
        "version": 1,
    }
    bad = await gql(client, create, {"i": {"name": "bad", "yearly": ["13-01"]}})
    assert bad["data"]["r"] == {"__typename": "ValidationError", "errors": [{"field": "yearly.0"}]}
    await create_schedule_using(client, "gq")
    delete = 'mutation { r: deleteCalendar(name: "gq") { __typename ... on Error { code } } }'
    assert (await gql(client, delete))["data"]["r"] == {"__typename": "ConflictError", "code": "conflict"}
    listed = await gql(client, '{ calendars { name usedBy } calendar(name: "none") { name } }')
    assert [c["name"] for c in listed["data"]["calendars"]] == ["gq"] and listed["data"]["calendar"] is None


async def create_schedule_using(client, calendar: str) -> None:
    created = await gql(client, CREATE, {"input": camel(cron_body("uses", exclude_calendars=[calendar]))})
    assert created["data"]["createSchedule"]["__typename"] == "Schedule", created
