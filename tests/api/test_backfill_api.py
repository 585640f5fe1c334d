"""Backfills over REST against the real PostgreSQL: the plan, the recorded runs, a repeat, the pacing
of their hand-over, progress and cancellation, and refusals."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support.http import create, cron_body, interval_body

HOUR = timedelta(hours=1)


async def _hourly(client, clock, hours_ago: int = 30) -> dict:
    """An hourly interval schedule anchored `hours_ago` hours back (its next run is within the hour)."""
    start = (clock.now - hours_ago * HOUR).isoformat()
    return await create(client, interval_body(seconds=3600, start_at=start))


async def test_dry_run_and_real_backfill_agree_and_a_repeat_adds_nothing(client, db, clock):
    schedule = await _hourly(client, clock)
    url = f"/api/v1/schedules/{schedule['id']}/backfill"
    window = {"start": (clock.now - 10 * HOUR).isoformat(), "end": (clock.now + 5 * HOUR).isoformat()}
    dry = (await client.post(url, json={**window, "dry_run": True})).json()
    assert await db.fetchval("SELECT count(*) FROM executions") == 0

    real = await client.post(url, json={**window, "max_per_second": 4})
    assert real.status_code == 200, real.text
    plan = real.json()
    assert {k: plan[k] for k in ("slots_total", "slots_recorded", "slots_to_record", "slots_after_cutoff")} == {
        k: dry[k] for k in ("slots_total", "slots_recorded", "slots_to_record", "slots_after_cutoff")
    }
    assert (
        plan["slots_total"] == 10 and plan["slots_to_record"] == 10 and plan["slots_after_cutoff"] == 6
    )  # the slot at now is the ticker's
    rows = await db.fetch(
        "SELECT scheduled_for, trigger_type, status, priority, not_before, backfill_id FROM executions "
        "ORDER BY scheduled_for"
    )
    assert [r["scheduled_for"] for r in rows] == [datetime.fromisoformat(s) for s in dry["first_slots"]]
    assert {(r["trigger_type"], r["status"], r["priority"]) for r in rows} == {("backfill", "pending", 0)}
    gaps = {(b["not_before"] - a["not_before"]).total_seconds() for a, b in zip(rows, rows[1:])}
    assert gaps == {0.25}  # 4 a second
    assert plan["backfill"]["status"] == "running" and plan["backfill"]["runs"] == {"pending": 10}

    again = (await client.post(url, json=window)).json()
    assert again["slots_to_record"] == 0 and again["slots_recorded"] == 10
    assert await db.fetchval("SELECT count(*) FROM executions") == 10
    audit = await db.fetch("SELECT action FROM audit_log WHERE action LIKE 'schedule.backfill%'")
    assert [a["action"] for a in audit] == ["schedule.backfilled", "schedule.backfilled"]


async def test_slots_recorded_by_the_ticker_are_not_recorded_again(client, db, clock):
    schedule = await _hourly(client, clock)
    slot = datetime.fromisoformat(schedule["next_run_at"]) - 3 * HOUR
    await db.execute(
        "INSERT INTO executions (id, schedule_id, scheduled_for, trigger_type, status, priority, attempts,"
        " attempt_log, created_at) VALUES (gen_random_uuid(), $1, $2, 'scheduled', 'succeeded', 5, 1, '[]', now())",
        schedule["id"],
        slot,
    )
    url = f"/api/v1/schedules/{schedule['id']}/backfill"
    window = {"start": (slot - HOUR).isoformat(), "end": (slot + HOUR).isoformat()}
    plan = (await client.post(url, json=window)).json()
    assert (plan["slots_total"], plan["slots_recorded"], plan["slots_to_record"]) == (3, 1, 2)
    assert await db.fetchval("SELECT count(*) FROM executions WHERE scheduled_for = $1", slot) == 1


async def test_progress_and_cancellation(client, db, clock):
    schedule = await _hourly(client, clock)
    base = f"/api/v1/schedules/{schedule['id']}"
    window = {"start": (clock.now - 20 * HOUR).isoformat(), "end": clock.now.isoformat(), "max_per_second": 1}
    backfill = (await client.post(f"{base}/backfill", json=window)).json()["backfill"]
    await db.execute(
        "UPDATE executions SET enqueued_at = now() WHERE id IN "
        "(SELECT id FROM executions ORDER BY scheduled_for LIMIT 2)"
    )
    cancelled = await client.delete(f"{base}/backfills/{backfill['id']}")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["runs"] == {"pending": 2, "cancelled": 18}
    reasons = await db.fetch("SELECT DISTINCT reason FROM executions WHERE status = 'cancelled'")
    assert [r["reason"] for r in reasons] == ["backfill_cancelled"]
    listed = (await client.get(f"{base}/backfills")).json()
    assert [b["id"] for b in listed] == [backfill["id"]]
    assert (await client.get(f"{base}/backfills/{backfill['id']}")).json()["status"] == "cancelled"
    again = await client.delete(f"{base}/backfills/{backfill['id']}")
    assert again.status_code == 409


async def test_refusals_name_the_field_and_record_nothing(client, db, clock):
    schedule = await _hourly(client, clock)
    url = f"/api/v1/schedules/{schedule['id']}/backfill"
    reversed_range = {"start": clock.now.isoformat(), "end": (clock.now - HOUR).isoformat()}
    cases = [
        (reversed_range, "end"),
        ({"start": clock.now.isoformat(), "end": clock.now.isoformat(), "max_per_second": 0}, "max_per_second"),
    ]
    minutely = await create(client, cron_body("minutely", cron_expression="* * * * *"))
    too_many = {"start": (clock.now - 200 * HOUR).isoformat(), "end": clock.now.isoformat()}  # 12,000 slots
    for target, body, field in [(url, b, f) for b, f in cases] + [
        (f"/api/v1/schedules/{minutely['id']}/backfill", too_many, "end")
    ]:
        response = await client.post(target, json=body)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    missing = await client.get(f"/api/v1/schedules/{schedule['id']}/backfills/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert await db.fetchval("SELECT count(*) FROM executions") == 0
    assert await db.fetchval("SELECT count(*) FROM backfills") == 0


async def test_a_naive_range_is_wall_time_in_the_schedules_zone(client):
    tokyo = await create(
        client, interval_body("tokyo", seconds=3600, timezone="Asia/Tokyo", start_at="2025-12-31T00:00:00+09:00")
    )
    naive = {"start": "2026-01-01T00:00:00", "end": "2026-01-01T05:00:00", "dry_run": True}
    plan = (await client.post(f"/api/v1/schedules/{tokyo['id']}/backfill", json=naive)).json()
    assert plan["slots_total"] == 6  # both ends included
    assert plan["first_slots"][0] == "2025-12-31T15:00:00Z"


async def test_slots_a_calendar_excludes_are_not_backfilled(client, db, clock):
    day = (clock.now - 30 * HOUR).date()
    assert (
        await client.post("/api/v1/calendars", json={"name": "frozen", "dates": [day.isoformat()]})
    ).status_code == 201
    schedule = await create(
        client, interval_body(seconds=3600, start_at=(clock.now - 72 * HOUR).isoformat(), exclude_calendars=["frozen"])
    )
    window = {"start": (clock.now - 60 * HOUR).isoformat(), "end": (clock.now - 1 * HOUR).isoformat()}
    plan = (await client.post(f"/api/v1/schedules/{schedule['id']}/backfill", json=window)).json()
    slots = await db.fetch("SELECT scheduled_for FROM executions")
    assert plan["slots_excluded"] == 24 and plan["slots_to_record"] == plan["slots_total"] - 24 == len(slots)
    assert all(s["scheduled_for"].date() != day for s in slots)
