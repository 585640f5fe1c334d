"""Housekeeping actors, scheduled by periodiq (`periodiq actors housekeeping`) and run by the worker.

Only idempotent work belongs here: periodiq has no lock and no catch-up, so two schedulers may both
fire and a restart may skip a tick. User schedules never go through periodiq.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import dramatiq
from periodiq import PeriodiqMiddleware, cron

from actors import broker
from actors.resources import resources
from core.tuning import HOUSEKEEPING_CRON, HOUSEKEEPING_SKIP_DELAY_SECONDS, HOUSEKEEPING_TIME_LIMIT_MS
from services.retention import purge_old_executions

log = logging.getLogger("housekeeping")
HOUSEKEEPING_QUEUE = "scheduler-housekeeping"

broker.add_middleware(PeriodiqMiddleware(skip_delay=HOUSEKEEPING_SKIP_DELAY_SECONDS))


@dramatiq.actor(
    queue_name=HOUSEKEEPING_QUEUE,
    periodic=cron(HOUSEKEEPING_CRON),
    max_retries=0,
    time_limit=HOUSEKEEPING_TIME_LIMIT_MS,
)
async def purge_execution_history() -> None:
    """Hourly: drop finished executions older than EXECUTION_HISTORY_RETENTION_DAYS."""
    res = await resources()
    deleted = await purge_old_executions(
        res.engine, datetime.now(timezone.utc), res.settings.EXECUTION_HISTORY_RETENTION_DAYS
    )
    log.info("history purged", extra={"action": "housekeeping.purged", "purged": deleted})
