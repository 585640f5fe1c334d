"""Backfills: a schedule's slots over a past range, recorded now and fired at a bounded rate.

A backfill computes the rule's slots in [start, end] up to its cutoff (now, and for an active schedule
the instant before its next run: from there on the ticker records the slots itself). Each slot that
has no row yet and that no calendar of the schedule excludes is recorded as a `pending` run with
`trigger_type: backfill` and the backfill's id, their hand-over times `1 / max_per_second` apart. The
runs take the lowest priority, so the outbox hands over on-time runs first. One row per slot holds
across the ticker and backfills (the unique slot index covers both), so a second identical backfill
records nothing. Cancelling one cancels its runs not handed over yet; the others finish. Instants UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlmodel import col, select

from core.calendars import exclusion_reason
from core.errors import Conflict, NotFound, ValidationFailed
from core.overlap import takes_overlap_step
from core.rules import fires_between
from core.states import ACTIVE_STATUSES, BackfillStatus, ScheduleStatus
from models import Backfill, Schedule
from services.calendars import calendars_by_name
from services.context import Actor
from services.lifecycle import LifecycleService
from services.schedules import notify_ticker
from services.schemas import BackfillOut, BackfillPlanOut, BackfillRequest
from services.stores import executions as execution_store
from services.stores import schedules as schedule_store
from services.validation import in_utc, rule_of

# The most slots one backfill records; a longer range is split into several backfills.
MAX_BACKFILL_SLOTS = 10_000
_FIRST_SLOTS_SHOWN = 20
_ONE_MICROSECOND = timedelta(microseconds=1)


def cutoff_of(row: Schedule, end: datetime, now: datetime) -> datetime:
    """The last instant a backfill of `row` covers: `end`, never after now, and for an active schedule
    never at or after its next run (the ticker records those slots)."""
    cutoff = min(end, now)
    if row.status == ScheduleStatus.ACTIVE and row.next_run_at is not None:
        cutoff = min(cutoff, row.next_run_at - _ONE_MICROSECOND)
    return cutoff


class BackfillService(LifecycleService):
    """Backfills of a schedule (start, progress, cancel); shares loading and audit with the schedules."""

    async def backfill(
        self, schedule_id: uuid.UUID, request: BackfillRequest, actor: Actor, now: datetime
    ) -> BackfillPlanOut:
        """Plan a backfill of [request.start, request.end]; unless it is a dry run, record its slots."""
        await self._begin_write(actor)
        async with self.sessions() as session, session.begin():
            row = await self._load(session, schedule_id, actor, for_update=True)
            # A naive instant is wall time in the schedule's zone.
            request = request.model_copy(
                update={"start": in_utc(request.start, row.timezone), "end": in_utc(request.end, row.timezone)}
            )
            if request.end < request.start:
                raise ValidationFailed.single("end", "must not be before start")
            cutoff = cutoff_of(row, request.end, now)
            rule = rule_of(row)
            slots = fires_between(rule, request.start - _ONE_MICROSECOND, cutoff, MAX_BACKFILL_SLOTS + 1)
            if len(slots) > MAX_BACKFILL_SLOTS:
                raise ValidationFailed.single("end", f"the range holds more than {MAX_BACKFILL_SLOTS} slots; split it")
            later = fires_between(rule, cutoff, request.end, MAX_BACKFILL_SLOTS) if cutoff < request.end else []
            conn = await session.connection()
            recorded = await execution_store.recorded_slots(conn, row.id, slots) if slots else set()
            calendars = await calendars_by_name(conn, set(row.exclude_calendars))
            listed = [calendars[name] for name in row.exclude_calendars if name in calendars]
            unrecorded = [s for s in slots if s not in recorded]
            missing = [s for s in unrecorded if not exclusion_reason(listed, s)] if listed else unrecorded
            plan = BackfillPlanOut(
                dry_run=request.dry_run,
                slots_total=len(slots),
                slots_recorded=len(recorded),
                slots_excluded=len(unrecorded) - len(missing),
                slots_to_record=len(missing),
                slots_after_cutoff=len(later),
                first_slots=missing[:_FIRST_SLOTS_SHOWN],
            )
            if request.dry_run:
                return plan
            backfill = await self._record(session, row, request, len(slots), missing, actor, now)
            plan.backfill = await _out(session, backfill)
        return plan

    async def _record(
        self,
        session,
        row: Schedule,
        request: BackfillRequest,
        total: int,
        missing: list[datetime],
        actor: Actor,
        now: datetime,
    ) -> Backfill:
        """The backfill row, its runs (handed over `1 / max_per_second` apart from now) and its audit entry."""
        backfill = Backfill(
            schedule_id=row.id,
            start_at=request.start,
            end_at=request.end,
            max_per_second=request.max_per_second,
            slots_total=total,
            slots_recorded_before=total - len(missing),
            created_by=actor.name,
            created_at=now,
        )
        session.add(backfill)
        await session.flush()
        # The pace starts one dispatch lead ahead, so the first runs are not handed over late (and then
        # published together); the tickers are woken for them.
        first = now + timedelta(milliseconds=self.settings.DISPATCH_LEAD_MS)
        step = timedelta(seconds=1 / request.max_per_second)
        await execution_store.insert_backfill(
            await session.connection(),
            backfill.id,
            row,
            missing,
            [first + k * step for k in range(len(missing))],
            now,
            actor.name,
            takes_overlap_step(row.overlap_policy, row.completion),
            actor.correlation_id,
            actor.traceparent,
        )
        after = {"backfill_id": str(backfill.id), "start": request.start.isoformat(), "end": request.end.isoformat()}
        after |= {"max_per_second": request.max_per_second, "slots_recorded": len(missing)}
        schedule_store.audit(session, actor, "schedule.backfilled", now, row.id, after=after)
        await notify_ticker(session, row.id)
        return backfill

    async def backfills(self, schedule_id: uuid.UUID, actor: Actor) -> list[BackfillOut]:
        """The schedule's backfills, newest first, with their progress."""
        async with self.sessions() as session:
            await self._load(session, schedule_id, actor)
            rows = await session.exec(
                select(Backfill).where(Backfill.schedule_id == schedule_id).order_by(col(Backfill.created_at).desc())
            )
            return [await _out(session, b) for b in rows.all()]

    async def get_backfill(self, schedule_id: uuid.UUID, backfill_id: uuid.UUID, actor: Actor) -> BackfillOut:
        async with self.sessions() as session:
            await self._load(session, schedule_id, actor)
            return await _out(session, await _backfill(session, schedule_id, backfill_id))

    async def cancel_backfill(
        self, schedule_id: uuid.UUID, backfill_id: uuid.UUID, actor: Actor, now: datetime
    ) -> BackfillOut:
        """Cancel the backfill's runs not handed over yet (`cancelled`, reason `backfill_cancelled`)."""
        await self._begin_write(actor)
        async with self.sessions() as session, session.begin():
            await self._load(session, schedule_id, actor, for_update=True)
            backfill = await _backfill(session, schedule_id, backfill_id, for_update=True)
            if backfill.cancelled_at is not None:
                raise Conflict("the backfill is cancelled already", field="backfill_id")
            cancelled = await execution_store.cancel_backfill(await session.connection(), backfill.id, now)
            backfill.cancelled_at = now
            session.add(backfill)
            after = {"backfill_id": str(backfill.id), "runs_cancelled": cancelled}
            schedule_store.audit(session, actor, "schedule.backfill_cancelled", now, schedule_id, after=after)
            await session.flush()
            return await _out(session, backfill)


async def _backfill(session, schedule_id: uuid.UUID, backfill_id: uuid.UUID, for_update: bool = False) -> Backfill:
    query = select(Backfill).where(Backfill.id == backfill_id, Backfill.schedule_id == schedule_id)
    if for_update:
        query = query.with_for_update()
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound("backfill", backfill_id, field="backfill_id")
    return found


async def _out(session, backfill: Backfill) -> BackfillOut:
    runs = await execution_store.backfill_counts(await session.connection(), backfill.id)
    if backfill.cancelled_at is not None:
        status = BackfillStatus.CANCELLED
    elif any(runs.get(s.value, 0) for s in ACTIVE_STATUSES):
        status = BackfillStatus.RUNNING
    else:
        status = BackfillStatus.COMPLETED
    return BackfillOut(**backfill.model_dump(), status=status, runs=runs)
