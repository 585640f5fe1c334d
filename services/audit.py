"""Reads of the append-only audit trail (its entries are written by services.stores.schedules.audit)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models import AuditEntry
from services.access import audit_scope
from services.context import Actor
from services.paging import KeysetPage, keyset_rows, offset_rows
from services.schemas import Instant, Page, _Strict


class AuditFilter(_Strict):
    schedule_id: uuid.UUID | None = None
    actor: str | None = None
    action: str | None = None
    since: Instant | None = None
    until: Instant | None = None


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    schedule_id: uuid.UUID | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    correlation_id: str | None


def audit_conditions(filters: AuditFilter) -> list[Any]:
    conditions: list[Any] = []
    if filters.schedule_id is not None:
        conditions.append(AuditEntry.schedule_id == filters.schedule_id)
    if filters.actor is not None:
        conditions.append(AuditEntry.actor == filters.actor)
    if filters.action is not None:
        conditions.append(AuditEntry.action == filters.action)
    if filters.since is not None:
        conditions.append(AuditEntry.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEntry.at < filters.until)
    return conditions


class AuditService:
    """Reads of the append-only audit trail (nothing here, or anywhere, changes an entry)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def list(self, filters: AuditFilter, actor: Actor, page: int = 1, limit: int = 20) -> Page[AuditEntryOut]:
        conditions = audit_conditions(filters) + audit_scope(actor)
        async with self.sessions() as session:
            rows, total = await offset_rows(session, AuditEntry, conditions, (col(AuditEntry.id),), page, limit)
        return Page[AuditEntryOut].of([AuditEntryOut.model_validate(r.model_dump()) for r in rows], total, page, limit)

    async def connection(
        self, filters: AuditFilter, actor: Actor, first: int, after: str | None
    ) -> KeysetPage[AuditEntryOut]:
        async with self.sessions() as session:
            rows, cursors, total, has_next = await keyset_rows(
                session, AuditEntry, audit_conditions(filters) + audit_scope(actor), (col(AuditEntry.id),), first, after
            )
        return KeysetPage[AuditEntryOut](
            items=[AuditEntryOut.model_validate(r.model_dump()) for r in rows],
            cursors=cursors,
            total=total,
            has_next=has_next,
        )
