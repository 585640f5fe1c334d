"""Execution history reads and per-schedule statistics. Instants are UTC; durations in ms."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound, ValidationFailed
from core.states import FAILED_STATUSES, FINAL_STATUSES, IN_FLIGHT_STATUSES, ExecutionStatus
from models import Execution, Schedule
from services.access import check_visible, execution_scope
from services.context import Actor
from services.paging import KeysetPage, keyset_rows, offset_rows
from services.schemas import ExecutionFilter, ExecutionOut, Page, StatsOut
from services.views import execution_out

OUTCOME_STATUSES = sorted(FINAL_STATUSES)
EXECUTION_ORDER = (col(Execution.scheduled_for), col(Execution.id))  # newest slot first, stable


def _statuses(raw: str | None) -> list[str]:
    """`status=failed,missed` → ['failed', 'missed']; unknown names are a validation error."""
    if not raw:
        return []
    names = [s.strip() for s in raw.split(",") if s.strip()]
    known = {s.value for s in ExecutionStatus}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationFailed.single(
            "status", f"unknown status {unknown[0]!r}; expected one of {', '.join(sorted(known))}"
        )
    return names


def execution_conditions(filters: ExecutionFilter) -> list[Any]:
    """SQL conditions of an execution filter (shared by the REST page and the GraphQL connection)."""
    conditions: list[Any] = []
    if filters.schedule_id is not None:
        conditions.append(Execution.schedule_id == filters.schedule_id)
    statuses = _statuses(filters.status)
    if statuses:
        conditions.append(col(Execution.status).in_(statuses))
    if filters.since is not None:
        conditions.append(Execution.scheduled_for >= filters.since)
    if filters.until is not None:
        conditions.append(Execution.scheduled_for < filters.until)
    if filters.dead_lettered is not None:
        marked = col(Execution.dead_lettered_at)
        conditions.append(marked.is_not(None) if filters.dead_lettered else marked.is_(None))
    return conditions


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


class ExecutionService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def _schedule_exists(self, session: AsyncSession, schedule_id: uuid.UUID, actor: Actor) -> Schedule:
        row = await session.get(Schedule, schedule_id)
        if row is None or row.deleted_at is not None:
            raise NotFound("schedule", schedule_id, field="schedule_id")
        check_visible(actor, row)
        return row

    async def list(self, filters: ExecutionFilter, actor: Actor, page: int = 1, limit: int = 20) -> Page[ExecutionOut]:
        """Executions newest slot first; filter by schedule, status (comma list) and slot time range."""
        conditions = execution_conditions(filters) + execution_scope(actor)
        async with self.sessions() as session:
            if filters.schedule_id is not None:
                await self._schedule_exists(session, filters.schedule_id, actor)
            rows, total = await offset_rows(session, Execution, conditions, EXECUTION_ORDER, page, limit)
        return Page[ExecutionOut].of([execution_out(r) for r in rows], total, page, limit)

    async def connection(
        self, filters: ExecutionFilter, actor: Actor, first: int, after: str | None
    ) -> KeysetPage[ExecutionOut]:
        """A cursor page of executions, newest slot first (GraphQL `executions`)."""
        async with self.sessions() as session:
            rows, cursors, total, has_next = await keyset_rows(
                session,
                Execution,
                execution_conditions(filters) + execution_scope(actor),
                EXECUTION_ORDER,
                first,
                after,
            )
        return KeysetPage[ExecutionOut](
            items=[execution_out(r) for r in rows], cursors=cursors, total=total, has_next=has_next
        )

    async def get(self, execution_id: uuid.UUID, actor: Actor) -> ExecutionOut:
        async with self.sessions() as session:
            row = (
                await session.exec(select(Execution).where(Execution.id == execution_id, *execution_scope(actor)))
            ).first()
        if row is None:
            raise NotFound("execution", execution_id, field="execution_id")
        return execution_out(row)

    async def running(self, actor: Actor, limit: int = 500) -> list[ExecutionOut]:
        """Executions a worker is publishing right now (running, or waiting for a retry)."""
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(Execution)
                    .where(col(Execution.status).in_(sorted(IN_FLIGHT_STATUSES)), *execution_scope(actor))
                    .order_by(col(Execution.started_at))
                    .limit(limit)
                )
            ).all()
        return [execution_out(r) for r in rows]

    async def latest_for(self, schedule_ids: list[uuid.UUID]) -> dict[uuid.UUID, ExecutionOut]:
        """The newest execution of each schedule, in one query (for DataLoaders, which only ask about
        schedules the caller was already allowed to see)."""
        if not schedule_ids:
            return {}
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(Execution)
                    .where(col(Execution.schedule_id).in_(schedule_ids))
                    .ext(distinct_on(col(Execution.schedule_id)))
                    .order_by(col(Execution.schedule_id), col(Execution.scheduled_for).desc())
                )
            ).all()
        return {row.schedule_id: execution_out(row) for row in rows}

    async def stats(self, schedule_id: uuid.UUID, actor: Actor, since: datetime | None = None) -> StatsOut:
        """Counts by status, success rate, p50/p95/max of duration and fire lag (ms), last outcome."""
        async with self.sessions() as session:
            await self._schedule_exists(session, schedule_id, actor)
        return (await self.stats_many([schedule_id], since))[schedule_id]

    async def stats_many(
        self, schedule_ids: list[uuid.UUID], since: datetime | None = None
    ) -> dict[uuid.UUID, StatsOut]:
        """Statistics of several schedules in grouped queries (for DataLoaders: visible schedules only)."""
        if not schedule_ids:
            return {}
        async with self.sessions() as session:
            found = await _stats_rows(session, schedule_ids, since)
        return {schedule_id: _stats_out(schedule_id, since, found) for schedule_id in schedule_ids}


def _percentiles(expr: Any, scope: list[Any]) -> Any:
    """p50, p95 and max of `expr` per schedule, over the rows in `scope` that started."""
    return (
        select(
            Execution.schedule_id,
            sa.func.percentile_cont(0.5).within_group(expr),
            sa.func.percentile_cont(0.95).within_group(expr),
            sa.func.max(expr),
        )
        .where(*scope, col(Execution.started_at).is_not(None))
        .group_by(Execution.schedule_id)
    )


async def _stats_rows(session: AsyncSession, schedule_ids: list[uuid.UUID], since: datetime | None) -> dict[str, Any]:
    """The grouped rows the statistics are built from: counts by status, durations and lags (ms),
    the last outcome and the schedules themselves, each keyed by schedule id."""
    duration = sa.extract("epoch", col(Execution.finished_at) - col(Execution.started_at)) * 1000
    lag = sa.extract("epoch", col(Execution.started_at) - col(Execution.scheduled_for)) * 1000
    scope = [col(Execution.schedule_id).in_(schedule_ids)]
    if since is not None:
        scope.append(Execution.scheduled_for >= since)
    counts: dict[uuid.UUID, dict[str, int]] = {}
    by_status = select(Execution.schedule_id, Execution.status, sa.func.count())
    for schedule_id, status, count in (
        await session.exec(by_status.where(*scope).group_by(Execution.schedule_id, Execution.status))
    ).all():
        counts.setdefault(schedule_id, {})[status] = count
    finished = _percentiles(duration, scope).where(col(Execution.finished_at).is_not(None))
    last_outcome = (
        select(Execution.schedule_id, Execution.status)
        .where(*scope, col(Execution.status).in_(OUTCOME_STATUSES))
        .ext(distinct_on(col(Execution.schedule_id)))
        .order_by(col(Execution.schedule_id), col(Execution.scheduled_for).desc())
    )
    schedules = select(Schedule).where(col(Schedule.id).in_(schedule_ids))
    return {
        "counts": counts,
        "durations": {r[0]: r[1:] for r in (await session.exec(finished)).all()},
        "lags": {r[0]: r[1:] for r in (await session.exec(_percentiles(lag, scope))).all()},
        "last": dict((await session.exec(last_outcome)).all()),
        "schedules": {s.id: s for s in (await session.exec(schedules)).all()},
    }


def _stats_out(schedule_id: uuid.UUID, since: datetime | None, found: dict[str, Any]) -> StatsOut:
    by_status = found["counts"].get(schedule_id, {})
    succeeded = by_status.get(ExecutionStatus.SUCCEEDED, 0)
    failed = sum(by_status.get(status, 0) for status in FAILED_STATUSES)
    d = found["durations"].get(schedule_id, (None, None, None))
    lg = found["lags"].get(schedule_id, (None, None, None))
    schedule = found["schedules"].get(schedule_id)
    return StatsOut(
        schedule_id=schedule_id,
        since=since,
        total=sum(by_status.values()),
        by_status={s.value: by_status.get(s.value, 0) for s in ExecutionStatus},
        success_rate=round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
        duration_ms={"p50": _rounded(d[0]), "p95": _rounded(d[1]), "max": _rounded(d[2])},
        lag_ms={"p50": _rounded(lg[0]), "p95": _rounded(lg[1]), "max": _rounded(lg[2])},
        last_outcome=found["last"].get(schedule_id),
        last_run_at=schedule.last_run_at if schedule else None,
        next_run_at=schedule.next_run_at if schedule else None,
    )
