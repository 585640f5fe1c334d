"""The schedules store: the statements that write `schedules` and the audit trail.

Each statement is named with what it does; the services call the functions below inside the
transaction they own (`conn`: a SQLAlchemy `AsyncConnection`, or an `AsyncSession` for `audit`).
The API's single-schedule edits change ORM rows in the caller's session (services.schedules,
services.lifecycle) and add their audit entry with `audit` in the same transaction. All instants UTC.

Statements:
- SELECT_DUE      lock a batch of active schedules due by a horizon (SKIP LOCKED: tickers share work)
- ADVANCE         move planned schedules on: next slot, run count, last run, status
- DISABLE         disable schedules (with a reason each) and add their audit entries, in one statement
- INSERT_MANY     insert a batch of schedules from one JSON array
- AUDIT_CREATED   add the `schedule.created` audit entries of such a batch, in batch order
- SNOOZES_ENDED   the paused schedules whose snooze (`paused_until`) has ended, earliest first
- AUTO_PAUSE      pause the active schedules whose last `pause_after_failures` ended runs all failed,
                  and add their audit entries, in one statement
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from core.states import LIVE_SCHEDULE_STATUSES, ExecutionStatus, ScheduleStatus
from models import AuditEntry, Schedule
from services.context import Actor

# The actor named in the audit trail for what the scheduler does by itself.
SYSTEM_ACTOR = "scheduler"
COLUMNS = [c.name for c in Schedule.__table__.columns]
_LIVE = ", ".join(f"'{s}'" for s in sorted(LIVE_SCHEDULE_STATUSES))

SELECT_DUE = sa.text(
    f"""
    SELECT id, name, schedule_type, timezone, cron_expression, interval_seconds, run_at, start_at, end_at,
           dst_gap, dst_repeat, next_run_at, run_count, max_runs, misfire_grace_seconds, catchup,
           jitter_seconds, priority, overlap_policy, completion, exclude_calendars
    FROM schedules
    WHERE status = '{ScheduleStatus.ACTIVE}' AND next_run_at <= :horizon
    ORDER BY next_run_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
ADVANCE = sa.text(
    f"""
    UPDATE schedules AS s
    SET next_run_at = v.next_run_at, run_count = s.run_count + v.fired,
        last_run_at = coalesce(v.last_fired, s.last_run_at), status = v.status, status_reason = v.reason,
        updated_at = CASE WHEN v.status <> '{ScheduleStatus.ACTIVE}' THEN :now ELSE s.updated_at END,
        version = CASE WHEN v.status <> '{ScheduleStatus.ACTIVE}' THEN s.version + 1 ELSE s.version END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:next_runs AS timestamptz[]), CAST(:fired AS int[]),
                CAST(:last_fired AS timestamptz[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]))
         AS v(id, next_run_at, fired, last_fired, status, reason)
    WHERE s.id = v.id
    """
)
DISABLE = sa.text(
    f"""
    WITH changed AS (
        UPDATE schedules AS s
        SET status = '{ScheduleStatus.DISABLED}', status_reason = v.reason, updated_at = :now, version = s.version + 1,
            next_run_at = CASE WHEN :stop_planning THEN NULL ELSE s.next_run_at END
        FROM unnest(CAST(:ids AS uuid[]), CAST(:reasons AS text[])) AS v(id, reason)
        WHERE s.id = v.id AND s.status IN ({_LIVE})
        RETURNING s.id, v.reason)
    INSERT INTO audit_log (at, actor, action, schedule_id, reason)
    SELECT :now, :actor, 'schedule.disabled', id, reason FROM changed
    """
)
# A whole batch in one statement: the rows travel as one JSON array (PostgreSQL parses it).
INSERT_MANY = sa.text(
    f"INSERT INTO schedules ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
    "FROM jsonb_populate_recordset(NULL::schedules, CAST(CAST(:rows AS text) AS jsonb))"
)
# `before` is a JSON null, as the ORM stores it.
AUDIT_CREATED = sa.text(
    "INSERT INTO audit_log (at, actor, action, schedule_id, before, after, reason, correlation_id) "
    "SELECT :at, :actor, 'schedule.created', x.schedule_id, 'null'::jsonb, x.after, :reason, :correlation_id "
    "FROM ROWS FROM (jsonb_to_recordset(CAST(CAST(:rows AS text) AS jsonb)) AS (schedule_id uuid, after jsonb)) "
    "WITH ORDINALITY AS x(schedule_id, after, n) "
    "ORDER BY x.n"
)
SNOOZES_ENDED = sa.text(
    f"SELECT id FROM schedules WHERE status = '{ScheduleStatus.PAUSED}' AND paused_until <= :now "
    "ORDER BY paused_until LIMIT :limit"
)


# "Consecutive" is in slot order: the last N runs of the schedule that ended succeeded, failed or timed out (the
# index on (schedule_id, scheduled_for) reads them backwards and stops after N).
AUTO_PAUSE = sa.text(
    f"""
    WITH tripped AS (
        SELECT s.id, s.pause_after_failures AS n
        FROM schedules AS s
        WHERE s.id = ANY(CAST(:ids AS uuid[])) AND s.status = '{ScheduleStatus.ACTIVE}'
          AND s.pause_after_failures IS NOT NULL
          AND (SELECT count(*) FILTER (WHERE last.status <> '{ExecutionStatus.SUCCEEDED}')
               FROM (SELECT e.status FROM executions AS e
                     WHERE e.schedule_id = s.id
                       AND e.status IN ('{ExecutionStatus.SUCCEEDED}', '{ExecutionStatus.FAILED}',
                                        '{ExecutionStatus.TIMED_OUT}')
                     ORDER BY e.scheduled_for DESC
                     LIMIT s.pause_after_failures) AS last) = s.pause_after_failures
        ORDER BY s.id
        FOR UPDATE OF s),
    paused AS (
        UPDATE schedules AS s
        SET status = '{ScheduleStatus.PAUSED}', paused_at = :now, paused_until = NULL,
            status_reason = format('auto-paused after %s consecutive failed runs', t.n),
            updated_at = :now, updated_by = :actor, version = s.version + 1
        FROM tripped AS t
        WHERE s.id = t.id
        RETURNING s.id, s.status_reason)
    INSERT INTO audit_log (at, actor, action, schedule_id, reason)
    SELECT :now, :actor, 'schedule.paused', id, status_reason FROM paused
    RETURNING schedule_id, reason
    """
)


async def select_due(conn: AsyncConnection, horizon: datetime, limit: int):
    """SELECT_DUE: up to `limit` active schedules with a slot at or before `horizon`, locked."""
    return (await conn.execute(SELECT_DUE, {"horizon": horizon, "limit": limit})).all()


async def advance(conn: AsyncConnection, columns: dict[str, list[Any]], now: datetime) -> None:
    """ADVANCE: per schedule (`ids`), its `next_runs`, slots `fired`, `last_fired`, `statuses`, `reasons`."""
    if columns["ids"]:
        await conn.execute(ADVANCE, {**columns, "now": now})


async def disable(
    conn: AsyncConnection,
    disabled: Sequence[tuple[uuid.UUID, str]],
    now: datetime,
    stop_planning: bool = False,
    actor: str = SYSTEM_ACTOR,
) -> None:
    """DISABLE: each (schedule id, reason) still active or paused becomes `disabled`, audited.
    `stop_planning`: also forget its next slot (its rule can no longer be evaluated)."""
    if disabled:
        ids, reasons = [d[0] for d in disabled], [d[1] for d in disabled]
        params = {"ids": ids, "reasons": reasons, "now": now, "actor": actor, "stop_planning": stop_planning}
        await conn.execute(DISABLE, params)


async def insert_many(conn: AsyncConnection, rows_json: str, audit_json: str, actor: Actor, now: datetime) -> None:
    """INSERT_MANY and AUDIT_CREATED: a batch of schedules (a JSON array of rows with every column) and
    their audit entries (a JSON array of {schedule_id, after})."""
    await conn.execute(INSERT_MANY, {"rows": rows_json})
    params = {"at": now, "actor": actor.name, "reason": "bulk create", "correlation_id": actor.correlation_id}
    await conn.execute(AUDIT_CREATED, {**params, "rows": audit_json})


async def auto_pause(
    conn: AsyncConnection, schedule_ids: Sequence[uuid.UUID], now: datetime, actor: str = SYSTEM_ACTOR
) -> list[tuple[uuid.UUID, str]]:
    """AUTO_PAUSE among `schedule_ids`: (schedule id, reason) of each schedule it paused."""
    if not schedule_ids:
        return []
    rows = await conn.execute(AUTO_PAUSE, {"ids": list(schedule_ids), "now": now, "actor": actor})
    return [(row.schedule_id, row.reason) for row in rows]


async def snoozes_ended(conn: AsyncConnection, now: datetime, limit: int) -> list[uuid.UUID]:
    """SNOOZES_ENDED: up to `limit` ids (not locked: the caller locks and checks each one)."""
    return [row.id for row in await conn.execute(SNOOZES_ENDED, {"now": now, "limit": limit})]


def audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    now: datetime,
    schedule_id: uuid.UUID | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Add one audit entry to the session; it commits (or rolls back) with the change it describes."""
    entry = AuditEntry(
        at=now,
        actor=actor.name,
        action=action,
        schedule_id=schedule_id,
        before=before,
        after=after,
        reason=reason,
        correlation_id=actor.correlation_id,
    )
    session.add(entry)
    return entry
