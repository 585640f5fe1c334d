"""History retention: delete finished executions older than EXECUTION_HISTORY_RETENTION_DAYS.

Idempotent and safe to run from several processes at once (each deletes what is still there).
Runs still in progress are never touched; the audit trail is never deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stores import executions as store


async def purge_old_executions(engine: AsyncEngine, now: datetime, retention_days: int, batch: int = 5000) -> int:
    """Delete in batches (short transactions); returns how many rows went."""
    cutoff = now - timedelta(days=retention_days)
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted = await store.purge(conn, cutoff, batch)
        total += deleted
        if deleted < batch:
            return total
