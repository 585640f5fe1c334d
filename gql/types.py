"""GraphQL object types, built from the service layer's output shapes (never from rows)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from core.rules import Rule, preview
from core.tuning import MAX_FIRE_TIMES
from gql.enums import (
    Catchup,
    Completion,
    DeliveryMode,
    DstGap,
    DstRepeat,
    ExecutionStatus,
    OverlapPolicy,
    ScheduleStatus,
    ScheduleType,
)
from services.audit import AuditEntryOut
from services.schemas import (
    BackfillOut,
    BackfillPlanOut,
    CalendarOut,
    EditPreviewOut,
    ExecutionOut,
    FireTimeOut,
    ScheduleOut,
    StatsOut,
)

if TYPE_CHECKING:
    from gql.context import Context


@strawberry.type
class FireTime:
    at: datetime
    local_time: str
    note: str | None
    excluded_by: str | None = strawberry.field(
        default=None, description="calendar:<name> when a calendar excludes this slot (previewSchedule)."
    )

    @classmethod
    def from_out(cls, out: FireTimeOut) -> FireTime:
        return cls(at=out.at, local_time=out.local_time, note=out.note, excluded_by=out.excluded_by)


@strawberry.type
class Percentiles:
    p50: float | None
    p95: float | None
    max: float | None


@strawberry.type
class StatusCount:
    status: ExecutionStatus
    count: int


@strawberry.type
class ExecutionStats:
    schedule_id: uuid.UUID
    since: datetime | None
    total: int
    by_status: list[StatusCount]
    success_rate: float | None
    duration_ms: Percentiles
    lag_ms: Percentiles
    last_outcome: str | None
    last_run_at: datetime | None
    next_run_at: datetime | None

    @classmethod
    def from_out(cls, out: StatsOut) -> ExecutionStats:
        return cls(
            schedule_id=out.schedule_id,
            since=out.since,
            total=out.total,
            by_status=[StatusCount(status=ExecutionStatus(k), count=v) for k, v in out.by_status.items()],
            success_rate=out.success_rate,
            duration_ms=Percentiles(**out.duration_ms),
            lag_ms=Percentiles(**out.lag_ms),
            last_outcome=out.last_outcome,
            last_run_at=out.last_run_at,
            next_run_at=out.next_run_at,
        )


@strawberry.type
class Execution:
    id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    trigger_type: str
    triggered_by: str | None
    status: ExecutionStatus
    reason: str | None
    priority: int
    attempts: int
    attempt_log: JSON
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lag_ms: float | None
    duration_ms: float | None
    last_error: str | None
    published_subject: str | None
    message_id: str | None
    correlation_id: str | None
    created_at: datetime
    dead_lettered_at: datetime | None = strawberry.field(
        description="When the run's dead letter was published (it finally failed)."
    )
    complete_by: datetime | None = strawberry.field(
        description="While awaiting its completion report: when it times out."
    )
    reported_at: datetime | None = strawberry.field(description="When the target's completion report arrived.")
    result: JSON | None = strawberry.field(description="What the completion report carried.")

    @classmethod
    def from_out(cls, out: ExecutionOut) -> Execution:
        data = out.model_dump()
        data["status"] = ExecutionStatus(out.status)
        return cls(**data)


@strawberry.type
class Schedule:
    id: uuid.UUID
    name: str
    description: str | None
    schedule_type: ScheduleType
    cron_expression: str | None
    interval_seconds: int | None
    run_at: datetime | None
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    dst_gap: DstGap
    dst_repeat: DstRepeat
    target_command: str
    command_payload: JSON
    delivery_mode: DeliveryMode
    request_timeout_seconds: int
    priority: int
    max_retries: int
    retry_delay: int
    misfire_grace_seconds: int
    catchup: Catchup
    max_concurrent: int
    max_runs: int | None
    jitter_seconds: int
    pause_after_failures: int | None = strawberry.field(
        description="Pause after this many consecutive failed runs (null: never)."
    )
    dead_letter_subject: str | None = strawberry.field(
        description="Where a run that finally failed is published (null: the service's default)."
    )
    completion: Completion = strawberry.field(
        description="NONE: a run ends at its publish; REPORT: when the target reports its completion."
    )
    completion_timeout_seconds: int = strawberry.field(description="With completion REPORT: seconds a report may take.")
    overlap_policy: OverlapPolicy = strawberry.field(
        description="What a run does while an earlier one of the schedule is in progress."
    )
    tags: list[str]
    exclude_calendars: list[str] = strawberry.field(description="Calendars whose days this schedule skips.")
    status: ScheduleStatus
    status_reason: str | None
    is_active: bool
    paused_at: datetime | None
    paused_until: datetime | None = strawberry.field(
        description="A snooze: when the paused schedule resumes by itself (null: until resumed)."
    )
    next_run_at: datetime | None
    next_run_at_local: str | None
    resolved_cron: str | None = strawberry.field(
        description="cron_expression with its H values resolved for this schedule's id."
    )
    last_run_at: datetime | None
    run_count: int
    created_by: str
    updated_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_out(cls, out: ScheduleOut) -> Schedule:
        data = out.model_dump()
        for name, enum in (
            ("schedule_type", ScheduleType),
            ("dst_gap", DstGap),
            ("dst_repeat", DstRepeat),
            ("delivery_mode", DeliveryMode),
            ("catchup", Catchup),
            ("completion", Completion),
            ("overlap_policy", OverlapPolicy),
        ):
            data[name] = enum(data[name])
        data["status"] = ScheduleStatus(out.status)
        return cls(**data)

    @strawberry.field(description="The next fire instants (at most 100) with local time and DST notes.")
    def next_fire_times(self, count: int = 5) -> list[FireTime]:
        if self.status != ScheduleStatus.ACTIVE or self.next_run_at is None:
            return []
        rule = Rule(
            schedule_type=self.schedule_type,
            timezone=self.timezone,
            cron_expression=self.cron_expression,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            start_at=self.start_at,
            end_at=self.end_at,
            dst_gap=self.dst_gap,
            dst_repeat=self.dst_repeat,
            hash_key=str(self.id),
        )
        count = max(1, min(count, MAX_FIRE_TIMES))
        fires = preview(rule, self.next_run_at - timedelta(microseconds=1), count)
        return [FireTime(at=f.at_utc, local_time=f.local_time.isoformat(), note=f.note) for f in fires]

    @strawberry.field(description="The newest execution (batched across a page: no N+1).")
    async def last_execution(self, info: strawberry.Info[Context, None]) -> Execution | None:
        out = await info.context.loaders.last_execution.load(self.id)
        return Execution.from_out(out) if out else None

    @strawberry.field(description="Execution statistics (batched across a page).")
    async def stats(self, info: strawberry.Info[Context, None]) -> ExecutionStats:
        return ExecutionStats.from_out(await info.context.loaders.stats.load(self.id))

    @strawberry.field(description="This schedule's executions, newest slot first.")
    async def executions(
        self,
        info: strawberry.Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: list[ExecutionStatus] | None = None,
    ) -> Annotated["ExecutionConnection", strawberry.lazy("gql.connections")]:  # noqa: F821, UP037 (a lazy type)
        from gql.connections import execution_connection

        return await execution_connection(info, first, after, schedule_id=self.id, statuses=status)


@strawberry.type
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    schedule_id: uuid.UUID | None
    before: JSON | None
    after: JSON | None
    reason: str | None
    correlation_id: str | None

    @classmethod
    def from_out(cls, out: AuditEntryOut) -> AuditEntry:
        return cls(**out.model_dump())


@strawberry.type(description="A slot of the old rule an edit records: PENDING fires late, MISSED is past the grace.")
class RecordedSlot:
    scheduled_for: datetime
    status: str


@strawberry.type(description="What an edit would do (updateSchedule with dryRun); nothing is saved.")
class ScheduleEditPreview:
    schedule: Schedule = strawberry.field(description="The schedule as the edit would leave it.")
    fire_times_before: list[FireTime]
    fire_times_after: list[FireTime]
    slots_recorded: list[RecordedSlot] = strawberry.field(
        description="Due slots of the old rule not yet recorded, which a change of the rule records now."
    )
    runs_kept: list[Execution] = strawberry.field(
        description="Runs already recorded and not over: kept on their slots."
    )

    @classmethod
    def from_out(cls, out: EditPreviewOut) -> ScheduleEditPreview:
        return cls(
            schedule=Schedule.from_out(out.schedule),
            fire_times_before=[FireTime.from_out(f) for f in out.fire_times_before],
            fire_times_after=[FireTime.from_out(f) for f in out.fire_times_after],
            slots_recorded=[RecordedSlot(scheduled_for=s.scheduled_for, status=s.status) for s in out.slots_recorded],
            runs_kept=[Execution.from_out(e) for e in out.runs_kept],
        )


@strawberry.type(description="A backfill of a schedule's past slots, with its progress.")
class Backfill:
    id: uuid.UUID
    schedule_id: uuid.UUID
    start_at: datetime
    end_at: datetime
    max_per_second: int
    slots_total: int
    slots_recorded_before: int
    status: str = strawberry.field(description="running, completed or cancelled")
    runs: JSON = strawberry.field(description='Its runs by status, e.g. {"pending": 3, "succeeded": 7}.')
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def from_out(cls, out: BackfillOut) -> Backfill:
        return cls(**out.model_dump())


@strawberry.type(description="What a backfill finds in its range; unless dryRun, the backfill it started.")
class BackfillPlan:
    dry_run: bool
    slots_total: int
    slots_recorded: int
    slots_excluded: int
    slots_to_record: int
    slots_after_cutoff: int
    first_slots: list[datetime]
    backfill: Backfill | None

    @classmethod
    def from_out(cls, out: BackfillPlanOut) -> BackfillPlan:
        data = out.model_dump(exclude={"backfill"})
        return cls(**data, backfill=Backfill.from_out(out.backfill) if out.backfill else None)


@strawberry.type(description="An inclusive run of days.")
class DateRange:
    start: date
    end: date


@strawberry.type(description="A named exclusion calendar; its days are local days of its time zone.")
class Calendar:
    id: uuid.UUID
    name: str
    description: str | None
    timezone: str
    dates: list[date]
    ranges: list[DateRange]
    yearly: list[str] = strawberry.field(description="Month and day every year, MM-DD.")
    windows: list[str] = strawberry.field(description="5-field cron expressions of excluded minutes.")
    used_by: list[uuid.UUID] = strawberry.field(description="The live schedules that exclude this calendar.")
    created_by: str
    created_at: datetime
    updated_by: str | None
    updated_at: datetime
    version: int

    @classmethod
    def from_out(cls, out: CalendarOut) -> Calendar:
        data = out.model_dump(exclude={"ranges"})
        return cls(**data, ranges=[DateRange(start=r.start, end=r.end) for r in out.ranges])
