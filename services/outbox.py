"""Find executions that must be (re)handed to the queue, and reap runs whose worker vanished.

PostgreSQL holds every run's state, so the queue may lose messages (a crash between commit and
enqueue, a worker killed with messages in hand, Redis restarted empty) without losing runs:
- `pending` rows never handed over (manual triggers, jittered slots now due, failed enqueues);
- `pending` rows handed over more than REENQUEUE_AFTER_SECONDS ago and still not started;
- `retrying` rows whose next attempt is overdue by REENQUEUE_AFTER_SECONDS;
- `running` rows whose worker is dead: at once when its heartbeat is gone (`dead_workers`, see
  services.liveness), else once they are older than LOCK_TIMEOUT_SECONDS (a worker without a
  heartbeat, or Redis unreachable). The retry policy gives them their fate (core.outcomes,
  `RetryPolicy.on_lost`: `retrying` at once, or `failed` when out of attempts), and
  the leases the dead worker held for them are returned (`SweepResult.freed_leases`) so the next
  attempt need not wait for their TTL. A publish may have happened before the crash, so such a run
  can be delivered twice; JetStream drops the repeat by `Nats-Msg-Id` within its window.
- `awaiting` runs whose completion timeout passed: the retry policy gives them their fate
  (`RetryPolicy.on_timeout`: `retrying` with backoff, or `timed_out`);
- `retrying` runs decided outside a worker (a completion report, a timeout), which no worker sent a
  delayed message for: handed over to be claimed at their instant;
- `buffered` runs whose turn came (no run of their schedule is in progress any more): `pending` now;
- with `rescue` (Redis lost its data, queues included: services.liveness.Census), every run handed
  over and not started, at once, instead of after REENQUEUE_AFTER_SECONDS, and the retries due within
  REENQUEUE_AFTER_SECONDS again, delayed to their instant (their delayed messages were lost too). A
  dead worker's prefetched messages are not rescued here: Dramatiq moves exactly those back once
  the ticker marks its consumer dead (services.liveness), without copying the runs other workers hold.
A message that is handed over twice is harmless: the worker's claim is a conditional UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import random

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.outcomes import RetryPolicy
from core.settings import Settings
from core.states import ExecutionStatus, ScheduleStatus
from core.tuning import RESCUE_LIMIT
from services.locks import lease_token
from services.stores import executions as store
from services.ticking import Dispatch, dispatch_order, lead_of

_NEXT_DUE = sa.text(
    f"""
    SELECT least(
        (SELECT min(next_run_at) FROM schedules
          WHERE status = '{ScheduleStatus.ACTIVE}' AND next_run_at IS NOT NULL),
        (SELECT min(coalesce(not_before, scheduled_for)) FROM executions
          WHERE status = '{ExecutionStatus.PENDING}' AND enqueued_at IS NULL))
    """
)
_RUNNING_CLAIMERS = sa.text(
    "SELECT DISTINCT split_part(claimed_by, '#', 1) FROM executions "
    f"WHERE status = '{ExecutionStatus.RUNNING}' AND claimed_by IS NOT NULL"
)


@dataclass(frozen=True)
class _Expired:
    """An `awaiting` run whose completion timeout passed, as the retry policy reads it."""

    attempt: int
    max_retries: int
    retry_delay: int


@dataclass(frozen=True)
class _Lost:
    """A `running` run whose worker is gone, as the retry policy reads it."""

    attempt: int
    max_retries: int


@dataclass
class SweepResult:
    dispatch: list[Dispatch] = field(default_factory=list)
    handed_over: int = 0
    requeued_pending: int = 0
    requeued_retries: int = 0
    rescued_upcoming: int = 0
    reaped_retrying: int = 0
    reaped_failed: int = 0
    timed_out_retrying: int = 0
    timed_out: int = 0
    woken: int = 0  # buffered runs whose turn came
    failed_ids: list[uuid.UUID] = field(default_factory=list)  # reaped or timed out with no attempt left
    # (schedule_id, max_concurrent, lease token) of the reaped runs, for ScheduleLocks.release_held
    freed_leases: list[tuple[uuid.UUID, int, str]] = field(default_factory=list)


async def sweep(
    engine: AsyncEngine,
    now: datetime,
    settings: Settings,
    limit: int = 5000,
    dead_workers: Collection[str] = (),
    rescue: bool = False,
) -> SweepResult:
    """One pass over the outbox and the stale runs; returns what to enqueue after the commit.

    `dead_workers`: claimers known to be dead (no heartbeat), whose `running` rows are reaped now.
    `rescue`: Redis lost its queues just now: hand over again every run handed over and not started,
    not only those older than REENQUEUE_AFTER_SECONDS, up to RESCUE_LIMIT of each kind.
    """
    result = SweepResult()
    reenqueue_after = timedelta(seconds=settings.REENQUEUE_AFTER_SECONDS)
    stale_queue = now if rescue else now - reenqueue_after
    lost_limit = RESCUE_LIMIT if rescue else limit
    async with engine.begin() as conn:
        await _expire(conn, now, settings, limit, result)
        result.woken = len(await store.wake_buffered(conn, now, limit))
        handed = await store.hand_over(conn, now, now + lead_of(settings), limit)
        unsent = await store.unsent_retries(conn, now, now + lead_of(settings), limit)
        lost = await store.lost_pending(conn, now, stale_queue, lost_limit)
        # Before lost_retries moves the overdue ones to `now`: the two sets stay apart.
        upcoming = await store.upcoming_retries(conn, now, now + reenqueue_after, lost_limit) if rescue else []
        retries = await store.lost_retries(conn, now, stale_queue, lost_limit)
        await _reap(conn, now, settings, limit, dead_workers, result)
    result.handed_over, result.requeued_pending, result.requeued_retries = len(handed), len(lost), len(retries)
    for execution_id, priority, due in [*handed, *unsent]:  # jittered slots may be handed over before their instant
        result.dispatch.append(Dispatch(execution_id, priority, due if due > now else None))
    for execution_id, priority in [*lost, *retries]:
        result.dispatch.append(Dispatch(execution_id, priority, overdue=True))
    result.rescued_upcoming = len(upcoming)
    for execution_id, priority, next_attempt_at in upcoming:
        result.dispatch.append(Dispatch(execution_id, priority, next_attempt_at, overdue=True))
    result.dispatch = dispatch_order(result.dispatch)
    return result


def _lost_error(claimed_by: str | None, dead_workers: Collection[str]) -> str:
    """Why a run was reaped, in its last_error and its attempt log entry."""
    worker = (claimed_by or "").split("#", 1)[0]
    if claimed_by and worker in dead_workers:
        return f"worker {worker} stopped heartbeating: lost mid-run"
    return "no outcome within LOCK_TIMEOUT_SECONDS: the worker was lost mid-run"


async def _expire(conn: AsyncConnection, now: datetime, settings: Settings, limit: int, result: SweepResult) -> None:
    """Give the `awaiting` runs whose completion timeout passed their next fate."""
    rows = await store.expired(conn, now, limit)
    policy = RetryPolicy.of(settings)
    decisions = [
        (
            row.id,
            policy.on_timeout(
                _Expired(row.attempts, row.max_retries, row.retry_delay), row.completion_timeout_seconds, random()
            ),
        )
        for row in rows
    ]
    await store.record_expired(conn, decisions, now)
    for execution_id, decision in decisions:
        if decision.is_final:
            result.timed_out += 1
            result.failed_ids.append(execution_id)
        else:
            result.timed_out_retrying += 1


async def _reap(
    conn: AsyncConnection,
    now: datetime,
    settings: Settings,
    limit: int,
    dead_workers: Collection[str],
    result: SweepResult,
) -> None:
    """Give the `running` runs of dead workers (or older than LOCK_TIMEOUT_SECONDS) their next fate."""
    stale = now - timedelta(seconds=settings.LOCK_TIMEOUT_SECONDS)
    rows = await store.select_stale(conn, stale, list(dead_workers), limit)
    policy = RetryPolicy.of(settings)
    lost = [_Lost(row.attempts, row.max_retries) for row in rows]
    decisions = [policy.on_lost(run, _lost_error(row.claimed_by, dead_workers)) for run, row in zip(lost, rows)]
    await store.record_lost(conn, [(row.id, d) for row, d in zip(rows, decisions)], now)
    for row, decision in zip(rows, decisions):
        result.freed_leases.append((row.schedule_id, row.max_concurrent, lease_token(row.id, row.claimed_by)))
        if decision.is_final:
            result.reaped_failed += 1
            result.failed_ids.append(row.id)
        else:
            result.reaped_retrying += 1
            result.dispatch.append(Dispatch(row.id, row.priority, overdue=True))


async def release_hand_over(engine: AsyncEngine, execution_ids: list[uuid.UUID]) -> None:
    """Mark runs whose enqueue failed as not handed over, so the next sweep retries at once."""
    if execution_ids:
        async with engine.begin() as conn:
            await store.release(conn, execution_ids)


async def next_due_at(engine: AsyncEngine) -> datetime | None:
    """The earliest instant at which the ticker has something to do (schedule slot or outbox row)."""
    async with engine.connect() as conn:
        return (await conn.execute(_NEXT_DUE)).scalar()


async def running_claimers(engine: AsyncEngine) -> list[str]:
    """The workers holding `running` runs now (for the heartbeat check before a sweep); a claim is
    named `<worker id>#<nonce>` (services.firing)."""
    async with engine.connect() as conn:
        return [row[0] for row in await conn.execute(_RUNNING_CLAIMERS)]
