"""REST and GraphQL are one service seen through two doors.

Each case runs the same operation through REST on a fresh database, then through GraphQL on another
fresh database, and compares the outcome class (or error code), the stored state and the audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.database import RESET_TABLES
from tests.support.factories import insert_execution
from tests.support.http import SCHEDULE_FIELDS, camel, cron_body, gql, interval_body

ACTOR = "parity-actor"
MISSING = "00000000-0000-0000-0000-000000000000"
REST_CLASS = {200: "ok", 201: "ok", 204: "ok"}
GQL_ERROR_TYPES = {"ValidationError", "NotFoundError", "ConflictError", "QuotaExceededError", "ForbiddenError"}


def rest_outcome(response) -> str:
    if response.status_code in REST_CLASS:
        return "ok"
    return response.json()["code"]


def gql_outcome(result: dict, field: str) -> str:
    if result.get("errors"):
        return result["errors"][0].get("extensions", {}).get("code", "graphql_error")
    member = result["data"][field]
    if member is None:
        return "not_found"
    if isinstance(member, dict) and member.get("__typename") in GQL_ERROR_TYPES:
        return member["code"]
    return "ok"


async def snapshot(db) -> dict[str, Any]:
    schedules = await db.fetch(
        "SELECT name, status, status_reason, paused_until, schedule_type, "
        "cron_expression, interval_seconds, timezone, target_command,"
        " command_payload, priority, tags, version, created_by, updated_by, next_run_at IS NOT NULL AS has_next,"
        " deleted_at IS NOT NULL AS deleted FROM schedules ORDER BY name"
    )
    executions = await db.fetch(
        "SELECT trigger_type, status, triggered_by, payload_override, result FROM executions ORDER BY 1, 2"
    )
    audit = await db.fetch(
        "SELECT actor, action, reason, before IS NOT NULL AS b, after IS NOT NULL AS a FROM audit_log ORDER BY id"
    )
    return {
        "schedules": [dict(r) for r in schedules],
        "executions": [dict(r) for r in executions],
        "audit": [dict(r) for r in audit],
    }


async def seed(client, *bodies: dict) -> list[str]:
    ids = []
    for body in bodies:
        response = await client.post("/api/v1/schedules", json=body, headers={"X-Created-By": ACTOR})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


Op = Callable[[Any, list[str]], Awaitable[str]]
H = {"X-Performed-By": ACTOR, "X-Created-By": ACTOR, "X-Triggered-By": ACTOR}
UPDATE = (
    f"mutation($id: UUID!, $i: UpdateScheduleInput!) {{ updateSchedule(id: $id, input: $i) {{ {SCHEDULE_FIELDS} }} }}"
)
DRY_UPDATE = (
    "mutation($id: UUID!, $i: UpdateScheduleInput!) { updateSchedule(id: $id, input: $i, dryRun: true) {"
    f" ... on ScheduleEditPreview {{ fireTimesAfter {{ at }} }} {SCHEDULE_FIELDS} }} }}"
)
BACKFILL = {"start": "2021-05-01T00:00:00+00:00", "end": "2021-05-01T05:30:00+00:00", "max_per_second": 50}
BACKFILL_REVERSED = {"start": "2021-05-02T00:00:00+00:00", "end": "2021-05-01T00:00:00+00:00"}
BACKFILL_GQL = (
    "mutation($id: UUID!, $i: BackfillInput!) { backfillSchedule(id: $id, input: $i) { __typename "
    "... on BackfillPlan { slotsToRecord } ... on Error { code message } } }"
)
CALENDAR_GQL = (
    "mutation($i: CalendarInput!) { createCalendar(input: $i) { __typename "
    "... on Calendar { name } ... on Error { code message } } }"
)
SNOOZE = f"mutation($id: UUID!, $until: DateTime!) {{ pauseSchedule(id: $id, until: $until) {{ {SCHEDULE_FIELDS} }} }}"
SNOOZE_END, PAST = "2099-01-01T09:00:00+00:00", "2001-01-01T09:00:00+00:00"


def case(name: str, seeds: list[dict], rest: Op, graphql: Op):
    return pytest.param(seeds, rest, graphql, id=name)


async def _gql(client, query, variables, field):
    return gql_outcome(await gql(client, query, variables, actor=ACTOR), field)


CASES = [
    case(
        "create",
        [],
        lambda c, ids: _rest(c.post("/api/v1/schedules", json=cron_body("new"), headers=H)),
        lambda c, ids: _gql(
            c,
            f"mutation($i: CreateScheduleInput!) {{ createSchedule(input: $i) {{ {SCHEDULE_FIELDS} }} }}",
            {"i": camel(cron_body("new"))},
            "createSchedule",
        ),
    ),
    case(
        "create-invalid",
        [],
        lambda c, ids: _rest(c.post("/api/v1/schedules", json=cron_body("x", cron_expression="99 * * * *"), headers=H)),
        lambda c, ids: _gql(
            c,
            f"mutation($i: CreateScheduleInput!) {{ createSchedule(input: $i) {{ {SCHEDULE_FIELDS} }} }}",
            {"i": camel(cron_body("x", cron_expression="99 * * * *"))},
            "createSchedule",
        ),
    ),
    case(
        "create-duplicate-name",
        [cron_body("dup")],
        lambda c, ids: _rest(c.post("/api/v1/schedules", json=cron_body("dup"), headers=H)),
        lambda c, ids: _gql(
            c,
            f"mutation($i: CreateScheduleInput!) {{ createSchedule(input: $i) {{ {SCHEDULE_FIELDS} }} }}",
            {"i": camel(cron_body("dup"))},
            "createSchedule",
        ),
    ),
    case(
        "create-over-quota",
        [cron_body(f"q{i}") for i in range(5)],
        lambda c, ids: _rest(c.post("/api/v1/schedules", json=cron_body("q6"), headers=H)),
        lambda c, ids: _gql(
            c,
            f"mutation($i: CreateScheduleInput!) {{ createSchedule(input: $i) {{ {SCHEDULE_FIELDS} }} }}",
            {"i": camel(cron_body("q6"))},
            "createSchedule",
        ),
    ),
    case(
        "update",
        [interval_body("u")],
        lambda c, ids: _rest(
            c.put(f"/api/v1/schedules/{ids[0]}", json={"interval_seconds": 300, "version": 1}, headers=H)
        ),
        lambda c, ids: _gql(c, UPDATE, {"id": ids[0], "i": {"intervalSeconds": 300, "version": 1}}, "updateSchedule"),
    ),
    case(
        "update-stale-version",
        [interval_body("u")],
        lambda c, ids: _rest(c.put(f"/api/v1/schedules/{ids[0]}", json={"priority": 1, "version": 7}, headers=H)),
        lambda c, ids: _gql(c, UPDATE, {"id": ids[0], "i": {"priority": 1, "version": 7}}, "updateSchedule"),
    ),
    case(
        "update-missing",
        [],
        lambda c, ids: _rest(c.put(f"/api/v1/schedules/{MISSING}", json={"priority": 1}, headers=H)),
        lambda c, ids: _gql(c, UPDATE, {"id": MISSING, "i": {"priority": 1}}, "updateSchedule"),
    ),
    case(
        "update-dry-run",
        [cron_body("u")],
        lambda c, ids: _rest(
            c.put(f"/api/v1/schedules/{ids[0]}", params={"dry_run": "true"}, json={"cron_expression": "0 7 * * *"})
        ),
        lambda c, ids: _gql(c, DRY_UPDATE, {"id": ids[0], "i": {"cronExpression": "0 7 * * *"}}, "updateSchedule"),
    ),
    case(
        "update-dry-run-invalid",
        [cron_body("u")],
        lambda c, ids: _rest(
            c.put(f"/api/v1/schedules/{ids[0]}", params={"dry_run": "true"}, json={"cron_expression": "*/60 * * * *"})
        ),
        lambda c, ids: _gql(c, DRY_UPDATE, {"id": ids[0], "i": {"cronExpression": "*/60 * * * *"}}, "updateSchedule"),
    ),
    case(
        "backfill",
        [cron_body("b", cron_expression="0 * * * *", timezone="UTC")],
        lambda c, ids: _rest(c.post(f"/api/v1/schedules/{ids[0]}/backfill", json=BACKFILL, headers=H)),
        lambda c, ids: _gql(c, BACKFILL_GQL, {"id": ids[0], "i": camel(BACKFILL)}, "backfillSchedule"),
    ),
    case(
        "backfill-reversed",
        [cron_body("b")],
        lambda c, ids: _rest(c.post(f"/api/v1/schedules/{ids[0]}/backfill", json=BACKFILL_REVERSED, headers=H)),
        lambda c, ids: _gql(c, BACKFILL_GQL, {"id": ids[0], "i": camel(BACKFILL_REVERSED)}, "backfillSchedule"),
    ),
    case(
        "calendar-create",
        [],
        lambda c, ids: _rest(c.post("/api/v1/calendars", json={"name": "hol", "yearly": ["12-25"]}, headers=H)),
        lambda c, ids: _gql(c, CALENDAR_GQL, {"i": {"name": "hol", "yearly": ["12-25"]}}, "createCalendar"),
    ),
    case(
        "calendar-create-invalid",
        [],
        lambda c, ids: _rest(c.post("/api/v1/calendars", json={"name": "hol", "yearly": ["13-25"]}, headers=H)),
        lambda c, ids: _gql(c, CALENDAR_GQL, {"i": {"name": "hol", "yearly": ["13-25"]}}, "createCalendar"),
    ),
    case(
        "schedule-with-unknown-calendar",
        [],
        lambda c, ids: _rest(c.post("/api/v1/schedules", json=cron_body("x", exclude_calendars=["nope"]), headers=H)),
        lambda c, ids: _gql(
            c,
            f"mutation($i: CreateScheduleInput!) {{ createSchedule(input: $i) {{ {SCHEDULE_FIELDS} }} }}",
            {"i": camel(cron_body("x", exclude_calendars=["nope"]))},
            "createSchedule",
        ),
    ),
    case(
        "pause",
        [cron_body("p")],
        lambda c, ids: _rest(c.post(f"/api/v1/schedules/{ids[0]}/pause", params={"reason": "window"}, headers=H)),
        lambda c, ids: _gql(
            c,
            f'mutation($id: UUID!) {{ pauseSchedule(id: $id, reason: "window") {{ {SCHEDULE_FIELDS} }} }}',
            {"id": ids[0]},
            "pauseSchedule",
        ),
    ),
    case(
        "snooze",
        [cron_body("s")],
        lambda c, ids: _rest(c.post(f"/api/v1/schedules/{ids[0]}/pause", json={"until": SNOOZE_END}, headers=H)),
        lambda c, ids: _gql(c, SNOOZE, {"id": ids[0], "until": SNOOZE_END}, "pauseSchedule"),
    ),
    case(
        "snooze-in-the-past",
        [cron_body("s")],
        lambda c, ids: _rest(c.post(f"/api/v1/schedules/{ids[0]}/pause", json={"until": PAST}, headers=H)),
        lambda c, ids: _gql(c, SNOOZE, {"id": ids[0], "until": PAST}, "pauseSchedule"),
    ),
    case(
        "resume-active-is-a-no-op",
        [cron_body("r")],
        lambda c, ids: _rest(c.post(f"/api/v1/schedules/{ids[0]}/resume", headers=H)),
        lambda c, ids: _gql(
            c,
            f"mutation($id: UUID!) {{ resumeSchedule(id: $id) {{ {SCHEDULE_FIELDS} }} }}",
            {"id": ids[0]},
            "resumeSchedule",
        ),
    ),
    case(
        "trigger-with-override",
        [cron_body("t")],
        lambda c, ids: _rest(
            c.post(f"/api/v1/schedules/{ids[0]}/trigger", json={"override_payload": {"k": 1}}, headers=H)
        ),
        lambda c, ids: _gql(
            c,
            "mutation($id: UUID!) { triggerSchedule(id: $id, overridePayload: "
            "{k: 1}) { __typename ... on Error { code } } }",
            {"id": ids[0]},
            "triggerSchedule",
        ),
    ),
    case(
        "delete",
        [cron_body("d")],
        lambda c, ids: _rest(c.delete(f"/api/v1/schedules/{ids[0]}", params={"reason": "gone"}, headers=H)),
        lambda c, ids: _gql(
            c,
            'mutation($id: UUID!) { deleteSchedule(id: $id, reason: "gone") { __typename ... on Error { code } } }',
            {"id": ids[0]},
            "deleteSchedule",
        ),
    ),
    case(
        "bulk-create",
        [],
        lambda c, ids: _rest(
            c.post(
                "/api/v1/schedules/bulk/create", json={"schedules": [cron_body("b1"), interval_body("b2")]}, headers=H
            )
        ),
        lambda c, ids: _gql(
            c,
            "mutation($i: [CreateScheduleInput!]!) { "
            "bulkCreateSchedules(inputs: $i) { __typename ... on Error { code } } }",
            {"i": [camel(cron_body("b1")), camel(interval_body("b2"))]},
            "bulkCreateSchedules",
        ),
    ),
    case(
        "bulk-create-invalid-item",
        [],
        lambda c, ids: _rest(
            c.post(
                "/api/v1/schedules/bulk/create",
                json={"schedules": [cron_body("b1"), interval_body("b2", seconds=0)]},
                headers=H,
            )
        ),
        lambda c, ids: _gql(
            c,
            "mutation($i: [CreateScheduleInput!]!) { "
            "bulkCreateSchedules(inputs: $i) { __typename ... on Error { code } } }",
            {"i": [camel(cron_body("b1")), camel(interval_body("b2", seconds=0))]},
            "bulkCreateSchedules",
        ),
    ),
    case(
        "bulk-pause",
        [cron_body("x1"), cron_body("x2")],
        lambda c, ids: _rest(
            c.post(
                "/api/v1/schedules/bulk/operation",
                json={"schedule_ids": [*ids, "nope"], "operation": "pause", "reason": "m"},
                headers=H,
            )
        ),
        lambda c, ids: _gql(
            c,
            "mutation($ids: [String!]!) { bulkScheduleOperation(ids: $ids, operation: "
            'PAUSE, reason: "m") { __typename ... on Error { code } } }',
            {"ids": [*ids, "nope"]},
            "bulkScheduleOperation",
        ),
    ),
    case(
        "stats-missing-schedule",
        [],
        lambda c, ids: _rest(c.get(f"/api/v1/executions/stats/{MISSING}")),
        lambda c, ids: _gql(c, f'{{ executionStats(scheduleId: "{MISSING}") {{ total }} }}', None, "executionStats"),
    ),
    case(
        "preview-range-reversed",
        [],
        lambda c, ids: _rest(
            c.post(
                "/api/v1/schedules/preview",
                json={
                    "schedule_type": "cron",
                    "cron_expression": "0 0 * * *",
                    "after": PAST,
                    "until": "2000-01-01T00:00:00Z",
                },
            )
        ),
        lambda c, ids: _gql(
            c,
            '{ previewSchedule(input: {scheduleType: CRON, cronExpression: "0 0 * * *"}, '
            f'after: "{PAST}", until: "2000-01-01T00:00:00Z") {{ at }} }}',
            None,
            "previewSchedule",
        ),
    ),
    case(
        "preview-invalid",
        [],
        lambda c, ids: _rest(
            c.post("/api/v1/schedules/preview", json={"schedule_type": "cron", "cron_expression": "0 0 30 2 *"})
        ),
        lambda c, ids: _gql(
            c,
            '{ previewSchedule(input: {scheduleType: CRON, cronExpression: "0 0 30 2 *"}) { at } }',
            None,
            "previewSchedule",
        ),
    ),
]


async def _rest(request) -> str:
    return rest_outcome(await request)


@pytest.mark.parametrize(("seeds", "rest", "graphql"), CASES)
async def test_rest_and_graphql_agree(client, db, seeds, rest, graphql):
    ids = await seed(client, *seeds)
    rest_result = await rest(client, ids)
    rest_state = await snapshot(db)
    await db.execute(RESET_TABLES)
    ids = await seed(client, *seeds)
    graphql_result = await graphql(client, ids)
    graphql_state = await snapshot(db)
    assert graphql_result == rest_result
    assert graphql_state == rest_state


RETRY = "mutation($id: UUID!) { retryExecution(id: $id) { __typename ... on Error { code } } }"


@pytest.mark.parametrize("status", ["failed", "succeeded"])
async def test_a_retry_by_hand_agrees_over_both_doors(client, db, status):
    """A failed run is retried (pending again, audited); any other is refused with the same code."""
    outcomes, states = [], []
    for door in ("rest", "graphql"):
        await db.execute(RESET_TABLES)
        (schedule_id,) = await seed(client, cron_body("r"))
        run = await insert_execution(db, schedule_id, status=status, attempts=1)
        if door == "rest":
            outcomes.append(await _rest(client.post(f"/api/v1/executions/{run['id']}/retry", headers=H)))
        else:
            outcomes.append(await _gql(client, RETRY, {"id": str(run["id"])}, "retryExecution"))
        states.append(await snapshot(db))

    assert outcomes[0] == outcomes[1] == ("ok" if status == "failed" else "conflict")
    assert states[0] == states[1]


COMPLETE = (
    "mutation($id: UUID!) { completeExecution(id: $id, report: {status: SUCCEEDED, result: {n: 1}}) "
    "{ __typename ... on Error { code } } }"
)


@pytest.mark.parametrize("status", ["awaiting", "succeeded"])
async def test_a_completion_report_agrees_over_both_doors(client, db, status):
    """A run awaiting its report is completed with the result; any other is refused with the same code."""
    outcomes, states = [], []
    for door in ("rest", "graphql"):
        await db.execute(RESET_TABLES)
        (schedule_id,) = await seed(client, cron_body("c"))
        run = await insert_execution(db, schedule_id, status=status, attempts=1)
        if door == "rest":
            body = {"status": "succeeded", "result": {"n": 1}}
            outcomes.append(await _rest(client.post(f"/api/v1/executions/{run['id']}/complete", json=body, headers=H)))
        else:
            outcomes.append(await _gql(client, COMPLETE, {"id": str(run["id"])}, "completeExecution"))
        states.append(await snapshot(db))

    assert outcomes[0] == outcomes[1] == ("ok" if status == "awaiting" else "conflict")
    assert states[0] == states[1]
