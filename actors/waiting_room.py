"""Runs that failed because NATS was unreachable wait in the worker until its connection is back.

Such a run is recorded `retrying` like any other (its attempt is given back: core.outcomes,
`RetryPolicy.on_outage`), but its retry is not a delayed message on a timer: an attempt during the
outage cannot succeed, and each would cost a claim, an outcome UPDATE and an attempt-log entry. The
worker keeps the ids and sends them, as overdue-lane batches, as soon as its NATS connection is up
again (checked every `poll_seconds`).

Nothing is lost if the worker dies first: the rows are `retrying` with an overdue next attempt, and the
ticker's sweep hands them over after REENQUEUE_AFTER_SECONDS as it does any lost retry message. The
same sweep bounds the wait while NATS stays down: its copy is claimed, fails and waits again, so an
outage costs each run at most one attempt per REENQUEUE_AFTER_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("actors.waiting_room")


class WaitingRoom:
    """Execution ids waiting for a dependency to come back, sent on by `send` when `is_up()` says so.

    Lives on the worker's event loop (Dramatiq's AsyncIO middleware): `park` starts one watcher task,
    which ends when the room is empty. `send` is blocking (a Dramatiq enqueue) and runs in a thread; when
    it fails (Redis unreachable) the ids stay and are sent at the next check.
    """

    def __init__(
        self, is_up: Callable[[], Awaitable[bool]], send: Callable[[list[str]], None], poll_seconds: float = 0.25
    ) -> None:
        self._is_up = is_up
        self._send = send
        self.poll_seconds = poll_seconds
        self._ids: dict[str, None] = {}  # a dict keeps the order they failed in and drops repeats
        self._watcher: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def park(self, execution_ids: Iterable[str]) -> None:
        self._ids.update(dict.fromkeys(execution_ids))
        if self._ids and (self._watcher is None or self._watcher.done()):
            log.warning("runs wait for NATS to come back", extra={"action": "worker.nats_wait", "runs": len(self._ids)})
            self._watcher = asyncio.get_running_loop().create_task(self._send_when_up())

    async def _send_when_up(self) -> None:
        while self._ids:
            await asyncio.sleep(self.poll_seconds)
            if not await self._is_up():
                continue
            ids = list(self._ids)
            try:
                await asyncio.to_thread(self._send, ids)
            except Exception as error:  # the queue is unreachable: keep them, try again at the next check
                log.warning(
                    "waiting runs not sent yet",
                    extra={"action": "worker.nats_wait_send_failed", "runs": len(ids), "error": str(error)[:200]},
                )
                continue
            for execution_id in ids:
                self._ids.pop(execution_id, None)
            log.warning("NATS is back: waiting runs sent", extra={"action": "worker.nats_back", "runs": len(ids)})
