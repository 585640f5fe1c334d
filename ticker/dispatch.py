"""Hand execution ids to the Dramatiq queue in batches, highest priority first."""

from __future__ import annotations

import asyncio
import logging

from dramatiq import Actor

from core.settings import Settings
from services.ticking import Dispatch
from ticker.tick import Enqueue

log = logging.getLogger("ticker.dispatch")


def queue_enqueuer(settings: Settings, fresh: Actor | None = None, overdue: Actor | None = None) -> Enqueue:
    """An Enqueue that sends `fire_batch` messages of DISPATCH_BATCH_SIZE ids each (`fire_overdue` for
    the runs the sweep found lost or reaped, so they go ahead of fresh slots).

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
        failed: list[Dispatch] = []
        for actor, lane in ((overdue, [d for d in dispatch if d.overdue]),
                            (fresh, [d for d in dispatch if not d.overdue])):
            for start in range(0, len(lane), size):
                chunk = lane[start : start + size]
                try:
                    actor.send([str(d.execution_id) for d in chunk])
                except Exception as error:
                    log.warning("enqueue failed", extra={"action": "queue.enqueue_failed", "error": str(error)})
                    failed.extend(chunk)
        return failed

    async def enqueue(dispatch: list[Dispatch]) -> list[Dispatch]:
        # redis-py's sync client would block the loop (and LISTEN) while it sends.
        return await asyncio.to_thread(send_all, dispatch)

    return enqueue
