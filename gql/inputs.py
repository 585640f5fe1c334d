"""GraphQL input types; each converts to the service layer's snake_case body."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gql.enums import (
    Catchup,
    Completion,
    DeliveryMode,
    DstGap,
    DstRepeat,
    OverlapPolicy,
    ReportStatus,
    ScheduleStatus,
    ScheduleType,
)


def to_body(value: Any, keep_null: bool = False) -> dict[str, Any]:
    """Input object → dict for the services: UNSET dropped, enums to values, None kept only for updates."""
    body: dict[str, Any] = {}
    for name in value.__strawberry_definition__.fields:
        item = getattr(value, name.python_name)
        if item is strawberry.UNSET or (item is None and not keep_null):
            continue
        if isinstance(item, Enum):
            item = item.value
        body[name.python_name] = item
    return body


@strawberry.input(description="When a schedule fires. Datetimes without an offset are wall time in `timezone`.")
class ScheduleRuleInput:
    schedule_type: ScheduleType
    cron_expression: str | None = None
    interval_seconds: int | None = None
    run_at: datetime | None = None
    timezone: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    dst_gap: DstGap | None = None
    dst_repeat: DstRepeat | None = None


@strawberry.input
class CreateScheduleInput(ScheduleRuleInput):
    name: str
    target_command: str
    description: str | None = None
    command_payload: JSON | None = None
    delivery_mode: DeliveryMode | None = None
    request_timeout_seconds: int | None = None
    priority: int | None = None
    max_retries: int | None = None
    retry_delay: int | None = None
    misfire_grace_seconds: int | None = None
    catchup: Catchup | None = None
    max_concurrent: int | None = None
    max_runs: int | None = None
    jitter_seconds: int | None = None
    tags: list[str] | None = None
    exclude_calendars: list[str] | None = strawberry.field(
        default=None, description="Calendars (by name) whose days and windows this schedule does not fire in."
    )
    pause_after_failures: int | None = strawberry.field(
        default=None, description="Pause after this many consecutive failed runs (null: never)."
    )
    dead_letter_subject: str | None = strawberry.field(
        default=None, description="Where a run that finally failed is published (null: the service's default)."
    )
    completion: Completion | None = strawberry.field(
        default=None, description="NONE: a run ends at its publish; REPORT: when the target reports (default NONE)."
    )
    completion_timeout_seconds: int | None = strawberry.field(
        default=None, description="With completion REPORT: seconds the report may take (default 300)."
    )
    overlap_policy: OverlapPolicy | None = strawberry.field(
        default=None, description="What a run does while an earlier one is in progress (default ALLOW)."
    )


@strawberry.input(description="Only the fields given change; null clears an optional field.")
class UpdateScheduleInput:
    version: int | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    schedule_type: ScheduleType | None = strawberry.UNSET
    cron_expression: str | None = strawberry.UNSET
    interval_seconds: int | None = strawberry.UNSET
    run_at: datetime | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    start_at: datetime | None = strawberry.UNSET
    end_at: datetime | None = strawberry.UNSET
    dst_gap: DstGap | None = strawberry.UNSET
    dst_repeat: DstRepeat | None = strawberry.UNSET
    target_command: str | None = strawberry.UNSET
    command_payload: JSON | None = strawberry.UNSET
    delivery_mode: DeliveryMode | None = strawberry.UNSET
    request_timeout_seconds: int | None = strawberry.UNSET
    priority: int | None = strawberry.UNSET
    max_retries: int | None = strawberry.UNSET
    retry_delay: int | None = strawberry.UNSET
    misfire_grace_seconds: int | None = strawberry.UNSET
    catchup: Catchup | None = strawberry.UNSET
    max_concurrent: int | None = strawberry.UNSET
    max_runs: int | None = strawberry.UNSET
    jitter_seconds: int | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    exclude_calendars: list[str] | None = strawberry.UNSET
    pause_after_failures: int | None = strawberry.UNSET
    dead_letter_subject: str | None = strawberry.UNSET
    completion: Completion | None = strawberry.UNSET
    completion_timeout_seconds: int | None = strawberry.UNSET
    overlap_policy: OverlapPolicy | None = strawberry.UNSET


@strawberry.input
class ScheduleFilterInput:
    status: ScheduleStatus | None = None
    schedule_type: ScheduleType | None = None
    tags: list[str] | None = None
    created_by: str | None = None
    search: str | None = None
    next_run_before: datetime | None = None
    next_run_after: datetime | None = None


@strawberry.input
class AuditFilterInput:
    schedule_id: strawberry.ID | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@strawberry.input(description="A target's report that the run it was sent ended (schedules with completion REPORT).")
class CompletionReportInput:
    status: ReportStatus
    error: str | None = None
    result: JSON | None = strawberry.field(default=None, description="A small JSON object kept with the run.")
    attempt: int | None = strawberry.field(
        default=None, description="The attempt reported on (Scheduler-Attempt); null: the one awaiting a report."
    )


@strawberry.input(description="A backfill: the range (UTC instants) and the most runs handed over a second.")
class BackfillInput:
    start: datetime
    end: datetime
    dry_run: bool = False
    max_per_second: int = 10


@strawberry.input
class DateRangeInput:
    start: date
    end: date


@strawberry.input(description="A calendar's fields; on an update, `version` is the one expected.")
class CalendarInput:
    name: str
    description: str | None = None
    timezone: str = "UTC"
    dates: list[date] | None = None
    ranges: list[DateRangeInput] | None = None
    yearly: list[str] | None = None
    windows: list[str] | None = None
    version: int | None = None
