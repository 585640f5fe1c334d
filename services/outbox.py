"""Find executions that must be (re)handed to the queue, and reap runs whose worker vanished.

PostgreSQL holds every run's state, so the queue may lose messages (a crash between commit and
enqueue, a worker killed with messages in hand, Redis restarted empty) without losing runs:
- `pending` rows never handed over (manual triggers, jittered slots now due, failed enqueues);
- `pending` rows handed over more than REENQUEUE_AFTER_SECONDS ago and still not started;
- `retrying` rows whose next attempt is overdue by REENQUEUE_AFTER_SECONDS;
- `running` rows whose worker is dead: at once when its heartbeat is gone (`dead_workers`, see
  services.liveness), else once they are older than LOCK_TIMEOUT_SECONDS (a worker without a
  heartbeat, or Redis unreachable). They go back to `retrying` (or `failed` when out of attempts), and
  the leases the dead worker held for them are returned (`SweepResult.freed_leases`) so the next
  attempt need not wait for their TTL. A publish may have happened before the crash, so such a run
  can be delivered twice; JetStream drops the repeat by `Nats-Msg-Id` within its window.
- with `rescue` (Redis lost its data, queues included: services.liveness.Census), every run handed
  over and not started, at once, instead of after REENQUEUE_AFTER_SECONDS, and the retries due within
  REENQUEUE_AFTER_SECONDS again, delayed to their instant (their delayed messages were lost too). A
  dead worker's prefetched messages are not rescued here: Dramatiq moves exactly those back once
  the ticker marks its consumer dead (services.liveness); re-sending every run handed over on each
  death filled the queue with copies during a catch-up (the chaos suite measured it).
A message that is handed over twice is harmless: the worker's claim is a conditional UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from services.locks import lease_token
from services.ticking import Dispatch, dispatch_order, lead_of

_HAND_OVER = sa.text(
    """
    UPDATE executions SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = 'pending' AND enqueued_at IS NULL AND coalesce(not_before, scheduled_for) <= :horizon
        ORDER BY priority DESC, coalesce(not_before, scheduled_for)
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority, coalesce(not_before, scheduled_for) AS due
    """
)
_LOST_PENDING = sa.text(
    """
    UPDATE executions SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = 'pending' AND enqueued_at < :stale
        ORDER BY priority DESC, scheduled_for
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority
    """
)
_LOST_RETRIES = sa.text(
    """
    UPDATE executions SET next_attempt_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = 'retrying' AND next_attempt_at < :stale
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority
    """
)
# Retries due soon whose delayed message a dead worker may hold: sent again, delayed to the same instant.
_UPCOMING_RETRIES = sa.text(
    """
    SELECT id, priority, next_attempt_at FROM executions
    WHERE status = 'retrying' AND next_attempt_at >= :now AND next_attempt_at < :horizon
    ORDER BY next_attempt_at LIMIT :limit
    """
)
# Why a run was reaped, in its last_error and its attempt log entry.
_REAP_REASON = """CASE WHEN split_part(e.claimed_by, '#', 1) = ANY(CAST(:dead AS text[]))
        THEN 'worker ' || split_part(e.claimed_by, '#', 1) || ' stopped heartbeating: lost mid-run'
        ELSE 'no outcome within LOCK_TIMEOUT_SECONDS: the worker was lost mid-run' END"""
_REAP_RUNNING = sa.text(
    f"""
    UPDATE executions AS e
    SET status = CASE WHEN e.attempts > s.max_retries THEN 'failed' ELSE 'retrying' END,
        next_attempt_at = CASE WHEN e.attempts > s.max_retries THEN NULL ELSE CAST(:now AS timestamptz) END,
        finished_at = CASE WHEN e.attempts > s.max_retries THEN CAST(:now AS timestamptz) ELSE NULL END,
        last_error = {_REAP_REASON},
        attempt_log = e.attempt_log || jsonb_build_array(jsonb_build_object(
            'attempt', e.attempts, 'started_at', e.started_at, 'finished_at', CAST(:now_text AS text),
            'status', 'lost', 'error', {_REAP_REASON}))
    FROM schedules AS s
    WHERE e.id IN (
        SELECT id FROM executions
        WHERE status = 'running'
          AND (started_at < :stale OR split_part(claimed_by, '#', 1) = ANY(CAST(:dead AS text[])))
        LIMIT :limit FOR UPDATE SKIP LOCKED)
      AND s.id = e.schedule_id
    RETURNING e.id, e.priority, e.status, e.schedule_id, s.max_concurrent, e.claimed_by
    """
)
_NEXT_DUE = sa.text(
    """
    SELECT least(
        (SELECT min(next_run_at) FROM schedules WHERE status = 'active' AND next_run_at IS NOT NULL),
        (SELECT min(coalesce(not_before, scheduled_for)) FROM executions
          WHERE status = 'pending' AND enqueued_at IS NULL))
    """
)


# A rescue hands over at most this many runs of each kind at once (a catch-up after a 60 s outage at
# 600 fires/s has ~36,000 outstanding); the rest wait for REENQUEUE_AFTER_SECONDS as before.
RESCUE_LIMIT = 50_000


@dataclass
class SweepResult:
    dispatch: list[Dispatch] = field(default_factory=list)
    handed_over: int = 0
    requeued_pending: int = 0
    requeued_retries: int = 0
    rescued_upcoming: int = 0
    reaped_retrying: int = 0
    reaped_failed: int = 0
    failed_ids: list[uuid.UUID] = field(default_factory=list)
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
    stale_running = now - timedelta(seconds=settings.LOCK_TIMEOUT_SECONDS)
    lost_limit = RESCUE_LIMIT if rescue else limit
    upcoming = []
    async with engine.begin() as conn:
        handed = (
            await conn.execute(_HAND_OVER, {"now": now, "horizon": now + lead_of(settings), "limit": limit})
        ).all()
        lost = (await conn.execute(_LOST_PENDING, {"now": now, "stale": stale_queue, "limit": lost_limit})).all()
        if rescue:  # before _LOST_RETRIES moves the overdue ones to `now`: the two sets stay apart
            upcoming = (
                await conn.execute(
                    _UPCOMING_RETRIES, {"now": now, "horizon": now + reenqueue_after, "limit": lost_limit}
                )
            ).all()
        retries = (await conn.execute(_LOST_RETRIES, {"now": now, "stale": stale_queue, "limit": lost_limit})).all()
        reaped = (
            await conn.execute(
                _REAP_RUNNING,
                {
                    "now": now,
                    "now_text": now.isoformat(),
                    "stale": stale_running,
                    "limit": limit,
                    "dead": list(dead_workers),
                },
            )
        ).all()
    result.handed_over, result.requeued_pending, result.requeued_retries = len(handed), len(lost), len(retries)
    for execution_id, priority, due in handed:  # jittered slots may be handed over before their instant
        result.dispatch.append(Dispatch(execution_id, priority, due if due > now else None))
    for execution_id, priority in [*lost, *retries]:
        result.dispatch.append(Dispatch(execution_id, priority, overdue=True))
    result.rescued_upcoming = len(upcoming)
    for execution_id, priority, next_attempt_at in upcoming:
        result.dispatch.append(Dispatch(execution_id, priority, next_attempt_at, overdue=True))
    for execution_id, priority, status, schedule_id, max_concurrent, claimed_by in reaped:
        result.freed_leases.append((schedule_id, max_concurrent, lease_token(execution_id, claimed_by)))
        if status == "retrying":
            result.reaped_retrying += 1
            result.dispatch.append(Dispatch(execution_id, priority, overdue=True))
        else:
            result.reaped_failed += 1
            result.failed_ids.append(execution_id)
    result.dispatch = dispatch_order(result.dispatch)
    return result


async def release_hand_over(engine: AsyncEngine, execution_ids: list[uuid.UUID]) -> None:
    """Mark runs whose enqueue failed as not handed over, so the next sweep retries at once."""
    if not execution_ids:
        return
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE executions SET enqueued_at = NULL WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'"
            ),
            {"ids": execution_ids},
        )


async def next_due_at(engine: AsyncEngine) -> datetime | None:
    """The earliest instant at which the ticker has something to do (schedule slot or outbox row)."""
    async with engine.connect() as conn:
        return (await conn.execute(_NEXT_DUE)).scalar()


async def running_claimers(engine: AsyncEngine) -> list[str]:
    """The workers holding `running` runs now (for the heartbeat check before a sweep); a claim is
    named `<worker id>#<nonce>` (services.firing)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT DISTINCT split_part(claimed_by, '#', 1) FROM executions "
                "WHERE status = 'running' AND claimed_by IS NOT NULL"
            )
        )
        return [row[0] for row in rows]
