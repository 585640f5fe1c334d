"""Time over REST against the real PostgreSQL: previews of any range, and hashed (H) cron fields."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from core.cronexpr import next_wall_time, parse_cron
from tests.support.http import create, cron_body

UTC = timezone.utc
PREVIEW = "/api/v1/schedules/preview"


async def test_a_preview_of_the_past_lists_the_fires_the_rule_defines(client, db, clock):
    body = {"schedule_type": "cron", "cron_expression": "0 23-3/2 * * *", "timezone": "Europe/Berlin"}
    after = "2020-01-31T22:00:00+01:00"
    response = await client.post(PREVIEW, json={**body, "after": after, "count": 7})

    assert response.status_code == 200, response.text
    local = [f["local_time"][:16] for f in response.json()["fire_times"]]
    assert local == [
        "2020-01-31T23:00",
        "2020-02-01T01:00",
        "2020-02-01T03:00",
        "2020-02-01T23:00",
        "2020-02-02T01:00",
        "2020-02-02T03:00",
        "2020-02-02T23:00",
    ]
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0


async def test_a_preview_stops_at_until_and_includes_a_fire_at_after(client):
    body = {"schedule_type": "cron", "cron_expression": "0 0 * * *", "timezone": "UTC"}
    window = {"after": "2021-03-01T00:00:00Z", "until": "2021-03-04T00:00:00Z", "count": 100}
    fires = (await client.post(PREVIEW, json={**body, **window})).json()["fire_times"]

    assert [f["at"][:10] for f in fires] == ["2021-03-01", "2021-03-02", "2021-03-03", "2021-03-04"]


async def test_a_naive_after_is_wall_time_in_the_schedules_zone(client):
    body = {"schedule_type": "cron", "cron_expression": "0 9 * * *", "timezone": "Asia/Tokyo"}
    fires = (await client.post(PREVIEW, json={**body, "after": "2022-05-01T09:00:00", "count": 1})).json()
    assert fires["fire_times"][0]["at"].startswith("2022-05-01T00:00:00")


async def test_a_preview_range_in_the_wrong_order_is_refused_naming_until(client):
    body = {"schedule_type": "cron", "cron_expression": "0 0 * * *"}
    response = await client.post(
        PREVIEW, json={**body, "after": "2021-03-02T00:00:00Z", "until": "2021-03-01T00:00:00Z"}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["until"]


async def test_a_once_schedule_in_the_past_previews_from_a_past_after(client):
    body = {"schedule_type": "once", "run_at": "2020-06-01T12:00:00Z", "after": "2020-05-01T00:00:00Z"}
    fires = (await client.post(PREVIEW, json=body)).json()["fire_times"]
    assert [f["at"] for f in fires] == ["2020-06-01T12:00:00Z"]


async def test_a_bad_expression_names_the_cron_field(client, db):
    response = await client.post("/api/v1/schedules", json={**cron_body(), "cron_expression": "*/60 * * * *"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "cron_expression" and "minute field: step 60" in error["message"]
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0


async def test_hashed_fields_take_values_from_the_schedule_id_and_keep_them_on_edit(client, db, clock):
    created = await create(client, {**cron_body(), "cron_expression": "H H(0-5) * * *", "timezone": "UTC"})
    resolved = parse_cron("H H(0-5) * * *", created["id"]).resolved
    assert created["resolved_cron"] == resolved
    hour = int(resolved.split()[1])
    expected = next_wall_time(parse_cron(resolved), clock.now.replace(tzinfo=None) + timedelta(seconds=1))
    assert datetime.fromisoformat(created["next_run_at"]) == expected.replace(tzinfo=UTC)
    assert 0 <= hour <= 5

    edited = await client.put(f"/api/v1/schedules/{created['id']}", json={"description": "same time"})
    assert edited.json()["resolved_cron"] == resolved
    body = {"schedule_type": "cron", "cron_expression": "H H(0-5) * * *", "timezone": "UTC", "hash_key": created["id"]}
    preview = (await client.post(PREVIEW, json=body)).json()
    assert preview["resolved_cron"] == resolved
    assert preview["fire_times"][0]["at"] == created["next_run_at"].replace("+00:00", "Z")


async def _late_daily(client, clock) -> dict:
    """A daily 09:00 New York schedule whose next slot fell due a minute ago and is not recorded yet."""
    created = await create(client, cron_body(misfire_grace_seconds=3600))
    clock.now = datetime.fromisoformat(created["next_run_at"]) + timedelta(minutes=1)
    return created


async def test_an_edit_dry_run_answers_what_the_edit_would_do_and_saves_nothing(client, db, clock):
    created = await _late_daily(client, clock)
    url = f"/api/v1/schedules/{created['id']}"
    before_rows = await db.fetch("SELECT * FROM schedules")
    response = await client.put(url, params={"dry_run": "true"}, json={"cron_expression": "0 10 * * *"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["dry_run"] is True and answer["schedule"]["cron_expression"] == "0 10 * * *"
    assert [f["local_time"][11:16] for f in answer["fire_times_before"]] == ["09:00"] * 5
    assert [f["local_time"][11:16] for f in answer["fire_times_after"]] == ["10:00"] * 5
    assert answer["slots_recorded"] == [{"scheduled_for": created["next_run_at"], "status": "pending"}]
    assert answer["runs_kept"] == []
    assert await db.fetch("SELECT * FROM schedules") == before_rows
    assert await db.fetchval("SELECT count(*) FROM executions") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'schedule.updated'") == 0

    real = (await client.put(url, json={"cron_expression": "0 10 * * *"})).json()
    assert {k: v for k, v in real.items() if k != "updated_at"} == {
        k: v for k, v in answer["schedule"].items() if k != "updated_at"
    }
    recorded = await db.fetch("SELECT scheduled_for, status FROM executions")
    assert [(r["scheduled_for"], r["status"]) for r in recorded] == [
        (datetime.fromisoformat(created["next_run_at"]), "pending")
    ]


async def test_an_edit_dry_run_lists_the_runs_it_keeps_and_refuses_what_the_edit_would(client, db, clock):
    created = await create(client, cron_body())
    url = f"/api/v1/schedules/{created['id']}"
    triggered = (await client.post(f"{url}/trigger", json={})).json()
    answer = (await client.put(url, params={"dry_run": "true"}, json={"description": "x"})).json()
    assert [r["id"] for r in answer["runs_kept"]] == [triggered["execution_id"]]
    assert answer["slots_recorded"] == [] and answer["fire_times_before"] == answer["fire_times_after"]

    refused = await client.put(url, params={"dry_run": "true"}, json={"cron_expression": "0 0 L-31 * *"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "cron_expression"
    stale = await client.put(url, params={"dry_run": "true"}, json={"description": "y", "version": 99})
    assert stale.status_code == 409
