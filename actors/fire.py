"""The firing actors. They take execution ids only and hold no business rules (see services.firing).

`fire_batch` publishes a batch handed over by the ticker; each run that fails gets its own
`retry_execution` message (message id = execution id) delayed by the core backoff, and from then on
Dramatiq's Retries middleware re-delivers it (`raise Retry(delay=...)`) until the run succeeds or
runs out of attempts. Both are safe to run twice: the claim is a conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime, timezone

import dramatiq
from dramatiq import Retry

from actors.broker import FIRE_QUEUE
from actors.resources import WorkerResources, resources
from runtime import metrics
from services.events import EXECUTION_EVENT_PREFIX, SCHEDULE_EVENT_PREFIX
from services.firing import FireResult

log = logging.getLogger("actors.fire")
TIME_LIMIT_MS = 120_000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _only_explicit_retries(retries: int, exception: BaseException) -> bool:
    """Retry only when we raise Retry: the attempt count lives in PostgreSQL, not in the message."""
    return isinstance(exception, Retry)


def _observe(result: FireResult) -> None:
    metrics.LOCKS_ACQUIRED.inc(result.locks_acquired)
    for outcome in result.outcomes:
        metrics.EXECUTIONS.labels(outcome.schedule_type, outcome.status).inc()
        if outcome.status in ("skipped", "missed", "cancelled") or outcome.reason == "forbidden":
            metrics.MISFIRES.labels(outcome.reason or outcome.status).inc()
        if outcome.status in ("succeeded", "failed", "retrying"):
            metrics.FIRE_LAG.observe(max(0.0, (outcome.started_at - outcome.scheduled_for).total_seconds()))


async def _emit_events(res: WorkerResources, result: FireResult) -> None:
    # One timestamp per batch and the instants formatted once: encoding 2 events per run was a
    # seventh of the worker's time per fire (bench/RESULTS.md). The JSON is the same.
    at = utc_now().isoformat()
    events: list[tuple[str, dict]] = []
    for schedule_id in result.disabled:
        events.append((SCHEDULE_EVENT_PREFIX + "disabled", {
            "schedule_id": str(schedule_id), "reason": "target_command is no longer allowed by COMMAND_WHITELIST",
            "at": at}))
    for o in result.outcomes:
        body = {
            "execution_id": str(o.execution_id), "schedule_id": str(o.schedule_id), "attempt": o.attempt,
            "scheduled_for": o.scheduled_for.isoformat(), "at": at,
        }
        events.append((EXECUTION_EVENT_PREFIX + "started", {**body, "status": "running"}))
        kind = {"retrying": "failed", "cancelled": "skipped"}.get(o.status, o.status)
        events.append((EXECUTION_EVENT_PREFIX + kind, {**body, "status": o.status, "reason": o.reason, "error": o.error}))
    await res.events.emit_many(events)


def _send_retry(execution_id: uuid.UUID, delay_ms: int) -> None:
    message = retry_execution.message_with_options(args=(str(execution_id),)).copy(message_id=str(execution_id))
    retry_execution.broker.enqueue(message, delay=delay_ms)


async def _run(execution_ids: list[str]) -> FireResult:
    res = await resources()
    ids = [uuid.UUID(i) for i in execution_ids]
    result = await res.firing.fire(ids, utc_now, random.random())
    _observe(result)
    await _emit_events(res, result)
    return result


@dramatiq.actor(queue_name=FIRE_QUEUE, retry_when=_only_explicit_retries, time_limit=TIME_LIMIT_MS)
async def fire_batch(execution_ids: list[str]) -> None:
    """Fire a batch handed over by the ticker; runs handed over ahead of their instant (DISPATCH_LEAD_MS)
    are claimed now and published at their instant."""
    result = await _run(execution_ids)
    for outcome in result.retries:
        # If this enqueue is lost, the row stays `retrying` and the ticker's sweep re-enqueues it.
        await asyncio.to_thread(_send_retry, outcome.execution_id, outcome.retry_in_ms or 0)


@dramatiq.actor(queue_name=FIRE_QUEUE, retry_when=_only_explicit_retries, time_limit=TIME_LIMIT_MS)
async def retry_execution(execution_id: str) -> None:
    result = await _run([execution_id])
    if result.retries:
        raise Retry(delay=result.retries[0].retry_in_ms)
