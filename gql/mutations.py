"""GraphQL mutations. Expected failures come back as typed union members (assert on __typename)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar, Union

import strawberry
from pydantic import ValidationError as PydanticValidationError
from strawberry.scalars import JSON

from core.errors import DomainError, ValidationFailed
from gql.enums import BulkOperation
from gql.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    ValidationError,
    error_member,
)
from gql.inputs import (
    BackfillInput,
    CalendarInput,
    CompletionReportInput,
    CreateScheduleInput,
    UpdateScheduleInput,
    to_body,
)
from gql.types import Backfill, BackfillPlan, Calendar, Execution, Schedule, ScheduleEditPreview
from services.schedules import validation_errors_of
from services.schemas import BackfillRequest, CalendarIn, CompletionReport, ScheduleCreate, ScheduleUpdate, has_nul

T = TypeVar("T")
ERRORS = (ValidationError, NotFoundError, ConflictError, QuotaExceededError, ForbiddenError, RateLimitedError)


@strawberry.type
class DeleteScheduleSuccess:
    id: uuid.UUID


@strawberry.type
class TriggerScheduleSuccess:
    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    status: str


@strawberry.type
class BulkCreateSuccess:
    created: int
    schedule_ids: list[uuid.UUID]


@strawberry.type
class BulkItemError:
    code: str
    message: str


@strawberry.type
class BulkItemResult:
    schedule_id: str
    success: bool
    status: str | None
    error: BulkItemError | None


@strawberry.type
class BulkOperationSuccess:
    operation: str
    total: int
    succeeded: int
    failed: int
    results: list[BulkItemResult]


def result_union(name: str, *success: type):
    return Annotated[Union[*success, *ERRORS], strawberry.union(name)]


ScheduleResult = result_union("ScheduleResult", Schedule)
UpdateScheduleResult = result_union("UpdateScheduleResult", Schedule, ScheduleEditPreview)
DeleteScheduleResult = result_union("DeleteScheduleResult", DeleteScheduleSuccess)
TriggerScheduleResult = result_union("TriggerScheduleResult", TriggerScheduleSuccess)
BulkCreateResult = result_union("BulkCreateResult", BulkCreateSuccess)
BulkOperationResult = result_union("BulkOperationResult", BulkOperationSuccess)
ExecutionResult = result_union("ExecutionResult", Execution)
BackfillPlanResult = result_union("BackfillPlanResult", BackfillPlan)
BackfillResult = result_union("BackfillResult", Backfill)
CalendarResult = result_union("CalendarResult", Calendar)


@strawberry.type
class DeleteCalendarSuccess:
    name: str


DeleteCalendarResult = result_union("DeleteCalendarResult", DeleteCalendarSuccess)


def _calendar_body(input: CalendarInput) -> CalendarIn:
    body = to_body(input)
    body["ranges"] = [{"start": r.start, "end": r.end} for r in input.ranges or []]
    return CalendarIn.model_validate(body)


async def _backfill(call: Awaitable) -> Backfill:
    return Backfill.from_out(await call)


async def attempt(action: Callable[[], Awaitable[T]], reason: str | None = None) -> T:
    """Run a service call; a core error becomes its union member (the one translation point)."""
    try:
        if reason is not None and has_nul(reason):
            raise ValidationFailed.single("reason", "must not contain NUL (\\u0000) characters")
        return await action()
    except PydanticValidationError as error:
        return error_member(ValidationFailed(validation_errors_of(error)))
    except DomainError as error:
        return error_member(error)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_schedule(self, info: strawberry.Info, input: CreateScheduleInput) -> ScheduleResult:
        ctx = info.context

        async def run():
            body = ScheduleCreate.model_validate(to_body(input))
            return Schedule.from_out(await ctx.schedules.create(body, ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation(
        description="Partial update; give `version` for optimistic concurrency. With `dryRun` nothing is saved "
        "and the answer is a ScheduleEditPreview."
    )
    async def update_schedule(
        self, info: strawberry.Info, id: uuid.UUID, input: UpdateScheduleInput, dry_run: bool = False
    ) -> UpdateScheduleResult:
        ctx = info.context

        async def run():
            body = ScheduleUpdate.model_validate(to_body(input, keep_null=True))
            if dry_run:
                return ScheduleEditPreview.from_out(await ctx.schedules.preview_update(id, body, ctx.actor, ctx.now))
            return Schedule.from_out(await ctx.schedules.update(id, body, ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation
    async def delete_schedule(
        self, info: strawberry.Info, id: uuid.UUID, reason: str | None = None
    ) -> DeleteScheduleResult:
        ctx = info.context

        async def run():
            await ctx.schedules.delete(id, ctx.actor, ctx.now, reason)
            return DeleteScheduleSuccess(id=id)

        return await attempt(run, reason)

    @strawberry.mutation(description="Pause; with `until` (a snooze) the schedule resumes by itself at that instant.")
    async def pause_schedule(
        self, info: strawberry.Info, id: uuid.UUID, reason: str | None = None, until: datetime | None = None
    ) -> ScheduleResult:
        ctx = info.context
        return await attempt(lambda: _schedule(ctx.schedules.pause(id, ctx.actor, ctx.now, reason, until)), reason)

    @strawberry.mutation
    async def resume_schedule(self, info: strawberry.Info, id: uuid.UUID, reason: str | None = None) -> ScheduleResult:
        ctx = info.context
        return await attempt(lambda: _schedule(ctx.schedules.resume(id, ctx.actor, ctx.now, reason)), reason)

    @strawberry.mutation(description="Run now: records a manual execution that the pipeline publishes.")
    async def trigger_schedule(
        self, info: strawberry.Info, id: uuid.UUID, override_payload: JSON | None = None
    ) -> TriggerScheduleResult:
        ctx = info.context

        async def run():
            out = await ctx.schedules.trigger(id, ctx.actor, ctx.now, override_payload)
            return TriggerScheduleSuccess(execution_id=out.execution_id, schedule_id=out.schedule_id, status=out.status)

        return await attempt(run)

    @strawberry.mutation(
        description="Record and fire the slots of a past range that were never recorded, at most maxPerSecond a "
        "second behind on-time runs; with dryRun only count them."
    )
    async def backfill_schedule(self, info: strawberry.Info, id: uuid.UUID, input: BackfillInput) -> BackfillPlanResult:
        ctx = info.context

        async def run():
            request = BackfillRequest.model_validate(to_body(input))
            return BackfillPlan.from_out(await ctx.schedules.backfill(id, request, ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation(description="Cancel a backfill: its runs not handed over yet are cancelled.")
    async def cancel_backfill(self, info: strawberry.Info, schedule_id: uuid.UUID, id: uuid.UUID) -> BackfillResult:
        ctx = info.context
        return await attempt(lambda: _backfill(ctx.schedules.cancel_backfill(schedule_id, id, ctx.actor, ctx.now)))

    @strawberry.mutation(description="Create a calendar (shared by name; schedules list it in excludeCalendars).")
    async def create_calendar(self, info: strawberry.Info, input: CalendarInput) -> CalendarResult:
        ctx = info.context

        async def run():
            return Calendar.from_out(await ctx.calendars.create(_calendar_body(input), ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation(
        description="Replace a calendar's entries; the schedules using it follow from their next slot."
    )
    async def update_calendar(self, info: strawberry.Info, name: str, input: CalendarInput) -> CalendarResult:
        ctx = info.context

        async def run():
            return Calendar.from_out(await ctx.calendars.update(name, _calendar_body(input), ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation(description="Delete a calendar no live schedule lists (else a ConflictError naming them).")
    async def delete_calendar(self, info: strawberry.Info, name: str) -> DeleteCalendarResult:
        ctx = info.context

        async def run():
            await ctx.calendars.delete(name, ctx.actor, ctx.now)
            return DeleteCalendarSuccess(name=name)

        return await attempt(run)

    @strawberry.mutation(
        description="One more attempt of a failed run (same id, slot and payload), handed over at once."
    )
    async def retry_execution(self, info: strawberry.Info, id: uuid.UUID) -> ExecutionResult:
        ctx = info.context

        async def run():
            return Execution.from_out(await ctx.schedules.retry_execution(id, ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation(
        description="A target's completion report for a run awaiting it; the same report twice is one completion."
    )
    async def complete_execution(
        self, info: strawberry.Info, id: uuid.UUID, report: CompletionReportInput
    ) -> ExecutionResult:
        ctx = info.context

        async def run():
            body = CompletionReport.model_validate(to_body(report))
            return Execution.from_out(await ctx.schedules.complete_execution(id, body, ctx.actor, ctx.now))

        return await attempt(run)

    @strawberry.mutation(description="All or nothing; invalid items are named by index (`schedules.3.cronExpression`).")
    async def bulk_create_schedules(self, info: strawberry.Info, inputs: list[CreateScheduleInput]) -> BulkCreateResult:
        ctx = info.context

        async def run():
            if not inputs:
                raise ValidationFailed.single("schedules", "must contain at least one schedule")
            out = await ctx.schedules.bulk_create([to_body(i) for i in inputs], ctx.actor, ctx.now)
            return BulkCreateSuccess(created=out.created, schedule_ids=out.schedule_ids)

        return await attempt(run)

    @strawberry.mutation(description="Pause, resume or delete many; each id succeeds or fails on its own.")
    async def bulk_schedule_operation(
        self, info: strawberry.Info, ids: list[str], operation: BulkOperation, reason: str | None = None
    ) -> BulkOperationResult:
        ctx = info.context

        async def run():
            if not ids:
                raise ValidationFailed.single("scheduleIds", "must contain at least one id")
            out = await ctx.schedules.bulk_operation(ids, operation, ctx.actor, ctx.now, reason)
            return BulkOperationSuccess(
                operation=out.operation,
                total=out.total,
                succeeded=out.succeeded,
                failed=out.failed,
                results=[
                    BulkItemResult(
                        schedule_id=r.schedule_id,
                        success=r.success,
                        status=r.status,
                        error=BulkItemError(**r.error) if r.error else None,
                    )
                    for r in out.results
                ],
            )

        return await attempt(run, reason)


async def _schedule(call: Awaitable) -> Schedule:
    return Schedule.from_out(await call)
