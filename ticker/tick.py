"""One pass of the ticker at a given `now`: sweep the outbox, claim due schedules in batches, enqueue."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from core.states import ExecutionEvent, ExecutionStatus, Reason, ScheduleEvent
from models.db import make_session_factory
from runtime import metrics
from services.events import EXECUTION_EVENT_PREFIX, SCHEDULE_EVENT_PREFIX, EventSink
from services.failures import FinalFailures
from services.lifecycle import LifecycleService
from services.liveness import Census, WorkerRegistry
from services.locks import ScheduleLocks
from services.outbox import release_hand_over, running_claimers, sweep
from services.ticking import Dispatch, TickResult, tick

log = logging.getLogger("ticker")

# Enqueue a list of dispatches; returns the ones that could not be enqueued.
Enqueue = Callable[[list[Dispatch]], Awaitable[list[Dispatch]]]


@dataclass
class TickReport:
    claimed: int = 0
    fired: int = 0
    missed: int = 0
    completed: int = 0
    disabled: int = 0
    swept: int = 0
    reaped: int = 0
    rescued: int = 0
    consumers_released: int = 0
    snoozes_ended: int = 0
    timed_out: int = 0  # awaiting runs whose completion timeout passed (retrying or timed_out)
    enqueued: int = 0
    enqueue_failed: int = 0


async def run_tick(
    engine: AsyncEngine,
    now: datetime,
    settings: Settings,
    enqueue: Enqueue,
    events: EventSink,
    sweep_outbox: bool = True,
    workers: WorkerRegistry | None = None,
    locks: ScheduleLocks | None = None,
    failures: FinalFailures | None = None,
) -> TickReport:
    """Sweep the outbox and end the snoozes that are over (with `sweep_outbox`), then claim every schedule
    due at `now` (batch after batch), enqueueing as it goes.

    The sweep goes first because what it hands over is older than anything the pass records: runs
    whose hand-over was lost, overdue retries, runs reaped from a lost worker. After an outage the
    pass records thousands of missed slots at once; those older runs go ahead of them in the queue.

    With `workers`, the sweep also reaps the runs of workers whose heartbeat is gone, and `locks`
    frees the concurrency slots those runs held (without them: after LOCK_TIMEOUT_SECONDS only). A
    departed worker's Dramatiq consumer is marked dead so that its prefetched messages go back to the
    queue at once (by the one ticker that takes it out of the registry); when Redis lost its queues,
    every run handed over is handed over again (services.outbox, `rescue`). With `failures`, the runs
    the sweep ended failed or timed out (reaped, or no completion report in time) get their dead letters
    and the auto-pause of their schedules.
    """
    report = TickReport()
    if sweep_outbox:  # at least every SWEEP_EVERY_SECONDS: the sweep's cadence is precise enough for both
        failed = await _sweep_pass(engine, now, settings, enqueue, workers, locks, report)
        if failures is not None and failed:
            await _follow_up(failures, failed, now)
        await _end_snoozes(engine, now, settings, events, report)
    await _planning_pass(engine, now, settings, enqueue, events, report)
    return report


async def _sweep_pass(
    engine: AsyncEngine,
    now: datetime,
    settings: Settings,
    enqueue: Enqueue,
    workers: WorkerRegistry | None,
    locks: ScheduleLocks | None,
    report: TickReport,
) -> list[uuid.UUID]:
    """Release departed workers, reap their runs, end the completions that timed out, hand over what the
    queue lost; returns the runs it ended failed or timed out."""
    census = await workers.census() if workers is not None else Census()
    departed, released = [], 0
    if workers is not None and census.departed:
        departed = await workers.take(census.departed)
        released = await workers.release_consumers(census.departed[w] for w in departed)
    dead = await workers.dead_among(await running_claimers(engine)) if workers is not None else set()
    swept = await sweep(engine, now, settings, dead_workers=dead, rescue=census.queues_lost)
    if locks is not None and swept.freed_leases:
        try:
            await locks.release_held(swept.freed_leases)
        except Exception as error:  # their TTL frees them; meanwhile the runs defer on the busy slot
            log.warning(
                "could not free reaped leases", extra={"action": "ticker.lease_release_failed", "error": str(error)}
            )
    report.swept = len(swept.dispatch)
    report.reaped = swept.reaped_retrying + swept.reaped_failed
    metrics.REAPED.labels(ExecutionStatus.RETRYING.value).inc(swept.reaped_retrying)
    metrics.REAPED.labels(ExecutionStatus.FAILED.value).inc(swept.reaped_failed)
    if report.reaped:
        log.warning(
            "reaped runs without an outcome",
            extra={"action": "ticker.reaped", "count": report.reaped, "dead_workers": sorted(dead)},
        )
    report.consumers_released = released
    if departed or census.queues_lost:
        if census.queues_lost:  # what the rescue handed over (with the sweep's usual stale runs)
            report.rescued = swept.requeued_pending + swept.requeued_retries + swept.rescued_upcoming
        log.warning(
            "queue messages a departed worker held were released, or runs a lost queue held handed over",
            extra={
                "action": "ticker.rescued",
                "departed": departed,
                "consumers_released": released,
                "queues_lost": census.queues_lost,
                "count": report.rescued,
            },
        )
    metrics.COMPLETION_TIMEOUTS.labels(ExecutionStatus.RETRYING.value).inc(swept.timed_out_retrying)
    metrics.COMPLETION_TIMEOUTS.labels(ExecutionStatus.TIMED_OUT.value).inc(swept.timed_out)
    report.timed_out = swept.timed_out + swept.timed_out_retrying
    await _hand_over(engine, swept.dispatch, enqueue, report, "sweep")
    return swept.failed_ids


async def _follow_up(failures: FinalFailures, failed: list[uuid.UUID], now: datetime) -> None:
    """Dead letters and auto-pause of the runs the sweep ended; a failure is logged, never raised."""
    try:
        done = await failures.follow_up(failed, now)
    except Exception as error:
        log.warning("dead letters not sent", extra={"action": "ticker.follow_up_failed", "error": str(error)[:200]})
        return
    metrics.DEAD_LETTERS.labels("published").inc(done.dead_letters[0])
    metrics.DEAD_LETTERS.labels("unpublished").inc(done.dead_letters[1])
    metrics.AUTO_PAUSES.inc(len(done.paused))


async def _end_snoozes(
    engine: AsyncEngine, now: datetime, settings: Settings, events: EventSink, report: TickReport
) -> None:
    """Resume the schedules whose snooze ended; before planning, so they are planned in this same pass.
    A failure here is logged and does not hold up the planning."""
    try:
        resumed = await LifecycleService(make_session_factory(engine), settings, events).end_snoozes(now)
    except Exception as error:
        log.warning("snoozes not ended", extra={"action": "ticker.snooze_failed", "error": str(error)[:200]})
        return
    report.snoozes_ended = len(resumed)


async def _planning_pass(
    engine: AsyncEngine, now: datetime, settings: Settings, enqueue: Enqueue, events: EventSink, report: TickReport
) -> None:
    """Claim and plan due schedules batch after batch, handing each batch's runs over as it commits."""
    # The first batch of a pass is one queue message's worth, so the workers start on a burst after
    # one small transaction; later batches are full.
    limit = min(settings.TICKER_BATCH_SIZE, settings.DISPATCH_BATCH_SIZE)
    while True:
        started = time.perf_counter()
        result = await tick(engine, now, settings, limit)
        limit = settings.TICKER_BATCH_SIZE
        metrics.TICKER_BATCH_SIZE.observe(result.claimed)
        metrics.TICKER_BATCH_DURATION.observe(time.perf_counter() - started)
        report.claimed += result.claimed
        report.fired += result.fired
        report.missed += result.missed + result.missed_unrecorded
        report.completed += result.completed
        report.disabled += len(result.disabled)
        if result.missed + result.missed_unrecorded:
            metrics.MISFIRES.labels(Reason.MISSED).inc(result.missed + result.missed_unrecorded)
        if result.excluded:
            metrics.MISFIRES.labels(Reason.CALENDAR).inc(result.excluded)
        await _hand_over(engine, result.dispatch, enqueue, report, "ticker")
        await _announce(events, result, now)
        if not result.batch_full:
            return


async def _announce(events: EventSink, result: TickResult, now: datetime) -> None:
    """The events of one planned batch: schedules disabled, slots missed."""
    for schedule_id, reason in result.disabled:
        log.warning(
            "schedule disabled",
            extra={"action": "schedule.disabled", "schedule_id": str(schedule_id), "reason": reason},
        )
        body = {"schedule_id": str(schedule_id), "reason": reason, "at": now}
        await events.emit(SCHEDULE_EVENT_PREFIX + ScheduleEvent.DISABLED, body)
    for missed in result.missed_events:
        body = {**missed, "status": ExecutionStatus.MISSED, "at": now}
        await events.emit(EXECUTION_EVENT_PREFIX + ExecutionEvent.MISSED, body)


async def _hand_over(
    engine: AsyncEngine, dispatch: list[Dispatch], enqueue: Enqueue, report: TickReport, source: str
) -> None:
    if not dispatch:
        return
    failed = await enqueue(dispatch)
    report.enqueued += len(dispatch) - len(failed)
    report.enqueue_failed += len(failed)
    metrics.ENQUEUED.labels(source).inc(len(dispatch) - len(failed))
    if failed:
        log.warning("enqueue failed", extra={"action": "ticker.enqueue_failed", "count": len(failed)})
        try:
            await release_hand_over(engine, [d.execution_id for d in failed])
        except Exception:  # the sweep will find them after REENQUEUE_AFTER_SECONDS anyway
            log.exception("could not release hand-over", extra={"action": "ticker.release_failed"})
