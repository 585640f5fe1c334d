"""REST route for the audit trail (read only: no route changes or deletes an entry)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.deps import Reader, reject_nul_query
from api.problems import PROBLEM_RESPONSES
from services.audit import AuditEntryOut, AuditFilter, AuditService
from services.schemas import Instant, Page

router = APIRouter(
    prefix="/api/v1", tags=["audit"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reject_nul_query)]
)


def audit_service(request: Request) -> AuditService:
    return request.app.state.audit


@router.get("/audit", response_model=Page[AuditEntryOut], summary="Audit trail, newest first")
async def list_audit(
    service: Annotated[AuditService, Depends(audit_service)],
    principal: Reader,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    schedule_id: uuid.UUID | None = None,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> Page[AuditEntryOut]:
    filters = AuditFilter(schedule_id=schedule_id, actor=actor, action=action, since=since, until=until)
    return await service.list(filters, principal, page, limit)
