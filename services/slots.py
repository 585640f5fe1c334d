"""Record a schedule's planned slots as execution rows from an API operation (resume, update, delete).

The partial UNIQUE index on (schedule_id, scheduled_for) makes a second insert of a slot a no-op,
so planning the same slot twice, from two processes or after a crash, can never fire it twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.misfire import SlotPlan
from core.overlap import takes_overlap_step
from core.states import ExecutionStatus, Reason
from models import Schedule
from services.stores import executions as store


async def insert_slots(
    session: AsyncSession,
    schedule: Schedule,
    plan: SlotPlan,
    now: datetime,
    missed_reason: Reason,
    correlation_id: str | None = None,
    missed_status: ExecutionStatus = ExecutionStatus.MISSED,
    traceparent: str | None = None,
) -> list[uuid.UUID]:
    """Insert pending rows for `plan.fire` and `missed_status` rows for `plan.missed` in the session's
    transaction, with the request's correlation id and traceparent; return the ids of the new pending rows."""
    slots = [(slot, False) for slot in plan.fire] + [(slot, True) for slot in plan.missed]
    if not slots:
        return []
    columns = {
        "ids": [uuid.uuid4() for _ in slots],
        "schedule_ids": [schedule.id] * len(slots),
        "slots": [slot for slot, _ in slots],
        "statuses": [(missed_status if missed else ExecutionStatus.PENDING).value for _, missed in slots],
        "reasons": [missed_reason.value if missed else None for _, missed in slots],
        "priorities": [schedule.priority] * len(slots),
        "not_befores": [None] * len(slots),
        "enqueued": [None] * len(slots),
        "finished": [now if missed else None for _, missed in slots],
        "tracked": [takes_overlap_step(schedule.overlap_policy, schedule.completion)] * len(slots),
    }
    inserted = await store.insert_slots(await session.connection(), columns, now, correlation_id, traceparent)
    return [row.id for row in inserted if row.status == ExecutionStatus.PENDING]
