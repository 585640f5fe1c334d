"""Rows to output shapes (shared by REST, GraphQL, NATS replies and audit snapshots)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.cronexpr import resolved_cron
from core.states import ScheduleStatus
from core.timezones import load_zone
from models import Execution, Schedule
from services.schemas import ExecutionOut, ScheduleOut


def _ms(later, earlier) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() * 1000, 3)


def _local(next_run_at, zone: str) -> str | None:
    if next_run_at is None:
        return None
    try:
        return next_run_at.astimezone(load_zone(zone)).isoformat()
    except ValueError:
        return None


def schedule_out(row: Schedule) -> ScheduleOut:
    return schedule_out_of_values(row.model_dump())


def schedule_out_of_values(values: Mapping[str, Any]) -> ScheduleOut:
    """The same as `schedule_out` from a plain column mapping (a Core row's `_mapping`, or the values
    of a row about to be inserted), without building an ORM object first."""
    data = dict(values)
    data["is_active"] = data["status"] == ScheduleStatus.ACTIVE
    data["next_run_at_local"] = _local(data["next_run_at"], data["timezone"])
    data["resolved_cron"] = resolved_cron(data.get("cron_expression"), str(data["id"]))
    return ScheduleOut.model_validate(data)


def schedule_snapshot(row: Schedule) -> dict[str, Any]:
    """A JSON-ready copy of a schedule for the audit trail."""
    return schedule_out(row).model_dump(mode="json")


def execution_out(row: Execution) -> ExecutionOut:
    data = row.model_dump()
    data["lag_ms"] = _ms(row.started_at, row.scheduled_for)
    data["duration_ms"] = _ms(row.finished_at, row.started_at)
    return ExecutionOut.model_validate(data)
