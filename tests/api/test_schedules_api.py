"""Schedule management through REST against the real PostgreSQL: what is answered and what is stored."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.support.http import create, cron_body, interval_body

NY = ZoneInfo("America/New_York")


async def test_create_stores_schedule_and_audit_in_one_go(client, db, clock):
    created = await create(client, cron_body(), creator="notification-service")
    row = await db.fetchrow("SELECT * FROM schedules WHERE id = $1", created["id"])
    assert row["created_by"] == "notification-service" and row["status"] == "active"
    local = row["next_run_at"].astimezone(NY)
    assert (local.hour, local.minute) == (9, 0) and row["next_run_at"] > clock.now
    assert row["next_run_at"] - clock.now <= timedelta(days=1, hours=1)
    audit = await db.fetch("SELECT * FROM audit_log WHERE schedule_id = $1", created["id"])
    assert [a["action"] for a in audit] == ["schedule.created"]
    assert audit[0]["actor"] == "notification-service" and audit[0]["correlation_id"]


async def test_defaults_come_from_settings(client, settings):
    created = await create(client, interval_body())
    assert created["max_retries"] == settings.DEFAULT_MAX_RETRIES
    assert created["retry_delay"] == settings.DEFAULT_RETRY_DELAY
    assert created["misfire_grace_seconds"] == settings.DEFAULT_MISFIRE_GRACE_SECONDS
    assert created["max_concurrent"] == settings.DEFAULT_MAX_CONCURRENT
    assert created["timezone"] == settings.DEFAULT_TIMEZONE


async def test_interval_first_fire_is_one_period_after_creation(client, clock):
    created = await create(client, interval_body(seconds=90))
    assert datetime.fromisoformat(created["next_run_at"]) == clock.now + timedelta(seconds=90)


async def test_immediate_and_once_are_due_at_their_instant(client, clock):
    immediate = await create(client, {**interval_body("now"), "schedule_type": "immediate", "interval_seconds": None})
    assert datetime.fromisoformat(immediate["next_run_at"]) == clock.now
    run_at = clock.now + timedelta(hours=2)
    once = await create(
        client,
        {**interval_body("later"), "schedule_type": "once", "interval_seconds": None, "run_at": run_at.isoformat()},
    )
    assert datetime.fromisoformat(once["next_run_at"]) == run_at


async def test_naive_run_at_is_wall_time_in_the_schedule_zone(client, clock):
    local = (clock.now + timedelta(days=3)).astimezone(NY).replace(tzinfo=None, microsecond=0)
    body = {
        **interval_body("naive"),
        "schedule_type": "once",
        "interval_seconds": None,
        "run_at": local.isoformat(),
        "timezone": "America/New_York",
    }
    created = await create(client, body)
    assert datetime.fromisoformat(created["run_at"]) == local.replace(tzinfo=NY).astimezone(timezone.utc)


async def test_list_filters_and_stable_pagination(client):
    for i in range(7):
        await create(
            client,
            cron_body(f"a-{i}", tags=["email"] if i % 2 else ["sms"]),
            creator="creator-a" if i < 4 else "creator-b",
        )
    b = await client.get("/api/v1/schedules", params={"created_by": "creator-b"})
    assert b.json()["total"] == 3
    email = await client.get("/api/v1/schedules", params={"tags": "email"})
    assert {s["name"] for s in email.json()["items"]} == {"a-1", "a-3", "a-5"}
    search = await client.get("/api/v1/schedules", params={"search": "A-6"})
    assert [s["name"] for s in search.json()["items"]] == ["a-6"]
    pages = [await client.get("/api/v1/schedules", params={"limit": 3, "page": p}) for p in (1, 2, 3)]
    names = [s["name"] for p in pages for s in p.json()["items"]]
    assert len(names) == 7 and len(set(names)) == 7
    assert all(p.json()["total"] == 7 and p.json()["pages"] == 3 for p in pages)
    by_type = await client.get("/api/v1/schedules", params={"schedule_type": "interval"})
    assert by_type.json()["total"] == 0


async def test_update_is_partial_recomputes_next_run_and_checks_version(client, db, clock):
    created = await create(client, cron_body())
    response = await client.put(
        f"/api/v1/schedules/{created['id']}",
        json={"cron_expression": "*/5 * * * *", "version": 1},
        headers={"X-Updated-By": "ops"},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["version"] == 2 and updated["name"] == "daily" and updated["priority"] == 7
    next_run = datetime.fromisoformat(updated["next_run_at"])
    assert clock.now < next_run <= clock.now + timedelta(minutes=5) and next_run.minute % 5 == 0
    stale = await client.put(f"/api/v1/schedules/{created['id']}", json={"priority": 1, "version": 1})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    assert (await db.fetchval("SELECT priority FROM schedules WHERE id=$1", created["id"])) == 7
    audit = await db.fetchrow("SELECT * FROM audit_log WHERE action='schedule.updated'")
    assert audit["actor"] == "ops"
    assert '"0 9 * * *"' in audit["before"] and '"*/5 * * * *"' in audit["after"]


async def test_update_without_rule_change_keeps_next_run(client):
    created = await create(client, cron_body())
    updated = (await client.put(f"/api/v1/schedules/{created['id']}", json={"description": "new"})).json()
    assert updated["next_run_at"] == created["next_run_at"] and updated["description"] == "new"


async def test_delete_keeps_history_and_frees_the_name(client, db):
    created = await create(client, cron_body())
    trigger = await client.post(f"/api/v1/schedules/{created['id']}/trigger")
    assert trigger.status_code == 200
    assert (await client.delete(f"/api/v1/schedules/{created['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/schedules/{created['id']}")).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM executions WHERE schedule_id=$1", created["id"]) == 1
    actions = {r["action"] for r in await db.fetch("SELECT action FROM audit_log WHERE schedule_id=$1", created["id"])}
    assert actions == {"schedule.created", "schedule.triggered", "schedule.deleted"}
    execution = await client.get(f"/api/v1/executions/{trigger.json()['execution_id']}")
    assert execution.status_code == 200
    await create(client, cron_body())  # the name is free again


async def test_pause_resume_and_misfires_during_pause(client, db, clock):
    created = await create(client, interval_body(seconds=60, catchup="latest", misfire_grace_seconds=30))
    paused = await client.post(f"/api/v1/schedules/{created['id']}/pause", params={"reason": "maintenance"})
    assert paused.json()["status"] == "paused" and paused.json()["status_reason"] == "maintenance"
    clock.now += timedelta(minutes=10, seconds=10)
    resumed = await client.post(f"/api/v1/schedules/{created['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    assert datetime.fromisoformat(resumed.json()["next_run_at"]) > clock.now
    rows = await db.fetch("SELECT status, reason FROM executions WHERE schedule_id=$1", created["id"])
    fired = [r for r in rows if r["status"] == "pending"]
    missed = [r for r in rows if r["status"] == "missed"]
    # 10 slots fell due; the newest (10 s late) is within the grace and fires, the rest are recorded.
    assert len(fired) == 1 and len(missed) == 9
    assert {r["reason"] for r in missed} == {"paused"}


async def test_pausing_twice_is_harmless_and_completed_cannot_pause(client, db):
    created = await create(client, cron_body())
    for _ in range(2):
        assert (await client.post(f"/api/v1/schedules/{created['id']}/pause")).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action='schedule.paused'") == 1
    await db.execute("UPDATE schedules SET status='completed' WHERE id=$1", created["id"])
    response = await client.post(f"/api/v1/schedules/{created['id']}/pause")
    assert response.status_code == 409 and response.json()["errors"][0]["field"] == "status"


async def test_a_snooze_is_answered_with_its_end_and_a_past_end_is_refused_naming_until(client, db, clock):
    created = await create(client, cron_body())
    url = f"/api/v1/schedules/{created['id']}/pause"
    past = await client.post(url, json={"reason": "nap", "until": (clock.now - timedelta(minutes=1)).isoformat()})
    assert past.status_code == 422 and [e["field"] for e in past.json()["errors"]] == ["until"]
    assert await db.fetchval("SELECT status FROM schedules WHERE id=$1", created["id"]) == "active"

    until = clock.now + timedelta(hours=2)
    snoozed = await client.post(url, json={"reason": "nap", "until": until.isoformat()})

    assert snoozed.status_code == 200 and datetime.fromisoformat(snoozed.json()["paused_until"]) == until
    assert await db.fetchval("SELECT paused_until FROM schedules WHERE id=$1", created["id"]) == until


async def test_trigger_records_a_pending_manual_execution(client, db, clock):
    created = await create(client, cron_body())
    response = await client.post(
        f"/api/v1/schedules/{created['id']}/trigger",
        json={"override_payload": {"x": 1}},
        headers={"X-Triggered-By": "admin"},
    )
    row = await db.fetchrow("SELECT * FROM executions WHERE id=$1", response.json()["execution_id"])
    assert row["status"] == "pending" and row["trigger_type"] == "manual" and row["triggered_by"] == "admin"
    assert row["scheduled_for"] == clock.now and row["payload_override"] == '{"x": 1}'


async def test_bulk_create_is_all_or_nothing(client, db):
    good = [cron_body(f"bulk-{i}") for i in range(3)]
    bad = [*good, cron_body("bulk-bad", cron_expression="61 * * * *")]
    response = await client.post("/api/v1/schedules/bulk/create", json={"schedules": bad})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["schedules.3.cron_expression"]
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0
    response = await client.post(
        "/api/v1/schedules/bulk/create", json={"schedules": good}, headers={"X-Created-By": "bulk"}
    )
    assert response.status_code == 201 and response.json()["created"] == 3
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action='schedule.created'") == 3


async def test_bulk_operation_reports_each_id(client, db):
    a = await create(client, cron_body("a"))
    b = await create(client, cron_body("b"))
    missing = "00000000-0000-0000-0000-000000000000"
    response = await client.post(
        "/api/v1/schedules/bulk/operation",
        json={"schedule_ids": [a["id"], b["id"], missing, "nope"], "operation": "pause", "reason": "window"},
        headers={"X-Performed-By": "admin"},
    )
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 2)
    assert [r["error"]["code"] if r["error"] else r["status"] for r in body["results"]] == [
        "paused",
        "paused",
        "not_found",
        "invalid_id",
    ]
    reasons = await db.fetch("SELECT actor, reason FROM audit_log WHERE action='schedule.paused'")
    assert {(r["actor"], r["reason"]) for r in reasons} == {("admin", "window")}
    resumed = await client.post(
        "/api/v1/schedules/bulk/operation", json={"schedule_ids": [a["id"]], "operation": "delete"}
    )
    assert resumed.json()["results"][0]["status"] == "deleted"


async def test_quota_per_creator(client, settings):
    for i in range(settings.MAX_SCHEDULES_PER_CREATOR):
        await create(client, cron_body(f"q-{i}"), creator="greedy")
    response = await client.post("/api/v1/schedules", json=cron_body("one-more"), headers={"X-Created-By": "greedy"})
    assert response.status_code == 429 and response.json()["code"] == "quota_exceeded"
    await create(client, cron_body("other"), creator="someone-else")


async def test_preview_shows_dst_shift_and_saves_nothing(client, db, clock):
    body = {
        "schedule_type": "cron",
        "cron_expression": "30 2 * * *",
        "timezone": "America/New_York",
        "count": 366,
        "name": "ignored",
    }
    assert (await client.post("/api/v1/schedules/preview", json=body)).status_code == 422
    body["count"] = 100
    body["start_at"] = "2027-03-10T00:00:00-05:00"
    body.pop("count")
    response = await client.post(
        "/api/v1/schedules/preview", json={**body, "start_at": "2027-03-12T00:00:00Z", "count": 5}
    )
    fires = response.json()["fire_times"]
    assert len(fires) == 5
    shifted = [f for f in fires if f["note"]]
    assert len(shifted) == 1 and shifted[0]["local_time"].startswith("2027-03-14T03:00:00-04:00")
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"pause_after_failures": 0}, "pause_after_failures"),
        ({"pause_after_failures": 1001}, "pause_after_failures"),
        ({"dead_letter_subject": "cmd.scheduler.schedule.delete"}, "dead_letter_subject"),
        ({"dead_letter_subject": "evt.>"}, "dead_letter_subject"),
    ],
)
async def test_bad_failure_handling_fields_are_422_naming_the_field_and_store_nothing(client, db, fields, field):
    response = await client.post("/api/v1/schedules", json={**cron_body(), **fields})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await db.fetchval("SELECT count(*) FROM schedules") == 0
