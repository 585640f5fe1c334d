"""How a worker hands runs back to the queue after a batch: retries on their backoff, NATS waiters.

A run to retry is past its instant, so it goes to the overdue lane (`fire_overdue`), ahead of a
catch-up's backlog of fresh slots. Runs are grouped by their backoff rounded UP to the whole second,
and a group's message is delayed by that rounded value: every run waits at least its own backoff (at
most a second more), and a batch that failed together retries together, in one claim.

Runs that failed because NATS was unreachable wait in this process's `WaitingRoom` until the worker's
connection is back. If a message is lost, or the worker dies with runs waiting, the rows stay
`retrying` and the ticker's sweep hands them over (services.outbox).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import dramatiq

from actors.waiting_room import WaitingRoom
from core.backoff import whole_seconds_ms
from services.firing import FireResult
from services.runs import Outcome

OVERDUE_ACTOR = "fire_overdue"


def send_in_batches(execution_ids: list[str], batch_size: int, delay_ms: int = 0, actor: str = OVERDUE_ACTOR) -> None:
    """Queue runs as messages of `actor` of up to `batch_size` ids, delayed by `delay_ms` (0: at once,
    straight onto the queue: Dramatiq sends even a 0 ms delay through its delay queue, which workers
    prefetch and hold)."""
    target = dramatiq.get_broker().get_actor(actor)
    for start in range(0, len(execution_ids), batch_size):
        target.send_with_options(args=(execution_ids[start : start + batch_size],), delay=delay_ms or None)


def send_retries(outcomes: Iterable[Outcome], batch_size: int, actor: str = OVERDUE_ACTOR) -> None:
    """Queue the runs to retry as delayed messages of up to `batch_size` ids, grouped by whole second."""
    groups: dict[int, list[str]] = {}
    for outcome in outcomes:
        groups.setdefault(whole_seconds_ms(outcome.retry_in_ms or 0), []).append(str(outcome.execution_id))
    for delay_ms, ids in groups.items():
        send_in_batches(ids, batch_size, delay_ms, actor)


class HandOff:
    """One per worker process: sends a batch's retries and keeps its NATS waiters."""

    def __init__(self, nats_is_up: Callable[[], Awaitable[bool]], batch_size: int) -> None:
        self.batch_size = batch_size
        self.waiting_room = WaitingRoom(nats_is_up, lambda ids: send_in_batches(ids, batch_size))

    def retries_of(self, result: FireResult) -> None:
        """Queue `result`'s retries (blocking Redis calls: run it off the event loop) ."""
        send_retries(result.retries, self.batch_size)

    def park_nats_waiters(self, result: FireResult) -> None:
        self.waiting_room.park(str(o.execution_id) for o in result.waiting_for_nats)
