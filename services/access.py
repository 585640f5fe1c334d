"""Authorization rules, enforced by the services whatever the interface.

reader: reads everything, writes nothing. writer: creates schedules and sees and changes only its own
(another creator's schedule is "not found", so existence does not leak). admin: everything.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col

from core.errors import Forbidden, NotFound
from models import AuditEntry, Execution, Schedule
from services.context import Actor, Role


def require_writer(actor: Actor) -> None:
    if actor.role == Role.READER:
        raise Forbidden(f"{actor.name!r} has the reader role: it cannot change schedules", field="authorization")


def visible_to(actor: Actor, created_by: str) -> bool:
    return actor.sees_everything or created_by == actor.name


def check_visible(actor: Actor, schedule: Schedule) -> None:
    if not visible_to(actor, schedule.created_by):
        raise NotFound("schedule", schedule.id, field="schedule_id")


def schedule_scope(actor: Actor) -> list[Any]:
    return [] if actor.sees_everything else [Schedule.created_by == actor.name]


def _owned_schedule_ids(actor: Actor) -> Any:
    """The ids of the schedules `actor` created, as a subquery."""
    table = Schedule.__table__
    return table.select().with_only_columns(table.c.id).where(table.c.created_by == actor.name)


def execution_scope(actor: Actor) -> list[Any]:
    if actor.sees_everything:
        return []
    return [col(Execution.schedule_id).in_(_owned_schedule_ids(actor))]


def audit_scope(actor: Actor) -> list[Any]:
    if actor.sees_everything:
        return []
    return [(AuditEntry.actor == actor.name) | col(AuditEntry.schedule_id).in_(_owned_schedule_ids(actor))]
