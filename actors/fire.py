"""The firing actors. They take execution ids only and hold no business rules (see services.firing).

`fire_batch` publishes a batch handed over by the ticker. Runs that fail are recorded `retrying`
with their next attempt time (the core backoff; the attempt count lives in PostgreSQL) and go back to
the queue together as delayed `fire_overdue` messages, until they succeed or run out of attempts; runs
that failed because NATS was unreachable go back when it is reachable again (actors.handoff). Metrics
and events of a batch are one function each (`_observe`, `_emit_events`); each recorded attempt is
one log line (`_log_outcomes`) carrying its run's ids and the correlation id of the request behind it.
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
from core.states import NOT_FIRED_STATUSES, ExecutionEvent, ExecutionStatus, Reason, ScheduleEvent, event_of
from core.tuning import FIRE_PRIORITY, OVERDUE_PRIORITY, TIME_LIMIT_MS
from runtime import metrics
from services.events import EXECUTION_EVENT_PREFIX, SCHEDULE_EVENT_PREFIX
from services.firing import WHITELIST_DISABLE_REASON, FireResult
from services.stores.schedules import SYSTEM_ACTOR

log = logging.getLogger("actors.fire")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _only_explicit_retries(retries: int, exception: BaseException) -> bool:
    """Retry only when we raise Retry: the attempt count lives in PostgreSQL, not in the message."""
    return isinstance(exception, Retry)


def _observe(result: FireResult) -> None:
    metrics.LOCKS_ACQUIRED.inc(result.locks_acquired)
    published, unpublished = result.dead_letters
    if published or unpublished:
        metrics.DEAD_LETTERS.labels("published").inc(published)
        metrics.DEAD_LETTERS.labels("unpublished").inc(unpublished)
    metrics.AUTO_PAUSES.inc(len(result.auto_paused))
    for outcome in result.outcomes:
        metrics.EXECUTIONS.labels(outcome.schedule_type, outcome.status).inc()
        if outcome.status in NOT_FIRED_STATUSES or outcome.reason == Reason.FORBIDDEN:
            metrics.MISFIRES.labels(outcome.reason or outcome.status).inc()
        if outcome.published_at is not None:
            # When the publish began, not when the run was claimed: a run claimed ahead of its instant
            # (DISPATCH_LEAD_MS) starts "on time" by construction, however late its command leaves.
            metrics.FIRE_LAG.observe(max(0.0, (outcome.published_at - outcome.scheduled_for).total_seconds()))
            if outcome.settled_at is not None and outcome.status is not ExecutionStatus.AWAITING:
                # The publish alone: from its start to its PubAck, barrier echo or reply (or its failure);
                # a run awaiting its report has its duration when the report comes (services.completion).
                duration = (outcome.settled_at - outcome.published_at).total_seconds()
                metrics.EXECUTION_DURATION.observe(max(0.0, duration))


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
    for schedule_id, reason in result.auto_paused:
        body = {"schedule_id": str(schedule_id), "actor": SYSTEM_ACTOR, "reason": reason, "at": at}
        events.append((SCHEDULE_EVENT_PREFIX + ScheduleEvent.PAUSED, body))
    for o in result.outcomes:
        body = {
            "execution_id": str(o.execution_id),
            "schedule_id": str(o.schedule_id),
            "attempt": o.attempt,
            "scheduled_for": o.scheduled_for.isoformat(),
            "at": at,
            "correlation_id": o.correlation_id,
            "traceparent": o.traceparent,
        }
        events.append((EXECUTION_EVENT_PREFIX + ExecutionEvent.STARTED, {**body, "status": ExecutionStatus.RUNNING}))
        kind = event_of(o.status)
        events.append(
            (EXECUTION_EVENT_PREFIX + kind, {**body, "status": o.status, "reason": o.reason, "error": o.error})
        )
    await res.events.emit_many(events)


def _log_outcomes(result: FireResult) -> None:
    """One line per recorded attempt, with the ids and the correlation id of the run's request."""
    if not log.isEnabledFor(logging.INFO):
        return
    for o in result.outcomes:
        log.info(
            "execution recorded",
            extra={
                "action": "execution.recorded",
                "execution_id": str(o.execution_id),
                "schedule_id": str(o.schedule_id),
                "correlation_id": o.correlation_id,
                "traceparent": o.traceparent,
                "attempt": o.attempt,
                "status": o.status.value,
                "reason": o.reason,
            },
        )


async def _retry_later(result: FireResult) -> None:
    if result.retries:
        res = await resources()
        await asyncio.to_thread(res.hand_off.retries_of, result)
    if result.waiting_for_nats:
        (await resources()).hand_off.park_nats_waiters(result)


async def _run(execution_ids: list[str]) -> FireResult:
    res = await resources()
    ids = [uuid.UUID(i) for i in execution_ids]
    result = await res.firing.fire(ids, utc_now, random.random())
    _observe(result)
    _log_outcomes(result)
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
