"""Hand execution ids to the Dramatiq queue in batches, highest priority first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from itertools import groupby

from dramatiq import Actor

from core.backoff import whole_seconds_ms
from core.settings import Settings
from services.ticking import Dispatch
from ticker.tick import Enqueue

log = logging.getLogger("ticker.dispatch")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _delay_ms(dispatch: Dispatch, now: datetime) -> int:
    """How long an overdue-lane message waits in the queue: until its run's next attempt (a retry
    re-sent after Redis lost its queues), rounded up to the second; 0 = now."""
    if dispatch.due is None:
        return 0
    return whole_seconds_ms((dispatch.due - now).total_seconds() * 1000)


def queue_enqueuer(
    settings: Settings,
    fresh: Actor | None = None,
    overdue: Actor | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> Enqueue:
    """An Enqueue that sends `fire_batch` messages of DISPATCH_BATCH_SIZE ids each (`fire_overdue` for
    the runs the sweep found lost or reaped, so they go ahead of fresh slots).

    A fresh run's `due` is only ever within DISPATCH_LEAD_MS: its message goes now and the worker holds
    the publish until the instant. An overdue run with a later `due` (a retry handed over again after
    Redis lost its queues, delayed messages included) is delayed in the queue until then.

    The dispatches arrive sorted by priority (highest first), then due instant, and the queue is
    FIFO, so under a backlog higher-priority runs are published first, and a message covers a short
    span of instants. (The worker reads each run's instant from its row when it claims it.)
    `fresh` and `overdue` default to those two actors.
    """
    if fresh is None or overdue is None:
        from actors.fire import fire_batch, fire_overdue

        fresh, overdue = fresh or fire_batch, overdue or fire_overdue
    size = settings.DISPATCH_BATCH_SIZE

    def send_all(dispatch: list[Dispatch]) -> list[Dispatch]:
        now = clock()
        failed: list[Dispatch] = []
        overdue_groups = groupby(
            sorted((d for d in dispatch if d.overdue), key=lambda d: _delay_ms(d, now)), key=lambda d: _delay_ms(d, now)
        )
        for actor, delay_ms, lane in [
            *((overdue, delay, list(group)) for delay, group in overdue_groups),
            (fresh, 0, [d for d in dispatch if not d.overdue]),
        ]:
            for start in range(0, len(lane), size):
                chunk = lane[start : start + size]
                try:
                    if delay_ms:
                        actor.send_with_options(args=([str(d.execution_id) for d in chunk],), delay=delay_ms)
                    else:
                        actor.send([str(d.execution_id) for d in chunk])
                except Exception as error:
                    log.warning("enqueue failed", extra={"action": "queue.enqueue_failed", "error": str(error)})
                    failed.extend(chunk)
        return failed

    async def enqueue(dispatch: list[Dispatch]) -> list[Dispatch]:
        # redis-py's sync client would block the loop (and LISTEN) while it sends.
        return await asyncio.to_thread(send_all, dispatch)

    return enqueue
