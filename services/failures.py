"""After a run finally fails (status `failed`, no retry left): its dead letter and the auto-pause.

Owns what the worker does once the failures of a batch are recorded:
- each failed run's dead letter (services.dead_letters) is published, and the run marked
  `dead_lettered_at` once NATS confirmed it. A worker killed between the record and the publish loses
  that dead letter (the run stays `failed` with `dead_lettered_at` NULL, which the executions API shows);
  a dead letter is never sent for a run whose failure was not recorded.
- the schedules of those runs with `pause_after_failures` N are paused when their last N ended runs
  (in slot order; `succeeded` or `failed`) all failed: a success in between resets the count.

`FinalFailures` does the same for the runs that end failed outside a worker's batch: a completion
report of failure (any door), a completion timeout and a run reaped with no attempt left (the ticker).
It sends the dead letters of those not sent yet; a repeat (two tickers, a retried call) publishes the
same `Nats-Msg-Id`, which a JetStream stream keeps once.

Instants are UTC.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from services.dead_letters import dead_letter, dead_letter_subject_of
from services.publisher import CommandPublisher, Outgoing
from services.runs import claimed_of, render_command
from services.stores import executions as execution_store
from services.stores import schedules as schedule_store

log = logging.getLogger("services.failures")


async def recorded_failures(engine: AsyncEngine, ids: Sequence[uuid.UUID], claim: str | None) -> set[uuid.UUID]:
    """Which of `ids` are `failed` as `claim` recorded them (a run reaped meanwhile is not)."""
    async with engine.connect() as conn:
        return await execution_store.held_failures(conn, ids, claim)


async def send_dead_letters(
    engine: AsyncEngine,
    publisher: CommandPublisher,
    letters: Sequence[Outgoing],
    now: datetime,
    claim: str | None,
    any_claim: bool = False,
) -> tuple[int, int]:
    """Publish the dead letters (services.dead_letters) of failed runs `claim` recorded (or, with
    `any_claim`, whoever recorded them); (published, not)."""
    deliveries = await publisher.deliver_many(list(letters))
    sent = [uuid.UUID(letter.execution_id) for letter, delivery in zip(letters, deliveries) if delivery.ok]
    for letter, delivery in zip(letters, deliveries):
        if not delivery.ok:
            log.warning(
                "dead letter not published",
                extra={
                    "action": "worker.dead_letter_failed",
                    "execution_id": letter.execution_id,
                    "subject": letter.subject,
                    "error": delivery.error,
                },
            )
    if sent:
        async with engine.begin() as conn:
            if any_claim:
                await execution_store.mark_lettered(conn, sent, now)
            else:
                await execution_store.mark_dead_lettered(conn, sent, now, claim)
    return len(sent), len(letters) - len(sent)


async def auto_pause(
    engine: AsyncEngine, schedule_ids: Sequence[uuid.UUID], now: datetime
) -> list[tuple[uuid.UUID, str]]:
    """Pause those of `schedule_ids` whose failures reached their `pause_after_failures`; (id, reason) each."""
    if not schedule_ids:
        return []
    async with engine.begin() as conn:
        return await schedule_store.auto_pause(conn, sorted(set(schedule_ids)), now)


class FinalFailures:
    """Dead letters and auto-pause for runs that ended failed or timed out outside a worker's batch."""

    def __init__(self, engine: AsyncEngine, publisher: CommandPublisher, settings: Settings) -> None:
        self.engine = engine
        self.publisher = publisher
        self.settings = settings

    async def follow_up(self, ids: Sequence[uuid.UUID], now: datetime) -> FollowedUp:
        """Send the dead letters not sent yet of those of `ids` that ended failed or timed out, then
        pause the schedules whose `pause_after_failures` they reached."""
        if not ids:
            return FollowedUp()
        async with self.engine.connect() as conn:
            rows = await execution_store.unlettered(conn, ids)
        if not rows:
            return FollowedUp()
        letters = [self._letter(row, now) for row in rows]
        sent = await send_dead_letters(self.engine, self.publisher, letters, now, None, any_claim=True)
        watched = [row.schedule_id for row in rows if row.pause_after_failures is not None]
        return FollowedUp(sent, await auto_pause(self.engine, watched, now))

    def _letter(self, row, now: datetime) -> Outgoing:
        run = claimed_of(row)
        subject = dead_letter_subject_of(run, self.settings.DEAD_LETTER_SUBJECT, self.settings.command_whitelist)
        return dead_letter(run, render_command(run), row.last_error, row.reason, subject, now)


@dataclass(frozen=True)
class FollowedUp:
    dead_letters: tuple[int, int] = (0, 0)  # (published, not)
    paused: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (schedule, reason)
