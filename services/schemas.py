"""Input and output shapes of the service layer (snake_case, as the REST API speaks them).

Pydantic checks types and ranges here; rules that need the clock or the database (cron that never
fires, past run_at, quotas, duplicate names) are checked by the services. Unknown fields are
rejected so a typo never silently does nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.misfire import Catchup
from core.overlap import Completion, OverlapPolicy
from core.rules import DstGap, DstRepeat, ScheduleType
from core.states import ReportStatus, ScheduleStatus


def has_nul(value: Any) -> bool:
    """Whether a NUL character hides in a string, key or nested value (PostgreSQL stores none)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _bounded(value: datetime) -> datetime:
    # Any offset or zone keeps years 2..9998 inside datetime's and PostgreSQL's range once in UTC.
    if not 2 <= value.year <= 9998:
        raise ValueError("must be between the years 0002 and 9998")
    return value


Instant = Annotated[datetime, AfterValidator(_bounded)]
Int32 = Annotated[int, Field(ge=1, le=2**31 - 1)]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
CalendarName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\s,]+$")]
Seconds = Annotated[int, Field(ge=0, le=366 * 86400)]
# Pause the schedule after this many consecutive runs ended failed (None: never).
PauseAfterFailures = Annotated[int, Field(ge=1, le=1000)]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=255)]
CompletionTimeout = Annotated[int, Field(ge=1, le=604800)]


class DeliveryMode(StrEnum):
    """`auto`: JetStream with an awaited PubAck when a stream covers the subject, else core publish.
    `request`: request/reply; an error reply or a timeout is a failure."""

    AUTO = "auto"
    REQUEST = "request"


class BulkOperationKind(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    DELETE = "delete"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if has_nul(key) or has_nul(value):
                    raise ValueError(f"{key}: must not contain NUL (\\u0000) characters")
        return data


class ScheduleRuleInput(_Strict):
    """The fields that decide when a schedule fires. Naive datetimes are read in `timezone`."""

    schedule_type: ScheduleType
    cron_expression: Annotated[str, StringConstraints(max_length=255)] | None = None
    interval_seconds: Annotated[int, Field(gt=0)] | None = None
    run_at: Instant | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    start_at: Instant | None = None
    end_at: Instant | None = None
    dst_gap: DstGap = DstGap.SHIFT
    dst_repeat: DstRepeat = DstRepeat.AUTO


class ScheduleCreate(ScheduleRuleInput):
    """A new schedule. Omitted retry/misfire/concurrency fields take the service defaults."""

    name: Name
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    target_command: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    command_payload: dict[str, Any] = Field(default_factory=dict)
    delivery_mode: DeliveryMode = DeliveryMode.AUTO
    request_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 30
    priority: Annotated[int, Field(ge=0, le=10)] = 5
    max_retries: Annotated[int, Field(ge=0, le=100)] | None = None
    retry_delay: Seconds | None = None
    misfire_grace_seconds: Seconds | None = None
    catchup: Catchup = Catchup.LATEST
    max_concurrent: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_runs: Int32 | None = None
    jitter_seconds: Annotated[int, Field(ge=0, le=3600)] = 0
    pause_after_failures: PauseAfterFailures | None = None
    dead_letter_subject: Subject | None = None
    completion: Completion = Completion.NONE
    completion_timeout_seconds: CompletionTimeout = 300
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW
    tags: Annotated[list[Tag], Field(max_length=32)] = Field(default_factory=list)
    exclude_calendars: Annotated[list[CalendarName], Field(max_length=10)] = Field(default_factory=list)


class ScheduleUpdate(_Strict):
    """A partial update: only the fields present change. `version`, when given, must be current."""

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    schedule_type: ScheduleType | None = None
    cron_expression: Annotated[str, StringConstraints(max_length=255)] | None = None
    interval_seconds: Annotated[int, Field(gt=0)] | None = None
    run_at: Instant | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    start_at: Instant | None = None
    end_at: Instant | None = None
    dst_gap: DstGap | None = None
    dst_repeat: DstRepeat | None = None
    target_command: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    command_payload: dict[str, Any] | None = None
    delivery_mode: DeliveryMode | None = None
    request_timeout_seconds: Annotated[int, Field(ge=1, le=300)] | None = None
    priority: Annotated[int, Field(ge=0, le=10)] | None = None
    max_retries: Annotated[int, Field(ge=0, le=100)] | None = None
    retry_delay: Seconds | None = None
    misfire_grace_seconds: Seconds | None = None
    catchup: Catchup | None = None
    max_concurrent: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_runs: Int32 | None = None
    jitter_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    pause_after_failures: PauseAfterFailures | None = None
    dead_letter_subject: Subject | None = None
    completion: Completion | None = None
    completion_timeout_seconds: CompletionTimeout | None = None
    overlap_policy: OverlapPolicy | None = None
    tags: Annotated[list[Tag], Field(max_length=32)] | None = None
    exclude_calendars: Annotated[list[CalendarName], Field(max_length=10)] | None = None
    version: Int32 | None = None


class PreviewRequest(ScheduleRuleInput):
    """A schedule body (extra fields such as name or target_command are ignored), the range to show
    (`after`, default now, the past allowed; `until`, optional) and at most `count` fires.
    `hash_key` (a schedule's id) chooses the values of a cron's ``H`` fields."""

    model_config = ConfigDict(extra="ignore")
    count: Annotated[int, Field(ge=1, le=100)] = 10
    after: Instant | None = None
    until: Instant | None = None
    hash_key: Annotated[str, StringConstraints(max_length=64)] | None = None
    exclude_calendars: Annotated[list[CalendarName], Field(max_length=10)] = Field(default_factory=list)


class ReasonRequest(_Strict):
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None


class PauseRequest(ReasonRequest):
    """`until`: a snooze, the schedule resumes by itself at that instant (with an offset, in the future)."""

    until: Instant | None = None


# The largest `result` a completion report may carry, in bytes of compact JSON.
COMPLETION_RESULT_MAX_BYTES = 16 * 1024


def _small_result(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, separators=(",", ":"))) > COMPLETION_RESULT_MAX_BYTES:
        raise ValueError(f"must be at most {COMPLETION_RESULT_MAX_BYTES} bytes of JSON")
    return value


class CompletionReport(_Strict):
    """A target's report that the run it was sent ended (`completion: report`). `attempt`: the attempt
    it reports on (the command's Scheduler-Attempt header); omitted, the attempt that awaits a report."""

    status: ReportStatus
    error: Annotated[str, StringConstraints(max_length=4000)] | None = None
    result: Annotated[dict[str, Any] | None, AfterValidator(_small_result)] = None
    attempt: Annotated[int, Field(ge=1)] | None = None


class TriggerRequest(_Strict):
    override_payload: dict[str, Any] | None = None


class BulkCreateRequest(_Strict):
    schedules: Annotated[list[dict[str, Any]], Field(min_length=1)]


class BulkOperationRequest(_Strict):
    schedule_ids: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(min_length=1)]
    operation: BulkOperationKind
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ScheduleFilter(_Strict):
    status: ScheduleStatus | None = None
    schedule_type: ScheduleType | None = None
    tags: list[str] = Field(default_factory=list)
    created_by: str | None = None
    search: Annotated[str, StringConstraints(max_length=255)] | None = None
    is_active: bool | None = None
    next_run_before: Instant | None = None
    next_run_after: Instant | None = None


class ExecutionFilter(_Strict):
    schedule_id: uuid.UUID | None = None
    status: str | None = None
    since: Instant | None = None
    until: Instant | None = None
    # True: the failed runs that went to their dead letters (and were not retried since).
    dead_lettered: bool | None = None


class ScheduleOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    schedule_type: str
    cron_expression: str | None
    interval_seconds: int | None
    run_at: datetime | None
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    dst_gap: str
    dst_repeat: str
    target_command: str
    command_payload: dict[str, Any]
    delivery_mode: str
    request_timeout_seconds: int
    priority: int
    max_retries: int
    retry_delay: int
    misfire_grace_seconds: int
    catchup: str
    max_concurrent: int
    max_runs: int | None
    jitter_seconds: int
    pause_after_failures: int | None = Field(
        description="pause the schedule after this many consecutive runs ended failed (null: never)"
    )
    dead_letter_subject: str | None = Field(
        description="where a run that finally failed is published (null: the DEAD_LETTER_SUBJECT setting)"
    )
    completion: str = Field(description="none: a run ends at its publish; report: when the target reports")
    completion_timeout_seconds: int = Field(description="with completion report: seconds a report may take")
    overlap_policy: str = Field(
        description="what a run does while an earlier one is in progress: allow, skip, buffer_one, buffer_all, "
        "cancel_other"
    )
    tags: list[str]
    exclude_calendars: list[str] = Field(default_factory=list)
    status: str
    status_reason: str | None
    is_active: bool
    paused_at: datetime | None
    paused_until: datetime | None = Field(description="a snooze: when the paused schedule resumes by itself")
    next_run_at: datetime | None
    next_run_at_local: str | None = Field(description="next_run_at as wall time in the schedule's time zone")
    resolved_cron: str | None = Field(
        default=None, description="cron_expression with its H values resolved for this schedule's id"
    )
    last_run_at: datetime | None
    run_count: int
    created_by: str
    updated_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class ExecutionOut(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    trigger_type: str
    triggered_by: str | None
    status: str
    reason: str | None
    priority: int
    attempts: int
    attempt_log: list[dict[str, Any]]
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lag_ms: float | None = Field(description="started_at - scheduled_for, milliseconds")
    duration_ms: float | None = Field(description="finished_at - started_at, milliseconds")
    last_error: str | None
    published_subject: str | None
    message_id: str | None
    correlation_id: str | None
    created_at: datetime
    dead_lettered_at: datetime | None = Field(
        description="when the run's dead letter was published (it finally failed)"
    )
    complete_by: datetime | None = Field(None, description="while awaiting: when it times out without a report")
    reported_at: datetime | None = Field(None, description="when the target's completion report arrived")
    result: dict[str, Any] | None = Field(None, description="what the completion report carried")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list ordered newest first; `total` counts every match of the filter."""

    items: list[T]
    total: int
    page: int
    limit: int
    pages: int

    @classmethod
    def of(cls, items: list[T], total: int, page: int, limit: int) -> Page[T]:
        return cls(items=items, total=total, page=page, limit=limit, pages=-(-total // limit))


class FireTimeOut(BaseModel):
    at: datetime
    local_time: str
    note: str | None
    excluded_by: str | None = Field(
        default=None, description="calendar:<name> when a calendar of the schedule excludes this slot"
    )


class PreviewOut(BaseModel):
    timezone: str
    resolved_cron: str | None = None  # the cron expression with its H values resolved
    fire_times: list[FireTimeOut]


class SlotOut(BaseModel):
    scheduled_for: datetime
    status: str  # pending: fires late; missed: past the misfire grace


class EditPreviewOut(BaseModel):
    """What an edit would do (`PUT ...?dry_run=true`); nothing is saved."""

    dry_run: bool = True
    schedule: ScheduleOut = Field(description="the schedule as the edit would leave it")
    fire_times_before: list[FireTimeOut] = Field(description="the next fire times without the edit")
    fire_times_after: list[FireTimeOut] = Field(description="the next fire times with it")
    slots_recorded: list[SlotOut] = Field(
        description="slots of the old rule that are due and not yet recorded: a change of the rule records "
        "them now (pending ones still fire, late; missed ones are past the misfire grace)"
    )
    runs_kept: list[ExecutionOut] = Field(
        description="runs already recorded and not over (at most 100): an edit keeps them on their slots"
    )


class BackfillRequest(_Strict):
    """Record and fire a schedule's slots in [start, end] that have no row yet, `max_per_second` at most."""

    start: Instant
    end: Instant
    dry_run: bool = False
    max_per_second: Annotated[int, Field(ge=1, le=1000)] = 10


class BackfillOut(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    start_at: datetime
    end_at: datetime
    max_per_second: int
    slots_total: int = Field(description="slots of the rule in the range, up to now")
    slots_recorded_before: int = Field(description="of those, the ones that had a row already (not fired again)")
    status: str = Field(description="running, completed (none of its runs is still in progress) or cancelled")
    runs: dict[str, int] = Field(description="its runs by status")
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None


class BackfillPlanOut(BaseModel):
    """What a backfill finds in its range; with `dry_run` false, also the backfill it started."""

    dry_run: bool
    slots_total: int = Field(description="slots of the rule in [start, end], up to now")
    slots_recorded: int = Field(description="of those, the ones that have a row already (not fired again)")
    slots_excluded: int = Field(description="of the others, those a calendar of the schedule excludes (not recorded)")
    slots_to_record: int
    slots_after_cutoff: int = Field(description="slots in the range the schedule fires itself (from its next run on)")
    first_slots: list[datetime] = Field(description="the first (at most 20) slots to record")
    backfill: BackfillOut | None = None


class DateRange(_Strict):
    start: date
    end: date


class CalendarIn(_Strict):
    """A calendar's fields (core.calendars): days are local days of `timezone`."""

    name: CalendarName
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    dates: Annotated[list[date], Field(max_length=1000)] = Field(default_factory=list)
    ranges: Annotated[list[DateRange], Field(max_length=1000)] = Field(default_factory=list)
    yearly: Annotated[list[Annotated[str, StringConstraints(max_length=5)]], Field(max_length=366)] = Field(
        default_factory=list
    )
    windows: Annotated[list[Annotated[str, StringConstraints(max_length=255)]], Field(max_length=20)] = Field(
        default_factory=list
    )
    version: Int32 | None = None  # on an update: the version it expects


class CalendarOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    timezone: str
    dates: list[date]
    ranges: list[DateRange]
    yearly: list[str]
    windows: list[str]
    used_by: list[uuid.UUID] = Field(description="the live schedules that exclude this calendar")
    created_by: str
    created_at: datetime
    updated_by: str | None
    updated_at: datetime
    version: int


class TriggerOut(BaseModel):
    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    status: str
    message: str = "Schedule triggered successfully"


class BulkCreateOut(BaseModel):
    created: int
    schedule_ids: list[uuid.UUID]


class BulkItemResult(BaseModel):
    schedule_id: str
    success: bool
    status: str | None = None
    error: dict[str, str] | None = None


class BulkOperationOut(BaseModel):
    operation: str
    total: int
    succeeded: int
    failed: int
    results: list[BulkItemResult]


class StatsOut(BaseModel):
    schedule_id: uuid.UUID
    since: datetime | None
    total: int
    by_status: dict[str, int]
    success_rate: float | None = Field(description="succeeded / (succeeded + failed), None when neither")
    duration_ms: dict[str, float | None]
    lag_ms: dict[str, float | None]
    last_outcome: str | None
    last_run_at: datetime | None
    next_run_at: datetime | None
