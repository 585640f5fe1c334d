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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.misfire import plan_ahead, plan_due
from core.rules import jitter_offset_seconds
from core.settings import Settings
from core.states import MissReason
from services.validation import misfire_policy_of, rule_of

log = logging.getLogger("services.ticking")
SYSTEM_ACTOR = "scheduler"

_SELECT_DUE = sa.text(
    """
    SELECT id, name, schedule_type, timezone, cron_expression, interval_seconds, run_at, start_at, end_at,
           dst_gap, dst_repeat, next_run_at, run_count, max_runs, misfire_grace_seconds, catchup,
           jitter_seconds, priority
    FROM schedules
    WHERE status = 'active' AND next_run_at <= :horizon
    ORDER BY next_run_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_INSERT_EXECUTIONS = sa.text(
    """
    INSERT INTO executions (id, schedule_id, scheduled_for, trigger_type, status, reason, priority,
                            attempts, attempt_log, not_before, enqueued_at, finished_at, created_at)
    SELECT v.id, v.schedule_id, v.scheduled_for, 'scheduled', v.status, v.reason, v.priority,
           0, '[]'::jsonb, v.not_before, v.enqueued_at, v.finished_at, :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:schedule_ids AS uuid[]), CAST(:slots AS timestamptz[]),
                CAST(:statuses AS text[]), CAST(:reasons AS text[]), CAST(:priorities AS int[]),
                CAST(:not_befores AS timestamptz[]), CAST(:enqueued AS timestamptz[]),
                CAST(:finished AS timestamptz[]))
         AS v(id, schedule_id, scheduled_for, status, reason, priority, not_before, enqueued_at, finished_at)
    ON CONFLICT (schedule_id, scheduled_for) WHERE trigger_type = 'scheduled' DO NOTHING
    RETURNING id, status, priority, enqueued_at, not_before
    """
)
_ADVANCE_SCHEDULES = sa.text(
    """
    UPDATE schedules AS s
    SET next_run_at = v.next_run_at, run_count = s.run_count + v.fired,
        last_run_at = coalesce(v.last_fired, s.last_run_at), status = v.status, status_reason = v.reason,
        updated_at = CASE WHEN v.status <> 'active' THEN :now ELSE s.updated_at END,
        version = CASE WHEN v.status <> 'active' THEN s.version + 1 ELSE s.version END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:next_runs AS timestamptz[]), CAST(:fired AS int[]),
                CAST(:last_fired AS timestamptz[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]))
         AS v(id, next_run_at, fired, last_fired, status, reason)
    WHERE s.id = v.id
    """
)
_AUDIT_DISABLED = sa.text(
    """
    INSERT INTO audit_log (at, actor, action, schedule_id, reason)
    SELECT :now, :actor, 'schedule.disabled', id, reason
    FROM unnest(CAST(:ids AS uuid[]), CAST(:reasons AS text[])) AS v(id, reason)
    """
)


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
            )
        }
        self.schedules: dict[str, list[Any]] = {
            k: [] for k in ("ids", "next_runs", "fired", "last_fired", "statuses", "reasons")
        }

    def add_execution(self, schedule_id, slot, status, reason, priority, not_before, enqueued, finished) -> None:
        for key, value in zip(
            self.executions, (uuid.uuid4(), schedule_id, slot, status, reason, priority, not_before, enqueued, finished)
        ):
            self.executions[key].append(value)

    def add_schedule(self, schedule_id, next_run, fired, last_fired, status, reason) -> None:
        for key, value in zip(self.schedules, (schedule_id, next_run, fired, last_fired, status, reason)):
            self.schedules[key].append(value)


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
        rows = (await conn.execute(_SELECT_DUE, {"horizon": horizon, "limit": limit})).all()
        result.claimed = len(rows)
        result.batch_full = len(rows) == limit
        for row in rows:
            try:
                policy = misfire_policy_of(row, settings)
                if row.next_run_at > now:
                    plan = plan_ahead(rule_of(row), row.next_run_at, row.run_count, row.max_runs)
                else:
                    plan = plan_due(rule_of(row), row.next_run_at, now, policy, row.run_count, row.max_runs)
            except Exception as error:  # the stored rule can no longer be evaluated
                reason = f"rule can no longer be evaluated: {type(error).__name__}: {error}"[:500]
                batch.add_schedule(row.id, None, 0, None, "disabled", reason)
                result.disabled.append((row.id, reason))
                continue
            for slot in plan.fire:
                due = slot + timedelta(seconds=jitter_offset_seconds(str(row.id), slot, row.jitter_seconds))
                ready = due <= horizon
                batch.add_execution(row.id, slot, "pending", None, row.priority, due, now if ready else None, None)
            for slot in plan.missed:
                batch.add_execution(row.id, slot, "missed", MissReason.MISSED.value, row.priority, None, None, now)
                result.missed_events.append({"schedule_id": str(row.id), "scheduled_for": slot, "reason": "missed"})
            result.missed += len(plan.missed)
            result.missed_unrecorded += plan.missed_unrecorded
            done = plan.exhausted
            result.completed += int(done)
            batch.add_schedule(
                row.id,
                None if done else plan.next_run_at,
                len(plan.fire),
                plan.fire[-1] if plan.fire else None,
                "completed" if done else "active",
                "no further fire times" if done else None,
            )
        if batch.executions["ids"]:
            inserted = (await conn.execute(_INSERT_EXECUTIONS, {"now": now, **batch.executions})).all()
            for execution_id, status, priority, enqueued_at, not_before in inserted:
                if status == "pending":
                    result.fired += 1
                    if enqueued_at is not None:
                        result.dispatch.append(
                            Dispatch(execution_id, priority, not_before if not_before > now else None)
                        )
        if batch.schedules["ids"]:
            await conn.execute(_ADVANCE_SCHEDULES, {"now": now, **batch.schedules})
        if result.disabled:
            await conn.execute(
                _AUDIT_DISABLED,
                {
                    "now": now,
                    "actor": SYSTEM_ACTOR,
                    "ids": [d[0] for d in result.disabled],
                    "reasons": [d[1] for d in result.disabled],
                },
            )
    result.dispatch = dispatch_order(result.dispatch)
    return result
