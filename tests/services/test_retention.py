"""History retention deletes only finished runs older than the retention, never the audit trail."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from services.retention import purge_old_executions
from services.ticking import tick
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, interval


async def test_purge_keeps_recent_and_unfinished_runs(engine, schedules, settings):
    created = await schedules.create(interval("r", 60), ACTOR, T0)
    await tick(engine, created.next_run_at + timedelta(minutes=3), settings)  # 4 slots: pending
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE executions SET status='succeeded', finished_at=scheduled_for "
                "WHERE scheduled_for < (SELECT max(scheduled_for) FROM executions)"
            )
        )
    now = created.next_run_at + timedelta(days=30, minutes=2)  # the first two slots are older than 30 days
    deleted = await purge_old_executions(engine, now, 30, batch=1)
    assert deleted == 2
    remaining = await rows(engine, "SELECT status FROM executions ORDER BY scheduled_for")
    assert [r.status for r in remaining] == ["succeeded", "pending"]
    assert (await rows(engine, "SELECT count(*) FROM audit_log"))[0][0] >= 1
    assert await purge_old_executions(engine, now, 30) == 0
