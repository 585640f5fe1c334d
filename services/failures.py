"""After a run finally fails (status `failed`, no retry left): its dead letter and the auto-pause.

Owns what the worker does once the failures of a batch are recorded:
- each failed run's dead letter (services.dead_letters) is published, and the run marked
  `dead_lettered_at` once NATS confirmed it. A worker killed between the record and the publish loses
  that dead letter (the run stays `failed` with `dead_lettered_at` NULL, which the executions API shows);
  a dead letter is never sent for a run whose failure was not recorded.
- the schedules of those runs with `pause_after_failures` N are paused when their last N ended runs
  (in slot order; `succeeded` or `failed`) all failed: a success in between resets the count.

Instants are UTC.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.publisher import CommandPublisher, Outgoing
from services.stores import executions as execution_store
from services.stores import schedules as schedule_store

log = logging.getLogger("services.failures")


async def recorded_failures(engine: AsyncEngine, ids: Sequence[uuid.UUID], claim: str | None) -> set[uuid.UUID]:
    """Which of `ids` are `failed` as `claim` recorded them (a run reaped meanwhile is not)."""
    async with engine.connect() as conn:
        return await execution_store.held_failures(conn, ids, claim)


async def send_dead_letters(
    engine: AsyncEngine, publisher: CommandPublisher, letters: Sequence[Outgoing], now: datetime, claim: str | None
) -> tuple[int, int]:
    """Publish the dead letters (services.dead_letters) of failed runs `claim` recorded; (published, not)."""
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
