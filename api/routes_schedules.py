"""REST compatibility routes for schedules, at the original service's `/api/v1/schedules` paths."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response

from api.deps import (
    Creator,
    Deleter,
    Now,
    Pauser,
    Performer,
    Reader,
    Resumer,
    Schedules,
    Triggerer,
    Updater,
    reject_nul_query,
)
from api.problems import PROBLEM_RESPONSES
from core.rules import ScheduleType
from services.schemas import (
    BackfillOut,
    BackfillPlanOut,
    BackfillRequest,
    BulkCreateOut,
    BulkCreateRequest,
    BulkOperationOut,
    BulkOperationRequest,
    EditPreviewOut,
    Page,
    PauseRequest,
    PreviewOut,
    PreviewRequest,
    ReasonRequest,
    ScheduleCreate,
    ScheduleFilter,
    ScheduleOut,
    ScheduleStatus,
    ScheduleUpdate,
    TriggerOut,
    TriggerRequest,
)

router = APIRouter(
    prefix="/api/v1/schedules",
    tags=["schedules"],
    responses=PROBLEM_RESPONSES,
    dependencies=[Depends(reject_nul_query)],
)

PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=100, description="items per page")]
Reason = Annotated[str | None, Query(max_length=1000, description="why (kept in the audit trail)")]


@router.post("", status_code=201, response_model=ScheduleOut, summary="Create a schedule")
async def create_schedule(body: ScheduleCreate, service: Schedules, actor: Creator, now: Now) -> ScheduleOut:
    return await service.create(body, actor, now)


@router.get("", response_model=Page[ScheduleOut], summary="List schedules (newest first)")
async def list_schedules(
    service: Schedules,
    actor: Reader,
    page: PageNumber = 1,
    limit: PageSize = 20,
    status: ScheduleStatus | None = None,
    schedule_type: ScheduleType | None = None,
    tags: Annotated[list[str] | None, Query(description="repeat or comma-separate; all must match")] = None,
    tag: Annotated[list[str] | None, Query(description="alias of tags")] = None,
    created_by: Annotated[str | None, Query(max_length=255)] = None,
    creator: Annotated[str | None, Query(max_length=255, description="alias of created_by")] = None,
    search: Annotated[str | None, Query(max_length=255, description="case-insensitive part of the name")] = None,
    is_active: bool | None = None,
) -> Page[ScheduleOut]:
    wanted_tags = [t.strip() for raw in (tags or []) + (tag or []) for t in raw.split(",") if t.strip()]
    filters = ScheduleFilter(
        status=status,
        schedule_type=schedule_type,
        tags=wanted_tags,
        created_by=created_by or creator,
        search=search,
        is_active=is_active,
    )
    return await service.list(filters, actor, page, limit)


@router.post("/preview", response_model=PreviewOut, summary="Next fire times of an unsaved schedule")
async def preview_schedule(body: PreviewRequest, service: Schedules, actor: Reader, now: Now) -> PreviewOut:
    return await service.preview(body, now)


@router.post("/bulk/create", status_code=201, response_model=BulkCreateOut, summary="Create many (all or nothing)")
async def bulk_create(body: BulkCreateRequest, service: Schedules, actor: Creator, now: Now) -> BulkCreateOut:
    return await service.bulk_create(body.schedules, actor, now)


@router.post("/bulk/operation", response_model=BulkOperationOut, summary="Pause, resume or delete many")
async def bulk_operation(
    body: BulkOperationRequest, service: Schedules, actor: Performer, now: Now
) -> BulkOperationOut:
    return await service.bulk_operation(body.schedule_ids, body.operation, actor, now, body.reason)


@router.get("/{schedule_id}", response_model=ScheduleOut, summary="Get a schedule")
async def get_schedule(schedule_id: uuid.UUID, service: Schedules, actor: Reader) -> ScheduleOut:
    return await service.get(schedule_id, actor)


@router.put(
    "/{schedule_id}",
    response_model=ScheduleOut | EditPreviewOut,
    summary="Update a schedule (partial; optional version)",
    description="With `dry_run=true` nothing is saved: the answer is the schedule as it would be, its next "
    "fire times before and after the edit, the late slots the edit would record and the runs it keeps.",
)
async def update_schedule(
    schedule_id: uuid.UUID,
    body: ScheduleUpdate,
    service: Schedules,
    actor: Updater,
    now: Now,
    dry_run: Annotated[bool, Query(description="answer what the edit would do; save nothing")] = False,
) -> ScheduleOut | EditPreviewOut:
    if dry_run:
        return await service.preview_update(schedule_id, body, actor, now)
    return await service.update(schedule_id, body, actor, now)


@router.delete("/{schedule_id}", status_code=204, response_class=Response, summary="Delete a schedule")
async def delete_schedule(
    schedule_id: uuid.UUID, service: Schedules, actor: Deleter, now: Now, reason: Reason = None
) -> Response:
    await service.delete(schedule_id, actor, now, reason)
    return Response(status_code=204)


@router.post(
    "/{schedule_id}/pause",
    response_model=ScheduleOut,
    summary="Pause a schedule",
    description="With `until` in the body (a snooze), the schedule resumes by itself at that instant.",
)
async def pause_schedule(
    schedule_id: uuid.UUID,
    service: Schedules,
    actor: Pauser,
    now: Now,
    reason: Reason = None,
    body: Annotated[PauseRequest | None, Body()] = None,
) -> ScheduleOut:
    until = body.until if body else None
    return await service.pause(schedule_id, actor, now, reason or (body.reason if body else None), until)


@router.post("/{schedule_id}/resume", response_model=ScheduleOut, summary="Resume a paused schedule")
async def resume_schedule(
    schedule_id: uuid.UUID,
    service: Schedules,
    actor: Resumer,
    now: Now,
    reason: Reason = None,
    body: Annotated[ReasonRequest | None, Body()] = None,
) -> ScheduleOut:
    return await service.resume(schedule_id, actor, now, reason or (body.reason if body else None))


@router.post("/{schedule_id}/trigger", response_model=TriggerOut, summary="Run a schedule now (manual execution)")
async def trigger_schedule(
    schedule_id: uuid.UUID,
    service: Schedules,
    actor: Triggerer,
    now: Now,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> TriggerOut:
    return await service.trigger(schedule_id, actor, now, body.override_payload if body else None)


@router.post(
    "/{schedule_id}/backfill",
    response_model=BackfillPlanOut,
    summary="Record and fire the slots of a past range that were never recorded",
    description="With `dry_run` nothing is recorded: the answer counts the slots and those already recorded. "
    "Otherwise the missing slots are recorded (`trigger_type: backfill`) and handed over at most "
    "`max_per_second` a second, behind on-time runs.",
)
async def backfill_schedule(
    schedule_id: uuid.UUID, body: BackfillRequest, service: Schedules, actor: Triggerer, now: Now
) -> BackfillPlanOut:
    return await service.backfill(schedule_id, body, actor, now)


@router.get("/{schedule_id}/backfills", response_model=list[BackfillOut], summary="A schedule's backfills")
async def list_backfills(schedule_id: uuid.UUID, service: Schedules, actor: Reader) -> list[BackfillOut]:
    return await service.backfills(schedule_id, actor)


@router.get("/{schedule_id}/backfills/{backfill_id}", response_model=BackfillOut, summary="A backfill's progress")
async def get_backfill(
    schedule_id: uuid.UUID, backfill_id: uuid.UUID, service: Schedules, actor: Reader
) -> BackfillOut:
    return await service.get_backfill(schedule_id, backfill_id, actor)


@router.delete(
    "/{schedule_id}/backfills/{backfill_id}",
    response_model=BackfillOut,
    summary="Cancel a backfill (its runs not handed over yet are cancelled)",
)
async def cancel_backfill(
    schedule_id: uuid.UUID, backfill_id: uuid.UUID, service: Schedules, actor: Triggerer, now: Now
) -> BackfillOut:
    return await service.cancel_backfill(schedule_id, backfill_id, actor, now)


@router.get(
    "/{schedule_id}/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "an iCalendar document"}},
    summary="The schedule's next fire times as an .ics calendar (excluded slots left out)",
)
async def schedule_calendar(
    schedule_id: uuid.UUID,
    service: Schedules,
    actor: Reader,
    now: Now,
    count: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    body = await service.calendar_ics(schedule_id, actor, now, count)
    return Response(content=body, media_type="text/calendar")
