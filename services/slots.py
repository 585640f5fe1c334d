"""Record a schedule's planned slots as execution rows from an API operation (resume, update, delete).

The partial UNIQUE index on (schedule_id, scheduled_for) makes a second insert of a slot a no-op,
so planning the same slot twice, from two processes or after a crash, can never fire it twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.calendars import exclusion_reason
from core.misfire import SlotPlan
from core.overlap import takes_overlap_step
from core.states import ExecutionStatus, Reason
from models import Schedule
from services.calendars import listed_calendars
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
    """Insert pending rows for `plan.fire` (`skipped` for those a calendar of the schedule excludes) and
    `missed_status` rows for `plan.missed` in the session's transaction, with the request's correlation
    id and traceparent; return the ids of the new pending rows."""
    calendars = await listed_calendars(session, schedule.exclude_calendars)
    slots: list[tuple[datetime, ExecutionStatus, str | None]] = []
    for slot in plan.fire:
        excluded = exclusion_reason(calendars, slot) if calendars else None
        slots.append((slot, ExecutionStatus.SKIPPED, excluded) if excluded else (slot, ExecutionStatus.PENDING, None))
    slots += [(slot, missed_status, missed_reason.value) for slot in plan.missed]
    if not slots:
        return []
    columns = {
        "ids": [uuid.uuid4() for _ in slots],
        "schedule_ids": [schedule.id] * len(slots),
        "slots": [slot for slot, _, _ in slots],
        "statuses": [status.value for _, status, _ in slots],
        "reasons": [reason for _, _, reason in slots],
        "priorities": [schedule.priority] * len(slots),
        "not_befores": [None] * len(slots),
        "enqueued": [None] * len(slots),
        "finished": [None if status is ExecutionStatus.PENDING else now for _, status, _ in slots],
        "tracked": [takes_overlap_step(schedule.overlap_policy, schedule.completion)] * len(slots),
    }
    inserted = await store.insert_slots(await session.connection(), columns, now, correlation_id, traceparent)
    return [row.id for row in inserted if row.status == ExecutionStatus.PENDING]
