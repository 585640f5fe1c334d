"""Malformed requests: every one answers a 4xx problem+json naming the offending field, and writes nothing.

One table drives `test_malformed_request_is_rejected`. Each row is
(id, method, path, body, expected status, expected field in `errors[*].field`), plus optional
request headers and an optional extra setup step. In a row:

* `path` may contain `{id}` (a cron schedule "base" created by alice in the setup) or `{eid}`
  (an execution of it, made by POST /api/v1/schedules/{id}/trigger); a query string goes in `path`;
* `body` is None (no body), `bytes` (sent raw as application/json) or anything else (sent as JSON);
  `at(...)` inside a body stands for the frozen clock's now plus that offset, as ISO 8601.

The setup also creates a second schedule "other" of alice, so alice owns 2 schedules (quota: 5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

PROBLEM = "application/problem+json"
API = "/api/v1"
BASE_HEADERS = {"X-Created-By": "alice"}
NOT_A_UUID = "not-a-uuid"
MALFORMED_JSON = b'{"name": "x", '
HUGE_NESTING = 10_000


# ---- body builders -----------------------------------------------------------------------


@dataclass(frozen=True)
class _At:
    """Placeholder for `clock.now + delta`, resolved when the request is sent."""

    delta: timedelta


def at(**delta: float) -> _At:
    return _At(timedelta(**delta))


def cron(**fields: Any) -> dict[str, Any]:
    """A valid cron schedule body, with `fields` overriding (a value of ... removes the field)."""
    body = {
        "name": "nightly-report",
        "schedule_type": "cron",
        "cron_expression": "0 3 * * *",
        "target_command": "cmd.reports.build",
        "command_payload": {"report": "daily"},
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def interval(**fields: Any) -> dict[str, Any]:
    return cron(**{"schedule_type": "interval", "cron_expression": ..., "interval_seconds": 600, **fields})


def once(**fields: Any) -> dict[str, Any]:
    return cron(**{"schedule_type": "once", "cron_expression": ..., "run_at": at(hours=1), **fields})


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw_json(body: dict[str, Any], **raw: str) -> bytes:
    """`body` as JSON bytes, with each `raw` key's value spliced in verbatim (for huge nesting)."""
    text = json.dumps({**body, **{key: f"@@{key}@@" for key in raw}})
    for key, value in raw.items():
        text = text.replace(f'"@@{key}@@"', value)
    return text.encode()


# ---- extra setup steps ------------------------------------------------------------------


async def fill_quota(client, ids: dict[str, str]) -> None:
    """alice owns 2 schedules after the common setup: 3 more reach the test quota of 5."""
    for n in range(3):
        await _ok(client.post(f"{API}/schedules", json=cron(name=f"filler-{n}"), headers=BASE_HEADERS))


# ---- the table ---------------------------------------------------------------------------


def case(id, method, path, body, status, field, headers=None, setup=None):
    return pytest.param(method, path, body, status, field, headers or {}, setup, id=id)


S = f"{API}/schedules"
E = f"{API}/executions"

CASES = [
    # -- cron expressions
    case("cron-garbage", "POST", S, cron(cron_expression="every tuesday"), 422, "cron_expression"),
    case("cron-7-fields", "POST", S, cron(cron_expression="0 0 0 * * * *"), 422, "cron_expression"),
    case("cron-minute-60", "POST", S, cron(cron_expression="60 * * * *"), 422, "cron_expression"),
    case("cron-@reboot", "POST", S, cron(cron_expression="@reboot"), 422, "cron_expression"),
    case("cron-never-fires", "POST", S, cron(cron_expression="0 0 30 2 *"), 422, "cron_expression"),
    case("cron-missing", "POST", S, cron(cron_expression=...), 422, "cron_expression"),
    # -- time zones
    case("tz-unknown", "POST", S, cron(timezone="Mars/Olympus_Mons"), 422, "timezone"),
    case("tz-empty", "POST", S, cron(timezone=""), 422, "timezone"),
    case("tz-path-trick", "POST", S, cron(timezone="../etc/passwd"), 422, "timezone"),
    # -- interval schedules
    case("interval-zero", "POST", S, interval(interval_seconds=0), 422, "interval_seconds"),
    case("interval-negative", "POST", S, interval(interval_seconds=-60), 422, "interval_seconds"),
    case("interval-over-365-days", "POST", S, interval(interval_seconds=366 * 86400), 422, "interval_seconds"),
    case("interval-missing", "POST", S, interval(interval_seconds=...), 422, "interval_seconds"),
    case("interval-fractional", "POST", S, interval(interval_seconds=10.5), 422, "interval_seconds"),
    case("interval-with-cron", "POST", S, interval(cron_expression="0 * * * *"), 422, "cron_expression"),
    # -- once schedules
    case("once-run_at-past", "POST", S, once(run_at=at(hours=-1)), 422, "run_at"),
    case("once-run_at-beyond-lookahead", "POST", S, once(run_at=at(days=366)), 422, "run_at"),
    case("once-run_at-missing", "POST", S, once(run_at=...), 422, "run_at"),
    case("once-run_at-not-a-date", "POST", S, once(run_at="tomorrow-ish"), 422, "run_at"),
    # -- start/end window
    case("end_at-before-start_at", "POST", S, cron(start_at=at(days=2), end_at=at(days=1)), 422, "end_at"),
    # -- command payload
    case("payload-list", "POST", S, cron(command_payload=[1, 2, 3]), 422, "command_payload"),
    case("payload-string", "POST", S, cron(command_payload="{}"), 422, "command_payload"),
    case("payload-number", "POST", S, cron(command_payload=42), 422, "command_payload"),
    case("payload-65KiB", "POST", S, cron(command_payload={"blob": "x" * (65 * 1024)}), 422, "command_payload"),
    case(
        "payload-unknown-template", "POST", S, cron(command_payload={"msg": "hi {{nope}}"}), 422, "command_payload.msg"
    ),
    case(
        "payload-nested-300-deep",
        "POST",
        S,
        cron(command_payload={"deep": json.loads(nested_lists(300))}),
        422,
        "command_payload",
    ),
    # -- scalar types and ranges
    case("priority-minus-1", "POST", S, cron(priority=-1), 422, "priority"),
    case("priority-11", "POST", S, cron(priority=11), 422, "priority"),
    case("priority-string", "POST", S, cron(priority="high"), 422, "priority"),
    case("tags-as-string", "POST", S, cron(tags="a,b"), 422, "tags"),
    case("tag-with-comma", "POST", S, cron(tags=["a,b"]), 422, "tags.0"),
    case("unknown-field", "POST", S, cron(colour="blue"), 422, "colour"),
    # -- names
    case("name-missing", "POST", S, cron(name=...), 422, "name"),
    case("name-empty", "POST", S, cron(name=""), 422, "name"),
    case("name-blank", "POST", S, cron(name="   "), 422, "name"),
    case("name-256-chars", "POST", S, cron(name="n" * 256), 422, "name"),
    # -- target command (a concrete, non-reserved NATS subject)
    case("target-wildcard", "POST", S, cron(target_command="cmd.*"), 422, "target_command"),
    case("target-gt-wildcard", "POST", S, cron(target_command="cmd.>"), 422, "target_command"),
    case("target-spaces", "POST", S, cron(target_command="cmd.do it"), 422, "target_command"),
    case("target-reserved", "POST", S, cron(target_command="cmd.scheduler.x"), 422, "target_command"),
    case("target-empty", "POST", S, cron(target_command=""), 422, "target_command"),
    case("target-empty-token", "POST", S, cron(target_command="cmd..x"), 422, "target_command"),
    # -- enums
    case("schedule_type-unknown", "POST", S, cron(schedule_type="weekly"), 422, "schedule_type"),
    case("dst_gap-unknown", "POST", S, cron(dst_gap="maybe"), 422, "dst_gap"),
    case("catchup-unknown", "POST", S, cron(catchup="sometimes"), 422, "catchup"),
    # -- body shape
    case("json-malformed", "POST", S, MALFORMED_JSON, 422, "body"),
    case("json-array-body", "POST", S, [cron()], 422, "body"),
    case("json-missing-body", "POST", S, None, 422, "body"),
    # -- bad UUID in every path that takes one
    case("uuid-get", "GET", f"{S}/{NOT_A_UUID}", None, 422, "schedule_id"),
    case("uuid-put", "PUT", f"{S}/{NOT_A_UUID}", {"priority": 3}, 422, "schedule_id"),
    case("uuid-delete", "DELETE", f"{S}/{NOT_A_UUID}", None, 422, "schedule_id"),
    case("uuid-pause", "POST", f"{S}/{NOT_A_UUID}/pause", None, 422, "schedule_id"),
    case("uuid-resume", "POST", f"{S}/{NOT_A_UUID}/resume", None, 422, "schedule_id"),
    case("uuid-trigger", "POST", f"{S}/{NOT_A_UUID}/trigger", None, 422, "schedule_id"),
    case("uuid-execution", "GET", f"{E}/{NOT_A_UUID}", None, 422, "execution_id"),
    case("uuid-stats", "GET", f"{E}/stats/{NOT_A_UUID}", None, 422, "schedule_id"),
    case("uuid-schedule-executions", "GET", f"{S}/{NOT_A_UUID}/executions", None, 422, "schedule_id"),
    case("uuid-executions-filter", "GET", f"{E}?schedule_id={NOT_A_UUID}", None, 422, "schedule_id"),
    # -- well-formed UUIDs of the wrong kind (an execution id where a schedule id belongs)
    case("stats-of-execution-id", "GET", f"{E}/stats/{{eid}}", None, 404, "schedule_id"),
    case("trigger-execution-id", "POST", f"{S}/{{eid}}/trigger", None, 404, "schedule_id"),
    case("executions-filter-execution-id", "GET", f"{E}?schedule_id={{eid}}", None, 404, "schedule_id"),
    # -- list filters and paging
    case("filter-status-bogus", "GET", f"{S}?status=bogus", None, 422, "status"),
    case("filter-schedule_type-x", "GET", f"{S}?schedule_type=x", None, 422, "schedule_type"),
    case("filter-is_active-maybe", "GET", f"{S}?is_active=maybe", None, 422, "is_active"),
    case("filter-execution-status-bogus", "GET", f"{E}?status=bogus", None, 422, "status"),
    case("filter-execution-status-in-list", "GET", f"{S}/{{id}}/executions?status=failed,bogus", None, 422, "status"),
    case("filter-since-not-a-date", "GET", f"{E}?since=yesterday", None, 422, "since"),
    case("limit-0", "GET", f"{S}?limit=0", None, 422, "limit"),
    case("limit-1000", "GET", f"{S}?limit=1000", None, 422, "limit"),
    case("page-0", "GET", f"{S}?page=0", None, 422, "page"),
    case("executions-limit-0", "GET", f"{E}?limit=0", None, 422, "limit"),
    # -- bulk create (all or nothing)
    case("bulk-create-empty", "POST", f"{S}/bulk/create", {"schedules": []}, 422, "schedules"),
    case(
        "bulk-create-101",
        "POST",
        f"{S}/bulk/create",
        {"schedules": [cron(name=f"bulk-{n}") for n in range(101)]},
        422,
        "schedules",
    ),
    case(
        "bulk-create-item-1-bad-cron",
        "POST",
        f"{S}/bulk/create",
        {"schedules": [cron(name="b0"), cron(name="b1", cron_expression="nope"), cron(name="b2")]},
        422,
        "schedules.1.cron_expression",
    ),
    case(
        "bulk-create-item-1-bad-priority",
        "POST",
        f"{S}/bulk/create",
        {"schedules": [cron(name="b0"), cron(name="b1", priority=11), cron(name="b2")]},
        422,
        "schedules.1.priority",
    ),
    case(
        "bulk-create-duplicate-names",
        "POST",
        f"{S}/bulk/create",
        {"schedules": [cron(name="twin"), cron(name="twin")]},
        422,
        "schedules.1.name",
    ),
    # -- bulk operation
    case(
        "bulk-op-unknown-operation",
        "POST",
        f"{S}/bulk/operation",
        {"schedule_ids": ["{id}"], "operation": "explode"},
        422,
        "operation",
    ),
    case(
        "bulk-op-empty-ids",
        "POST",
        f"{S}/bulk/operation",
        {"schedule_ids": [], "operation": "pause"},
        422,
        "schedule_ids",
    ),
    case(
        "bulk-op-101-ids",
        "POST",
        f"{S}/bulk/operation",
        {"schedule_ids": ["{id}"] * 101, "operation": "delete"},
        422,
        "schedule_ids",
    ),
    # -- updates
    case("put-stale-version", "PUT", f"{S}/{{id}}", {"priority": 3, "version": 7}, 409, "version"),
    case("put-duplicate-name", "PUT", f"{S}/{{id}}", {"name": "other"}, 409, "name"),
    case("put-name-null", "PUT", f"{S}/{{id}}", {"name": None}, 422, "name"),
    case("put-priority-11", "PUT", f"{S}/{{id}}", {"priority": 11}, 422, "priority"),
    case("put-bad-cron", "PUT", f"{S}/{{id}}", {"cron_expression": "61 * * * *"}, 422, "cron_expression"),
    case("put-unknown-field", "PUT", f"{S}/{{id}}", {"colour": "blue"}, 422, "colour"),
    case("put-version-0", "PUT", f"{S}/{{id}}", {"version": 0}, 422, "version"),
    # -- quota and uniqueness (same creator)
    case("quota-6th-schedule", "POST", S, cron(name="sixth"), 429, "created_by", setup=fill_quota),
    case("duplicate-name", "POST", S, cron(name="base"), 409, "name"),
    # -- principal headers
    case("created-by-newline", "POST", S, cron(), 422, "X-Created-By", headers={"X-Created-By": "mal\nlory"}),
    case("created-by-300-chars", "POST", S, cron(), 422, "X-Created-By", headers={"X-Created-By": "m" * 300}),
    # -- trigger / pause bodies
    case("trigger-override-list", "POST", f"{S}/{{id}}/trigger", {"override_payload": [1, 2]}, 422, "override_payload"),
    case("trigger-override-string", "POST", f"{S}/{{id}}/trigger", {"override_payload": "x"}, 422, "override_payload"),
    case(
        "trigger-override-unknown-template",
        "POST",
        f"{S}/{{id}}/trigger",
        {"override_payload": {"a": ["{{nope}}"]}},
        422,
        "override_payload.a.0",
    ),
    case("pause-reason-too-long", "POST", f"{S}/{{id}}/pause", {"reason": "r" * 1001}, 422, "reason"),
    # -- preview (validates like create)
    case(
        "preview-bad-cron",
        "POST",
        f"{S}/preview",
        {"schedule_type": "cron", "cron_expression": "x"},
        422,
        "cron_expression",
    ),
    case(
        "preview-count-0",
        "POST",
        f"{S}/preview",
        {"schedule_type": "cron", "cron_expression": "* * * * *", "count": 0},
        422,
        "count",
    ),
]


# ---- helpers -----------------------------------------------------------------------------


async def _ok(request) -> dict[str, Any]:
    response = await request
    assert response.status_code < 300, response.text
    return response.json()


def _resolve(value: Any, now, ids: dict[str, str]) -> Any:
    """Replace `at(...)` markers and `{id}`/`{eid}` in strings, recursively."""
    if isinstance(value, _At):
        return (now + value.delta).isoformat()
    if isinstance(value, str):
        return value.replace("{id}", ids["id"]).replace("{eid}", ids["eid"])
    if isinstance(value, dict):
        return {k: _resolve(v, now, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, now, ids) for v in value]
    return value


async def _snapshot(db) -> dict[str, tuple[int, str | None]]:
    """Row count and a digest of every row of the three tables: any write changes one of them."""
    result = {}
    for table in ("schedules", "executions", "audit_log"):
        result[table] = tuple(
            await db.fetchrow(f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t")
        )
    return result


async def _send(client, method: str, path: str, body: Any, headers: dict[str, str]):
    if body is None:
        return await client.request(method, path, headers=headers)
    if isinstance(body, bytes):
        return await client.request(method, path, content=body, headers={**headers, "Content-Type": "application/json"})
    return await client.request(method, path, json=body, headers=headers)


def _assert_problem(response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.status_code < 500
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM, response.headers["content-type"]
    problem = response.json()
    assert problem["status"] == response.status_code, problem
    assert isinstance(problem["detail"], str) and problem["detail"].strip(), problem
    if field is not None:
        fields = [e["field"] for e in problem.get("errors", [])]
        assert field in fields, f"expected field {field!r} in {fields}: {problem}"
    return problem


@pytest.fixture
async def ids(client) -> dict[str, str]:
    """alice's schedules "base" and "other", and one manual execution of "base"."""
    base = await _ok(client.post(f"{API}/schedules", json=cron(name="base"), headers=BASE_HEADERS))
    await _ok(client.post(f"{API}/schedules", json=cron(name="other"), headers=BASE_HEADERS))
    run = await _ok(client.post(f"{API}/schedules/{base['id']}/trigger", headers=BASE_HEADERS))
    return {"id": base["id"], "eid": run["execution_id"]}


# ---- tests -------------------------------------------------------------------------------


def test_table_is_big_enough():
    assert len(CASES) >= 45


@pytest.mark.parametrize("method, path, body, status, field, headers, setup", CASES)
async def test_malformed_request_is_rejected(client, db, clock, ids, method, path, body, status, field, headers, setup):
    assert 400 <= status < 500
    if setup is not None:
        await setup(client, ids)
    before = await _snapshot(db)

    response = await _send(
        client, method, _resolve(path, clock.now, ids), _resolve(body, clock.now, ids), {**BASE_HEADERS, **headers}
    )

    _assert_problem(response, status, field)
    assert await _snapshot(db) == before, "a rejected request wrote to the database"


# Bodies the JSON parser itself chokes on (syntax error, nesting beyond the recursion limit).


@pytest.mark.parametrize(
    "path, raw",
    [
        pytest.param(f"{API}/schedules", MALFORMED_JSON, id="malformed-json"),
        pytest.param(f"{API}/schedules/bulk/create", MALFORMED_JSON, id="malformed-json-bulk"),
        pytest.param(f"{API}/schedules", nested_lists(HUGE_NESTING).encode(), id="nested-lists-as-body"),
        pytest.param(
            f"{API}/schedules",
            raw_json(cron(), command_payload='{"deep": %s}' % nested_lists(HUGE_NESTING)),
            id="nested-lists-in-payload",
        ),
        pytest.param(
            f"{API}/schedules/{{id}}/trigger",
            raw_json({}, override_payload='{"deep": %s}' % nested_lists(HUGE_NESTING)),
            id="nested-lists-in-override",
        ),
        # Python's json module reads these non-standard literals; PostgreSQL's jsonb does not.
        pytest.param(f"{API}/schedules", raw_json(cron(), command_payload='{"x": NaN}'), id="nan-in-payload"),
        pytest.param(
            f"{API}/schedules/bulk/create",
            b'{"schedules": [%s]}' % raw_json(cron(), command_payload='{"x": Infinity}'),
            id="infinity-in-bulk",
        ),
    ],
)
async def test_unparseable_bodies_answer_4xx(client, db, clock, ids, path, raw):
    before = await _snapshot(db)

    response = await _send(client, "POST", _resolve(path, clock.now, ids), raw, BASE_HEADERS)

    assert 400 <= response.status_code < 500, response.text[:500]
    _assert_problem(response, response.status_code, None)
    assert await _snapshot(db) == before, "a rejected request wrote to the database"
