"""The ticker's work: claim due schedules, plan their slots, record executions, find runs to hand over.

One transaction per batch: `SELECT … FOR UPDATE SKIP LOCKED` claims due schedules (so several tickers
share the work without a leader), the pure misfire planner decides each schedule's slots, one INSERT
records them (the partial UNIQUE index makes a slot recorded twice a no-op) and one UPDATE advances
the schedules. The caller enqueues the returned execution ids only after the commit; rows whose
hand-over was lost are found again by `sweep` (the outbox idea). All instants are UTC.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.calendars import CalendarRules, exclusion_reason
from core.misfire import SlotPlan, plan_ahead, plan_due
from core.overlap import takes_overlap_step
from core.rules import jitter_offset_seconds
from core.settings import Settings
from core.states import ExecutionStatus, Reason, ScheduleStatus
from services.calendars import calendars_by_name
from services.stores import executions as execution_store
from services.stores import schedules as schedule_store
from services.validation import misfire_policy_of, rule_of

log = logging.getLogger("services.ticking")
EXHAUSTED_REASON = "no further fire times"


@dataclass(frozen=True)
class Dispatch:
    """An execution to hand to the queue now; `due` (UTC) is when it may be published, None = at once."""

    execution_id: uuid.UUID
    priority: int
    due: datetime | None = None
    overdue: bool = False  # handed over before and lost, or reaped: goes ahead of fresh slots


def dispatch_order(dispatch: list[Dispatch]) -> list[Dispatch]:
    """Highest priority first; within a priority, earliest due first (so queue messages cover short spans)."""
    return sorted(dispatch, key=lambda d: (-d.priority, d.due.timestamp() if d.due is not None else 0.0))


def lead_of(settings: Settings) -> timedelta:
    """How long before its instant a run is handed to the workers (DISPATCH_LEAD_MS)."""
    return timedelta(milliseconds=settings.DISPATCH_LEAD_MS)


@dataclass
class TickResult:
    claimed: int = 0
    dispatch: list[Dispatch] = field(default_factory=list)
    fired: int = 0
    missed: int = 0
    missed_unrecorded: int = 0
    completed: int = 0
    disabled: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    missed_events: list[dict[str, Any]] = field(default_factory=list)
    batch_full: bool = False
    excluded: int = 0  # slots a calendar of their schedule excluded (recorded `skipped`)


class _Batch:
    """Column arrays for the INSERT and UPDATE of one tick (unnest keeps it to one statement each)."""

    def __init__(self) -> None:
        self.executions: dict[str, list[Any]] = {
            k: []
            for k in (
                "ids",
                "schedule_ids",
                "slots",
                "statuses",
                "reasons",
                "priorities",
                "not_befores",
                "enqueued",
                "finished",
                "tracked",
            )
        }
        self.schedules: dict[str, list[Any]] = {
            k: [] for k in ("ids", "next_runs", "fired", "last_fired", "statuses", "reasons")
        }

    def add_execution(
        self, schedule_id, slot, status, reason, priority, not_before, enqueued, finished, tracked: bool
    ) -> None:
        values = (uuid.uuid4(), schedule_id, slot, status, reason, priority, not_before, enqueued, finished, tracked)
        for key, value in zip(self.executions, values):
            self.executions[key].append(value)

    def add_schedule(self, schedule_id, next_run, fired, last_fired, status, reason) -> None:
        for key, value in zip(self.schedules, (schedule_id, next_run, fired, last_fired, status, reason)):
            self.schedules[key].append(value)


def _plan(row: Any, now: datetime, settings: Settings) -> SlotPlan:
    """The slots of one due schedule: those within the lead (after `now`) all fire; the misfire rules
    apply to those at or before `now`."""
    if row.next_run_at > now:
        return plan_ahead(rule_of(row), row.next_run_at, row.run_count, row.max_runs)
    return plan_due(rule_of(row), row.next_run_at, now, misfire_policy_of(row, settings), row.run_count, row.max_runs)


def _add_plan(
    batch: _Batch,
    result: TickResult,
    row: Any,
    plan: SlotPlan,
    now: datetime,
    horizon: datetime,
    calendars: Sequence[CalendarRules] = (),
) -> None:
    """Queue one schedule's slots (pending, missed, or skipped by one of its `calendars`) and its advance
    into the batch."""
    tracked = takes_overlap_step(row.overlap_policy, row.completion)
    for slot in plan.fire:
        excluded = exclusion_reason(calendars, slot) if calendars else None
        if excluded is not None:
            batch.add_execution(row.id, slot, ExecutionStatus.SKIPPED, excluded, row.priority, None, None, now, tracked)
            result.excluded += 1
            continue
        due = slot + timedelta(seconds=jitter_offset_seconds(str(row.id), slot, row.jitter_seconds))
        ready = due <= horizon
        batch.add_execution(
            row.id, slot, ExecutionStatus.PENDING, None, row.priority, due, now if ready else None, None, tracked
        )
    for slot in plan.missed:
        batch.add_execution(row.id, slot, ExecutionStatus.MISSED, Reason.MISSED, row.priority, None, None, now, tracked)
        result.missed_events.append({"schedule_id": str(row.id), "scheduled_for": slot, "reason": Reason.MISSED})
    result.missed += len(plan.missed)
    result.missed_unrecorded += plan.missed_unrecorded
    done = plan.exhausted
    result.completed += int(done)
    batch.add_schedule(
        row.id,
        None if done else plan.next_run_at,
        len(plan.fire),
        plan.fire[-1] if plan.fire else None,
        ScheduleStatus.COMPLETED if done else ScheduleStatus.ACTIVE,
        EXHAUSTED_REASON if done else None,
    )


async def _write(conn: AsyncConnection, batch: _Batch, result: TickResult, now: datetime) -> None:
    """Record the batch's slots, advance its schedules and disable those whose rule broke."""
    if batch.executions["ids"]:
        inserted = await execution_store.insert_slots(conn, batch.executions, now)
        for execution_id, status, priority, enqueued_at, not_before in inserted:
            if status == ExecutionStatus.PENDING:
                result.fired += 1
                if enqueued_at is not None:
                    result.dispatch.append(Dispatch(execution_id, priority, not_before if not_before > now else None))
    await schedule_store.advance(conn, batch.schedules, now)
    await schedule_store.disable(conn, result.disabled, now, stop_planning=True)


async def tick(engine: AsyncEngine, now: datetime, settings: Settings, limit: int | None = None) -> TickResult:
    """Claim and plan one batch (at most `limit`, default TICKER_BATCH_SIZE) of due schedules; commit;
    return what to enqueue.

    "Due" includes the next DISPATCH_LEAD_MS: a slot within that lead is recorded and handed over
    now, and the worker publishes it at its instant. Misfire rules only apply to slots at or before `now`.
    """
    result = TickResult()
    batch = _Batch()
    limit = limit or settings.TICKER_BATCH_SIZE
    horizon = now + lead_of(settings)
    async with engine.begin() as conn:
        rows = await schedule_store.select_due(conn, horizon, limit)
        calendars = await calendars_by_name(conn, {name for row in rows for name in row.exclude_calendars})
        result.claimed = len(rows)
        result.batch_full = len(rows) == limit
        for row in rows:
            try:
                plan = _plan(row, now, settings)
            except Exception as error:  # the stored rule can no longer be evaluated
                result.disabled.append(
                    (row.id, f"rule can no longer be evaluated: {type(error).__name__}: {error}"[:500])
                )
                continue
            listed = [calendars[name] for name in row.exclude_calendars if name in calendars]
            _add_plan(batch, result, row, plan, now, horizon, listed)
        await _write(conn, batch, result, now)
    result.dispatch = dispatch_order(result.dispatch)
    return result
