"""Record fire slots and missed slots as execution rows (used by resume now, the ticker later).

The partial UNIQUE index on (schedule_id, scheduled_for) makes a second insert of a slot a no-op,
so planning the same slot twice, from two processes or after a crash, can never fire it twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from core.misfire import SlotPlan
from core.states import ExecutionStatus
from models import Execution, Schedule

SLOT_CONFLICT = {
    "index_elements": ["schedule_id", "scheduled_for"],
    "index_where": sa.text("trigger_type = 'scheduled'"),
}


async def insert_slots(
    session: AsyncSession,
    schedule: Schedule,
    plan: SlotPlan,
    now: datetime,
    missed_reason: str,
    correlation_id: str | None = None,
    missed_status: ExecutionStatus = ExecutionStatus.MISSED,
) -> list[uuid.UUID]:
    """Insert pending rows for `plan.fire` and `missed_status` rows for `plan.missed`; return new pending ids."""

    # A multi-row INSERT takes its column list from the first row: every row has the same keys.
    def row(slot: datetime, missed: bool) -> dict:
        return {
            "id": uuid.uuid4(),
            "schedule_id": schedule.id,
            "scheduled_for": slot,
            "trigger_type": "scheduled",
            "status": (missed_status if missed else ExecutionStatus.PENDING).value,
            "reason": missed_reason if missed else None,
            "priority": schedule.priority,
            "correlation_id": correlation_id,
            "created_at": now,
            "finished_at": now if missed else None,
        }

    rows = [row(slot, False) for slot in plan.fire] + [row(slot, True) for slot in plan.missed]
    if not rows:
        return []
    statement = (
        insert(Execution).values(rows).on_conflict_do_nothing(**SLOT_CONFLICT).returning(Execution.id, Execution.status)
    )
    inserted = (await session.exec(statement)).all()
    return [row_id for row_id, status in inserted if status == ExecutionStatus.PENDING.value]
