"""Rows to output shapes (shared by REST, GraphQL, NATS replies and audit snapshots)."""

from __future__ import annotations

from typing import Any

from core.timezones import load_zone
from models import Execution, Schedule
from services.schemas import ExecutionOut, ScheduleOut


def _ms(later, earlier) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() * 1000, 3)


def schedule_out(row: Schedule) -> ScheduleOut:
    local = None
    if row.next_run_at is not None:
        try:
            local = row.next_run_at.astimezone(load_zone(row.timezone)).isoformat()
        except ValueError:
            local = None
    data = row.model_dump()
    data["is_active"] = row.status == "active"
    data["next_run_at_local"] = local
    return ScheduleOut.model_validate(data)


def schedule_snapshot(row: Schedule) -> dict[str, Any]:
    """A JSON-ready copy of a schedule for the audit trail."""
    return schedule_out(row).model_dump(mode="json")


def execution_out(row: Execution) -> ExecutionOut:
    data = row.model_dump()
    data["lag_ms"] = _ms(row.started_at, row.scheduled_for)
    data["duration_ms"] = _ms(row.finished_at, row.started_at)
    return ExecutionOut.model_validate(data)
