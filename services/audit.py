"""Append-only audit entries, written in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models import AuditEntry
from services.context import Actor


def record_audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    now: datetime,
    schedule_id: uuid.UUID | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Add one audit entry to the session; it commits (or rolls back) with the change it describes."""
    entry = AuditEntry(
        at=now,
        actor=actor.name,
        action=action,
        schedule_id=schedule_id,
        before=before,
        after=after,
        reason=reason,
        correlation_id=actor.correlation_id,
    )
    session.add(entry)
    return entry
