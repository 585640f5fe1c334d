"""REST compatibility routes for execution history and statistics."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Executions, Now, Reader, Reporter, Retrier, Schedules, reject_nul_query
from api.problems import PROBLEM_RESPONSES
from services.schemas import CompletionReport, ExecutionFilter, ExecutionOut, Instant, Page, StatsOut

router = APIRouter(
    prefix="/api/v1", tags=["executions"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reject_nul_query)]
)

PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]
StatusList = Annotated[str | None, Query(max_length=200, description="one status or a comma-separated list")]


@router.get("/executions", response_model=Page[ExecutionOut], summary="List executions (newest slot first)")
async def list_executions(
    service: Executions,
    actor: Reader,
    page: PageNumber = 1,
    limit: PageSize = 20,
    schedule_id: uuid.UUID | None = None,
    status: StatusList = None,
    since: Annotated[Instant | None, Query(description="scheduled_for >= since")] = None,
    until: Annotated[Instant | None, Query(description="scheduled_for < until")] = None,
    dead_lettered: Annotated[
        bool | None, Query(description="true: only the failed runs sent to their dead letters; false: the others")
    ] = None,
) -> Page[ExecutionOut]:
    filters = ExecutionFilter(
        schedule_id=schedule_id, status=status, since=since, until=until, dead_lettered=dead_lettered
    )
    return await service.list(filters, actor, page, limit)


@router.get("/executions/running", response_model=list[ExecutionOut], summary="Executions in progress")
async def running_executions(service: Executions, actor: Reader) -> list[ExecutionOut]:
    return await service.running(actor)


@router.get("/executions/stats/{schedule_id}", response_model=StatsOut, summary="Execution statistics of a schedule")
async def execution_stats(
    schedule_id: uuid.UUID, service: Executions, actor: Reader, since: Annotated[Instant | None, Query()] = None
) -> StatsOut:
    return await service.stats(schedule_id, actor, since)


@router.get("/executions/{execution_id}", response_model=ExecutionOut, summary="Get an execution")
async def get_execution(execution_id: uuid.UUID, service: Executions, actor: Reader) -> ExecutionOut:
    return await service.get(execution_id, actor)


@router.post(
    "/executions/{execution_id}/retry",
    response_model=ExecutionOut,
    summary="Retry a failed execution now",
    description=(
        "One more attempt of a failed run, with the same id, slot and payload; it is handed over at once. "
        "409 when the run is not failed or its schedule is paused or disabled."
    ),
)
async def retry_execution(execution_id: uuid.UUID, schedules: Schedules, actor: Retrier, now: Now) -> ExecutionOut:
    return await schedules.retry_execution(execution_id, actor, now)


@router.post(
    "/executions/{execution_id}/complete",
    response_model=ExecutionOut,
    summary="Report the completion of an execution",
    description=(
        "The target reports that the run it was sent ended (schedules with `completion: report`): `succeeded`, "
        "or `failed` (retried with backoff while retries are left). The same report twice is one completion. "
        "409 when the run does not await a report (a report after its completion timeout, for an attempt that "
        "is over, or of a schedule with `completion: none`)."
    ),
)
async def complete_execution(
    execution_id: uuid.UUID, report: CompletionReport, schedules: Schedules, actor: Reporter, now: Now
) -> ExecutionOut:
    return await schedules.complete_execution(execution_id, report, actor, now)


@router.get(
    "/schedules/{schedule_id}/executions", response_model=Page[ExecutionOut], summary="Executions of a schedule"
)
async def schedule_executions(
    schedule_id: uuid.UUID,
    service: Executions,
    actor: Reader,
    page: PageNumber = 1,
    limit: PageSize = 20,
    status: StatusList = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> Page[ExecutionOut]:
    filters = ExecutionFilter(schedule_id=schedule_id, status=status, since=since, until=until)
    return await service.list(filters, actor, page, limit)
