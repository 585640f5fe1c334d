"""History retention deletes only finished runs older than the retention, never the audit trail."""

from __future__ import annotations

from datetime import timedelta

from services.retention import purge_old_executions
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, insert_execution, interval


async def test_purge_keeps_recent_and_unfinished_runs(engine, schedules):
    created = await schedules.create(interval("r", 60), ACTOR, T0)  # its creation is in the audit trail
    slots = [created.next_run_at + timedelta(minutes=m) for m in range(4)]
    for slot in slots[:-1]:
        await insert_execution(engine, created.id, scheduled_for=slot, status="succeeded", finished_at=slot)
    await insert_execution(engine, created.id, scheduled_for=slots[-1], status="pending")
    now = slots[0] + timedelta(days=30, minutes=2)  # the first two slots are older than 30 days

    deleted = await purge_old_executions(engine, now, 30, batch=1)

    assert deleted == 2
    remaining = await rows(engine, "SELECT status FROM executions ORDER BY scheduled_for")
    assert [r.status for r in remaining] == ["succeeded", "pending"]
    assert (await rows(engine, "SELECT count(*) FROM audit_log"))[0][0] >= 1
    assert await purge_old_executions(engine, now, 30) == 0
