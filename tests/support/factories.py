"""Builders of the state a test needs: schedule bodies for the services, and rows written straight to SQL."""

from __future__ import annotations

from datetime import datetime, timezone

from services.context import Actor
from services.schemas import ScheduleCreate

T0 = datetime(2030, 1, 7, 12, 0, 0, tzinfo=timezone.utc)
ACTOR = Actor("tests")


def interval(name: str, seconds: int = 60, **extra) -> ScheduleCreate:
    """A service-level body of an interval schedule on `cmd.test.tick`."""
    return ScheduleCreate(
        name=name, schedule_type="interval", interval_seconds=seconds, target_command="cmd.test.tick", **extra
    )
