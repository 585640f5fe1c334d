"""Execution history reads and per-schedule statistics. Instants are UTC; durations in ms."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound, ValidationFailed
from core.states import ExecutionStatus
from models import Execution, Schedule
from services.schemas import ExecutionFilter, ExecutionOut, Page, StatsOut
from services.views import execution_out

OUTCOME_STATUSES = ("succeeded", "failed", "missed", "skipped", "cancelled")


def _statuses(raw: str | None) -> list[str]:
    """`status=failed,missed` → ['failed', 'missed']; unknown names are a validation error."""
    if not raw:
        return []
    names = [s.strip() for s in raw.split(",") if s.strip()]
    known = {s.value for s in ExecutionStatus}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationFailed.single("status", f"unknown status {unknown[0]!r}; expected one of {', '.join(sorted(known))}")
    return names


class ExecutionService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def _schedule_exists(self, session: AsyncSession, schedule_id: uuid.UUID) -> Schedule:
        row = await session.get(Schedule, schedule_id)
        if row is None or row.deleted_at is not None:
            raise NotFound("schedule", schedule_id, field="schedule_id")
        return row

    async def list(self, filters: ExecutionFilter, page: int = 1, limit: int = 20) -> Page[ExecutionOut]:
        """Executions newest slot first; filter by schedule, status (comma list) and slot time range."""
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
        async with self.sessions() as session:
            if filters.schedule_id is not None:
                await self._schedule_exists(session, filters.schedule_id)
            total = (await session.exec(select(sa.func.count()).select_from(Execution).where(*conditions))).one()
            rows = (
                await session.exec(
                    select(Execution)
                    .where(*conditions)
                    .order_by(col(Execution.scheduled_for).desc(), col(Execution.id).desc())
                    .offset((page - 1) * limit)
                    .limit(limit)
                )
            ).all()
        return Page[ExecutionOut](
            items=[execution_out(r) for r in rows], total=total, page=page, limit=limit,
            pages=math.ceil(total / limit) if total else 0,
        )

    async def get(self, execution_id: uuid.UUID) -> ExecutionOut:
        async with self.sessions() as session:
            row = await session.get(Execution, execution_id)
        if row is None:
            raise NotFound("execution", execution_id, field="execution_id")
        return execution_out(row)

    async def running(self, limit: int = 500) -> list[ExecutionOut]:
        """Executions a worker is publishing right now (running, or waiting for a retry)."""
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(Execution)
                    .where(col(Execution.status).in_(("running", "retrying")))
                    .order_by(col(Execution.started_at))
                    .limit(limit)
                )
            ).all()
        return [execution_out(r) for r in rows]

    async def stats(self, schedule_id: uuid.UUID, since: datetime | None = None) -> StatsOut:
        """Counts by status, success rate, p50/p95/max of duration and fire lag (ms), last outcome."""
        duration = sa.extract("epoch", col(Execution.finished_at) - col(Execution.started_at)) * 1000
        lag = sa.extract("epoch", col(Execution.started_at) - col(Execution.scheduled_for)) * 1000
        scope = [Execution.schedule_id == schedule_id]
        if since is not None:
            scope.append(Execution.scheduled_for >= since)
        async with self.sessions() as session:
            schedule = await self._schedule_exists(session, schedule_id)
            counts = dict(
                (await session.exec(select(Execution.status, sa.func.count()).where(*scope).group_by(Execution.status))).all()
            )

            def percentiles(expr):
                return select(
                    sa.func.percentile_cont(0.5).within_group(expr),
                    sa.func.percentile_cont(0.95).within_group(expr),
                    sa.func.max(expr),
                ).where(*scope, col(Execution.started_at).is_not(None))

            d50, d95, dmax = (await session.exec(percentiles(duration).where(col(Execution.finished_at).is_not(None)))).one()
            l50, l95, lmax = (await session.exec(percentiles(lag))).one()
            last = (
                await session.exec(
                    select(Execution.status)
                    .where(*scope, col(Execution.status).in_(OUTCOME_STATUSES))
                    .order_by(col(Execution.scheduled_for).desc())
                    .limit(1)
                )
            ).first()
        succeeded, failed = counts.get("succeeded", 0), counts.get("failed", 0)

        def rounded(value):
            return None if value is None else round(float(value), 3)

        return StatsOut(
            schedule_id=schedule_id,
            since=since,
            total=sum(counts.values()),
            by_status={s.value: counts.get(s.value, 0) for s in ExecutionStatus},
            success_rate=round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
            duration_ms={"p50": rounded(d50), "p95": rounded(d95), "max": rounded(dmax)},
            lag_ms={"p50": rounded(l50), "p95": rounded(l95), "max": rounded(lmax)},
            last_outcome=last,
            last_run_at=schedule.last_run_at,
            next_run_at=schedule.next_run_at,
        )
