"""GraphQL input types; each converts to the service layer's snake_case body."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Optional

import strawberry
from strawberry.scalars import JSON

from gql.enums import Catchup, DeliveryMode, DstGap, DstRepeat, ScheduleStatus, ScheduleType


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
    cron_expression: Optional[str] = None
    interval_seconds: Optional[int] = None
    run_at: Optional[datetime] = None
    timezone: Optional[str] = None
    start_at: Optional[datetime] = None
    end_at: Optional[datetime] = None
    dst_gap: Optional[DstGap] = None
    dst_repeat: Optional[DstRepeat] = None


@strawberry.input
class CreateScheduleInput(ScheduleRuleInput):
    name: str
    target_command: str
    description: Optional[str] = None
    command_payload: Optional[JSON] = None
    delivery_mode: Optional[DeliveryMode] = None
    request_timeout_seconds: Optional[int] = None
    priority: Optional[int] = None
    max_retries: Optional[int] = None
    retry_delay: Optional[int] = None
    misfire_grace_seconds: Optional[int] = None
    catchup: Optional[Catchup] = None
    max_concurrent: Optional[int] = None
    max_runs: Optional[int] = None
    jitter_seconds: Optional[int] = None
    tags: Optional[list[str]] = None


@strawberry.input(description="Only the fields given change; null clears an optional field.")
class UpdateScheduleInput:
    version: Optional[int] = strawberry.UNSET
    name: Optional[str] = strawberry.UNSET
    description: Optional[str] = strawberry.UNSET
    schedule_type: Optional[ScheduleType] = strawberry.UNSET
    cron_expression: Optional[str] = strawberry.UNSET
    interval_seconds: Optional[int] = strawberry.UNSET
    run_at: Optional[datetime] = strawberry.UNSET
    timezone: Optional[str] = strawberry.UNSET
    start_at: Optional[datetime] = strawberry.UNSET
    end_at: Optional[datetime] = strawberry.UNSET
    dst_gap: Optional[DstGap] = strawberry.UNSET
    dst_repeat: Optional[DstRepeat] = strawberry.UNSET
    target_command: Optional[str] = strawberry.UNSET
    command_payload: Optional[JSON] = strawberry.UNSET
    delivery_mode: Optional[DeliveryMode] = strawberry.UNSET
    request_timeout_seconds: Optional[int] = strawberry.UNSET
    priority: Optional[int] = strawberry.UNSET
    max_retries: Optional[int] = strawberry.UNSET
    retry_delay: Optional[int] = strawberry.UNSET
    misfire_grace_seconds: Optional[int] = strawberry.UNSET
    catchup: Optional[Catchup] = strawberry.UNSET
    max_concurrent: Optional[int] = strawberry.UNSET
    max_runs: Optional[int] = strawberry.UNSET
    jitter_seconds: Optional[int] = strawberry.UNSET
    tags: Optional[list[str]] = strawberry.UNSET


@strawberry.input
class ScheduleFilterInput:
    status: Optional[ScheduleStatus] = None
    schedule_type: Optional[ScheduleType] = None
    tags: Optional[list[str]] = None
    created_by: Optional[str] = None
    search: Optional[str] = None
    next_run_before: Optional[datetime] = None
    next_run_after: Optional[datetime] = None


@strawberry.input
class AuditFilterInput:
    schedule_id: Optional[strawberry.ID] = None
    actor: Optional[str] = None
    action: Optional[str] = None
    since: Optional[datetime] = None
    until: Optional[datetime] = None
