"""The firing actors. They take execution ids only and hold no business rules (see services.firing).

`fire_batch` publishes a batch handed over by the ticker. Runs that fail are recorded `retrying`
with their next attempt time (the core backoff; the attempt count lives in PostgreSQL) and go back to
the queue together as delayed `fire_overdue` messages, until they succeed or run out of attempts; runs
that failed because NATS was unreachable go back when it is reachable again (actors.waiting_room).
Safe to run twice: the claim is a conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime, timezone

import dramatiq
from dramatiq import Retry

from actors.broker import FIRE_QUEUE, OVERDUE_QUEUE
from actors.resources import WorkerResources, resources
from actors.waiting_room import WaitingRoom
from core.backoff import whole_seconds_ms
from core.states import NOT_FIRED_STATUSES, ExecutionEvent, ExecutionStatus, Reason, ScheduleEvent, event_of
from core.tuning import FIRE_PRIORITY, OVERDUE_PRIORITY, TIME_LIMIT_MS
from runtime import metrics
from services.events import EXECUTION_EVENT_PREFIX, SCHEDULE_EVENT_PREFIX
from services.firing import WHITELIST_DISABLE_REASON, FireResult, Outcome

log = logging.getLogger("actors.fire")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _only_explicit_retries(retries: int, exception: BaseException) -> bool:
    """Retry only when we raise Retry: the attempt count lives in PostgreSQL, not in the message."""
    return isinstance(exception, Retry)


def _observe(result: FireResult) -> None:
    metrics.LOCKS_ACQUIRED.inc(result.locks_acquired)
    for outcome in result.outcomes:
        metrics.EXECUTIONS.labels(outcome.schedule_type, outcome.status).inc()
        if outcome.status in NOT_FIRED_STATUSES or outcome.reason == Reason.FORBIDDEN:
            metrics.MISFIRES.labels(outcome.reason or outcome.status).inc()
        if outcome.published_at is not None:
            # When the publish began, not when the run was claimed: a run claimed ahead of its instant
            # (DISPATCH_LEAD_MS) starts "on time" by construction, however late its command leaves.
            metrics.FIRE_LAG.observe(max(0.0, (outcome.published_at - outcome.scheduled_for).total_seconds()))


async def _emit_events(res: WorkerResources, result: FireResult) -> None:
    # One timestamp per batch and the instants formatted once: event encoding is on the hot path.
    at = utc_now().isoformat()
    events: list[tuple[str, dict]] = []
    for schedule_id in result.disabled:
        events.append(
            (
                SCHEDULE_EVENT_PREFIX + ScheduleEvent.DISABLED,
                {
                    "schedule_id": str(schedule_id),
                    "reason": WHITELIST_DISABLE_REASON,
                    "at": at,
                },
            )
        )
    for o in result.outcomes:
        body = {
            "execution_id": str(o.execution_id),
            "schedule_id": str(o.schedule_id),
            "attempt": o.attempt,
            "scheduled_for": o.scheduled_for.isoformat(),
            "at": at,
        }
        events.append((EXECUTION_EVENT_PREFIX + ExecutionEvent.STARTED, {**body, "status": ExecutionStatus.RUNNING}))
        kind = event_of(o.status)
        events.append(
            (EXECUTION_EVENT_PREFIX + kind, {**body, "status": o.status, "reason": o.reason, "error": o.error})
        )
    await res.events.emit_many(events)


def _send_retries(outcomes: list[Outcome], batch_size: int, actor: dramatiq.Actor | None = None) -> None:
    """Queue the runs to retry as delayed `fire_overdue` messages (or `actor`'s) of up to `batch_size` ids.

    A run to retry is past its instant, so it goes to the overdue lane, ahead of a catch-up's backlog
    of fresh slots.

    Runs are grouped by their backoff rounded UP to the whole second, and a group's message is delayed
    by that rounded value: every run waits at least its own backoff (at most a second more), and a
    batch that failed together retries together, in one claim, not one message, claim and outcome
    UPDATE per run.
    """
    groups: dict[int, list[str]] = {}
    for outcome in outcomes:
        delay_ms = whole_seconds_ms(outcome.retry_in_ms or 0)
        groups.setdefault(delay_ms, []).append(str(outcome.execution_id))
    for delay_ms, ids in groups.items():
        _send_in_batches(ids, batch_size, delay_ms, actor or fire_overdue)


def _send_in_batches(
    execution_ids: list[str], batch_size: int, delay_ms: int = 0, actor: dramatiq.Actor | None = None
) -> None:
    """Queue runs as messages of `actor` (the overdue lane by default) of up to `batch_size` ids,
    delayed by `delay_ms` (0: at once, straight onto the queue: Dramatiq sends even a 0 ms delay through
    its delay queue, which workers prefetch and hold)."""
    for start in range(0, len(execution_ids), batch_size):
        (actor or fire_overdue).send_with_options(
            args=(execution_ids[start : start + batch_size],), delay=delay_ms or None
        )


async def _nats_is_up(res: WorkerResources) -> bool:
    try:
        return (await res.nats.connection()).is_connected
    except Exception:
        return False


_waiting_room: WaitingRoom | None = None


async def _waiting_for_nats() -> WaitingRoom:
    """This worker process's room for runs waiting on NATS (see actors.waiting_room)."""
    global _waiting_room
    if _waiting_room is None:
        res = await resources()
        _waiting_room = WaitingRoom(
            lambda: _nats_is_up(res), lambda ids: _send_in_batches(ids, res.settings.DISPATCH_BATCH_SIZE)
        )
    return _waiting_room


async def _retry_later(result: FireResult) -> None:
    # If this enqueue is lost (or this worker dies with runs waiting for NATS), the rows stay
    # `retrying` and the ticker's sweep hands them over.
    if result.retries:
        res = await resources()
        await asyncio.to_thread(_send_retries, result.retries, res.settings.DISPATCH_BATCH_SIZE)
    if result.waiting_for_nats:
        (await _waiting_for_nats()).park(str(o.execution_id) for o in result.waiting_for_nats)


async def _run(execution_ids: list[str]) -> FireResult:
    res = await resources()
    ids = [uuid.UUID(i) for i in execution_ids]
    result = await res.firing.fire(ids, utc_now, random.random())
    _observe(result)
    await _emit_events(res, result)
    return result


@dramatiq.actor(
    queue_name=FIRE_QUEUE, retry_when=_only_explicit_retries, time_limit=TIME_LIMIT_MS, priority=FIRE_PRIORITY
)
async def fire_batch(execution_ids: list[str]) -> None:
    """Fire a batch: runs handed over by the ticker (those handed over ahead of their instant are
    claimed now and published at it) or runs whose retry is due."""
    await _retry_later(await _run(execution_ids))


@dramatiq.actor(
    queue_name=OVERDUE_QUEUE, retry_when=_only_explicit_retries, time_limit=TIME_LIMIT_MS, priority=OVERDUE_PRIORITY
)
async def fire_overdue(execution_ids: list[str]) -> None:
    """Fire a batch the outbox sweep found (lost hand-overs, overdue retries, runs reaped from a dead
    worker): the same work as `fire_batch`, ahead of it (see actors.broker.OVERDUE_QUEUE)."""
    await _retry_later(await _run(execution_ids))


@dramatiq.actor(queue_name=FIRE_QUEUE, retry_when=_only_explicit_retries, time_limit=TIME_LIMIT_MS)
async def retry_execution(execution_id: str) -> None:
    """One run's retry, as queued by earlier versions (retries now travel as delayed `fire_overdue`)."""
    await _retry_later(await _run([execution_id]))
