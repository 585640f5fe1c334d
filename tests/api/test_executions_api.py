"""Execution history and statistics, from rows written as the pipeline will write them."""

from __future__ import annotations

import statistics
import uuid
from datetime import timedelta

from tests.support import factories
from tests.support.http import create, cron_body


async def insert_execution(db, schedule_id, slot, status, started_after_ms=None, duration_ms=None, reason=None):
    """A finished-or-not scheduled run at `slot`, started `started_after_ms` after it and lasting `duration_ms`."""
    started = slot + timedelta(milliseconds=started_after_ms) if started_after_ms is not None else None
    finished = started + timedelta(milliseconds=duration_ms) if started and duration_ms is not None else None
    row = await factories.insert_execution(
        db,
        schedule_id,
        scheduled_for=slot,
        status=status,
        reason=reason,
        attempts=1,
        started_at=started,
        finished_at=finished,
    )
    return row["id"]


async def test_stats_count_rates_and_percentiles(client, db, clock):
    schedule = await create(client, cron_body())
    base = clock.now - timedelta(hours=1)
    lags = [10, 20, 30, 40, 1000]
    for i, lag in enumerate(lags):
        await insert_execution(
            db, schedule["id"], base + timedelta(minutes=i), "succeeded", lag, duration_ms=100 * (i + 1)
        )
    await insert_execution(db, schedule["id"], base + timedelta(minutes=10), "failed", 5, duration_ms=50)
    await insert_execution(db, schedule["id"], base + timedelta(minutes=11), "missed", reason="missed")
    stats = (await client.get(f"/api/v1/executions/stats/{schedule['id']}")).json()
    assert stats["total"] == 7
    assert (
        stats["by_status"]["succeeded"] == 5 and stats["by_status"]["failed"] == 1 and stats["by_status"]["missed"] == 1
    )
    assert stats["success_rate"] == round(5 / 6, 4)
    assert stats["lag_ms"]["max"] == 1000 and stats["lag_ms"]["p50"] == statistics.median([*lags, 5])
    assert stats["duration_ms"]["max"] == 500
    assert stats["last_outcome"] == "missed"
    assert stats["next_run_at"] == schedule["next_run_at"]
    since = (
        await client.get(
            f"/api/v1/executions/stats/{schedule['id']}", params={"since": (base + timedelta(minutes=5)).isoformat()}
        )
    ).json()
    assert since["total"] == 2


async def test_lists_filters_running_and_single(client, db, clock):
    a = await create(client, cron_body("a"))
    b = await create(client, cron_body("b"))
    slot = clock.now - timedelta(minutes=5)
    running = await insert_execution(db, a["id"], slot, "running", 3)
    await insert_execution(db, a["id"], slot + timedelta(minutes=1), "failed", 3, 10)
    await insert_execution(db, b["id"], slot, "succeeded", 3, 10)

    per_schedule = (await client.get(f"/api/v1/schedules/{a['id']}/executions")).json()
    assert per_schedule["total"] == 2
    assert per_schedule["items"][0]["scheduled_for"] > per_schedule["items"][1]["scheduled_for"]
    failed = (await client.get("/api/v1/executions", params={"status": "failed,succeeded"})).json()
    assert {i["status"] for i in failed["items"]} == {"failed", "succeeded"}
    assert [e["id"] for e in (await client.get("/api/v1/executions/running")).json()] == [str(running)]
    one = (await client.get(f"/api/v1/executions/{running}")).json()
    assert one["lag_ms"] == 3 and one["status"] == "running"
    missing = await client.get(f"/api/v1/executions/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "execution_id"


async def test_a_retry_makes_a_failed_run_pending_again_and_audits_it(client, db, clock):
    schedule = await create(client, cron_body())
    run = await factories.insert_execution(
        db, schedule["id"], status="failed", attempts=2, finished_at=clock.now, dead_lettered_at=clock.now
    )

    retried = await client.post(f"/api/v1/executions/{run['id']}/retry", headers={"X-Retried-By": "ops"})

    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["status"], body["attempts"], body["finished_at"], body["dead_lettered_at"]) == (
        "pending",
        2,
        None,
        None,
    )
    row = await db.fetchrow("SELECT enqueued_at, not_before FROM executions WHERE id = $1", run["id"])
    assert row["enqueued_at"] is None and row["not_before"] == clock.now
    audit = await db.fetchrow("SELECT actor, after FROM audit_log WHERE action = 'execution.retried'")
    assert audit["actor"] == "ops" and str(run["id"]) in audit["after"]


async def test_a_retry_is_refused_for_a_run_that_did_not_fail_or_whose_schedule_is_paused(client, db):
    schedule = await create(client, cron_body())
    pending = await factories.insert_execution(db, schedule["id"], status="pending")
    failed = await factories.insert_execution(db, schedule["id"], status="failed", scheduled_for=other_slot())

    not_failed = await client.post(f"/api/v1/executions/{pending['id']}/retry")
    await client.post(f"/api/v1/schedules/{schedule['id']}/pause")
    paused = await client.post(f"/api/v1/executions/{failed['id']}/retry")
    unknown = await client.post(f"/api/v1/executions/{uuid.uuid4()}/retry")

    assert not_failed.status_code == 409 and not_failed.json()["errors"][0]["field"] == "status"
    assert paused.status_code == 409 and "paused" in paused.json()["detail"]
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "execution_id"
    statuses = await db.fetch("SELECT status FROM executions ORDER BY status")
    assert [r["status"] for r in statuses] == ["failed", "pending"]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'execution.retried'") == 0


def other_slot():
    """A slot other than the factory's default (one scheduled run per slot)."""
    return factories.T0 + timedelta(minutes=1)


async def test_the_dead_letter_filter_lists_the_dead_lettered_runs_only(client, db, clock):
    schedule = await create(client, cron_body())
    dead = await factories.insert_execution(db, schedule["id"], status="failed", dead_lettered_at=clock.now)
    await factories.insert_execution(db, schedule["id"], status="failed", scheduled_for=other_slot())

    listed = await client.get("/api/v1/executions", params={"dead_lettered": "true"})
    via_graphql = await client.post(
        "/graphql", json={"query": "{ executions(deadLettered: true) { edges { node { id } } } }"}
    )

    assert [e["id"] for e in listed.json()["items"]] == [str(dead["id"])]
    assert [e["node"]["id"] for e in via_graphql.json()["data"]["executions"]["edges"]] == [str(dead["id"])]
