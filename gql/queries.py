"""GraphQL queries. Each resolver calls one service method; errors are translated by gql.errors."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from pydantic import ValidationError as PydanticValidationError

from core.errors import DomainError, NotFound, ValidationFailed
from gql.connections import AuditConnection, ExecutionConnection, ScheduleConnection, build, execution_connection
from gql.enums import ExecutionStatus
from gql.errors import query_error
from gql.inputs import AuditFilterInput, ScheduleFilterInput, ScheduleRuleInput, to_body
from gql.types import AuditEntry, Backfill, Calendar, Execution, ExecutionStats, FireTime, Schedule
from services.audit import AuditFilter
from services.schedules import validation_errors_of
from services.schemas import PreviewRequest, ScheduleFilter


def _instants(**values: datetime | None) -> None:
    """Datetime arguments that reach the database directly get the inputs' year bounds (services.schemas.Instant)."""
    for name, value in values.items():
        if value is not None and not 2 <= value.year <= 9998:
            raise query_error(ValidationFailed.single(name, "must be between the years 0002 and 9998"))


def _validated(model, body: dict):
    try:
        return model.model_validate(body)
    except PydanticValidationError as error:
        raise query_error(ValidationFailed(validation_errors_of(error))) from None


@strawberry.type
class Query:
    @strawberry.field(description="One schedule, or null when it does not exist.")
    async def schedule(self, info: strawberry.Info, id: uuid.UUID) -> Schedule | None:
        try:
            return Schedule.from_out(await info.context.schedules.get(id, info.context.actor))
        except NotFound:
            return None

    @strawberry.field(description="Schedules, newest first, as a cursor connection (first ≤ 100).")
    async def schedules(
        self,
        info: strawberry.Info,
        filter: ScheduleFilterInput | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> ScheduleConnection:
        filters = _validated(ScheduleFilter, to_body(filter) if filter else {})
        try:
            page = await info.context.schedules.connection(filters, info.context.actor, first, after)
        except DomainError as error:
            raise query_error(error) from None
        return build(ScheduleConnection, Schedule, page)

    @strawberry.field(description="One execution, or null.")
    async def execution(self, info: strawberry.Info, id: uuid.UUID) -> Execution | None:
        try:
            return Execution.from_out(await info.context.executions.get(id, info.context.actor))
        except NotFound:
            return None

    @strawberry.field(
        description="Executions, newest slot first (filter by schedule, status, slot time range, dead letters)."
    )
    async def executions(
        self,
        info: strawberry.Info,
        schedule_id: uuid.UUID | None = None,
        status: list[ExecutionStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        first: int = 20,
        after: str | None = None,
        dead_lettered: bool | None = None,
    ) -> ExecutionConnection:
        _instants(since=since, until=until)
        return await execution_connection(info, first, after, schedule_id, status, since, until, dead_lettered)

    @strawberry.field(description="Executions being published or waiting for a retry.")
    async def running_executions(self, info: strawberry.Info) -> list[Execution]:
        return [Execution.from_out(e) for e in await info.context.executions.running(info.context.actor)]

    @strawberry.field(description="Every calendar, by name.")
    async def calendars(self, info: strawberry.Info) -> list[Calendar]:
        return [Calendar.from_out(c) for c in await info.context.calendars.list()]

    @strawberry.field(description="One calendar by name (null when there is none).")
    async def calendar(self, info: strawberry.Info, name: str) -> Calendar | None:
        try:
            return Calendar.from_out(await info.context.calendars.get(name))
        except NotFound:
            return None

    @strawberry.field(description="A schedule's backfills, newest first, with their progress.")
    async def backfills(self, info: strawberry.Info, schedule_id: uuid.UUID) -> list[Backfill]:
        try:
            found = await info.context.schedules.backfills(schedule_id, info.context.actor)
        except DomainError as error:
            raise query_error(error) from None
        return [Backfill.from_out(b) for b in found]

    @strawberry.field(description="Statistics of one schedule's executions.")
    async def execution_stats(
        self, info: strawberry.Info, schedule_id: uuid.UUID, since: datetime | None = None
    ) -> ExecutionStats:
        _instants(since=since)
        try:
            return ExecutionStats.from_out(await info.context.executions.stats(schedule_id, info.context.actor, since))
        except DomainError as error:
            raise query_error(error) from None

    @strawberry.field(
        description="Fire times of an unsaved schedule (count ≤ 100) at or after `after` (default now; "
        "the past allowed) and up to `until`; `hashKey` (a schedule's id) resolves H fields. Nothing is saved."
    )
    async def preview_schedule(
        self,
        info: strawberry.Info,
        input: ScheduleRuleInput,
        count: int = 10,
        after: datetime | None = None,
        until: datetime | None = None,
        hash_key: str | None = None,
        exclude_calendars: list[str] | None = None,
    ) -> list[FireTime]:
        _instants(after=after, until=until)
        body = {**to_body(input), "count": count, "after": after, "until": until, "hash_key": hash_key}
        body["exclude_calendars"] = exclude_calendars or []
        request = _validated(PreviewRequest, body)
        try:
            out = await info.context.schedules.preview(request, info.context.now)
        except DomainError as error:
            raise query_error(error) from None
        return [FireTime.from_out(f) for f in out.fire_times]

    @strawberry.field(description="The audit trail, newest first.")
    async def audit_log(
        self, info: strawberry.Info, filter: AuditFilterInput | None = None, first: int = 20, after: str | None = None
    ) -> AuditConnection:
        filters = _validated(AuditFilter, to_body(filter) if filter else {})
        try:
            page = await info.context.audit.connection(filters, info.context.actor, first, after)
        except DomainError as error:
            raise query_error(error) from None
        return build(AuditConnection, AuditEntry, page)
