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
