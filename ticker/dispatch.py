"""Hand execution ids to the Dramatiq queue in batches, highest priority first."""

from __future__ import annotations

import asyncio
import logging

from dramatiq import Broker

from core.settings import Settings
from services.ticking import Dispatch
from ticker.tick import Enqueue

log = logging.getLogger("ticker.dispatch")


def queue_enqueuer(broker: Broker, settings: Settings) -> Enqueue:
    """An Enqueue that sends `fire_batch` messages of DISPATCH_BATCH_SIZE ids each.

    The dispatches arrive sorted by priority (highest first), then due instant, and the queue is
    FIFO, so under a backlog higher-priority runs are published first, and a message covers a short
    span of instants. (The worker reads each run's instant from its row when it claims it.)
    """
    from actors.fire import fire_batch

    size = settings.DISPATCH_BATCH_SIZE

    def send_all(dispatch: list[Dispatch]) -> list[Dispatch]:
        failed: list[Dispatch] = []
        for start in range(0, len(dispatch), size):
            chunk = dispatch[start : start + size]
            try:
                fire_batch.send([str(d.execution_id) for d in chunk])
            except Exception as error:
                log.warning("enqueue failed", extra={"action": "queue.enqueue_failed", "error": str(error)})
                failed.extend(chunk)
        return failed

    async def enqueue(dispatch: list[Dispatch]) -> list[Dispatch]:
        # redis-py's sync client would block the loop (and LISTEN) while it sends.
        return await asyncio.to_thread(send_all, dispatch)

    return enqueue
