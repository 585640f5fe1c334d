"""Calendars: named exclusion calendars shared by schedules (create, read, edit, delete, .ics import).

A calendar is evaluated when a slot of a schedule that lists it falls due (services.ticking), so an edit
changes every later slot of every schedule using it; slots recorded already (within the dispatch lead)
go out as planned, the commitment of any edit. A calendar a live schedule lists cannot be deleted (409,
naming the schedules). Any writer may create a calendar; its creator or an admin changes or deletes it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.calendars import CALENDAR_NAME, MAX_ENTRIES, CalendarRules, calendar_problems
from core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed, VersionConflict
from models import Calendar, Schedule
from services.access import require_writer
from services.context import Actor, Role
from services.ics import entries_from_ics
from services.schemas import CalendarIn, CalendarOut, DateRange
from services.stores import schedules as schedule_store


def rules_of(row: Any) -> CalendarRules:
    """The core rules of a stored calendar (an ORM row or a Core row)."""
    return CalendarRules(
        name=row.name,
        timezone=row.timezone,
        dates=tuple(row.dates),
        ranges=tuple((date.fromisoformat(a), date.fromisoformat(b)) for a, b in row.ranges),
        yearly=tuple(row.yearly),
        windows=tuple(row.windows),
    )


def _rules_of_input(body: CalendarIn) -> CalendarRules:
    return CalendarRules(
        name=body.name,
        timezone=body.timezone,
        dates=tuple(body.dates),
        ranges=tuple((r.start, r.end) for r in body.ranges),
        yearly=tuple(body.yearly),
        windows=tuple(body.windows),
    )


def _columns(body: CalendarIn) -> dict[str, Any]:
    problems = calendar_problems(_rules_of_input(body))
    if problems:
        raise ValidationFailed(problems)
    return {
        "name": body.name,
        "description": body.description,
        "timezone": body.timezone,
        "dates": sorted(set(body.dates)),
        "ranges": [[r.start.isoformat(), r.end.isoformat()] for r in body.ranges],
        "yearly": sorted(set(body.yearly)),
        "windows": list(dict.fromkeys(body.windows)),
    }


_BY_NAME = sa.text(
    "SELECT name, timezone, dates, ranges, yearly, windows FROM calendars WHERE name = ANY(CAST(:names AS text[]))"
)


async def calendars_by_name(conn: AsyncConnection, names: set[str]) -> dict[str, CalendarRules]:
    """The calendars named, by name, read on a Core connection (the ticker's transaction)."""
    if not names:
        return {}
    rows = await conn.execute(_BY_NAME, {"names": sorted(names)})
    return {row.name: rules_of(row) for row in rows}


async def load_calendars(session: AsyncSession, names: list[str]) -> dict[str, CalendarRules]:
    """The calendars named, by name (missing names are absent)."""
    if not names:
        return {}
    rows = await session.exec(select(Calendar).where(col(Calendar.name).in_(sorted(set(names)))))
    return {row.name: rules_of(row) for row in rows.all()}


async def listed_calendars(session: AsyncSession, names: list[str]) -> list[CalendarRules]:
    """The calendars a schedule lists, in its order (names that are no calendar left out)."""
    found = await load_calendars(session, names)
    return [found[name] for name in names if name in found]


async def check_calendars_exist(session: AsyncSession, names: list[str], field: str = "exclude_calendars") -> None:
    """Refuse names that are no calendar (a schedule may only list existing ones)."""
    found = await load_calendars(session, names)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationFailed([FieldError(field, f"no calendar named {n!r}") for n in missing])


class CalendarService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(self, body: CalendarIn, actor: Actor, now: datetime) -> CalendarOut:
        require_writer(actor)
        row = Calendar(**_columns(body), created_by=actor.name, created_at=now, updated_at=now)
        async with self.sessions() as session, session.begin():
            session.add(row)
            await _flush_named(session, body.name)
            schedule_store.audit(session, actor, "calendar.created", now, after=_snapshot(row))
            return await _out(session, row)

    async def list(self) -> list[CalendarOut]:
        async with self.sessions() as session:
            rows = (await session.exec(select(Calendar).order_by(col(Calendar.name)))).all()
            return await _outs(session, list(rows))

    async def get(self, name: str) -> CalendarOut:
        async with self.sessions() as session:
            return await _out(session, await _load(session, name))

    async def update(self, name: str, body: CalendarIn, actor: Actor, now: datetime) -> CalendarOut:
        """Replace the calendar's fields; the schedules using it follow it from their next slot on."""
        require_writer(actor)
        async with self.sessions() as session, session.begin():
            row = await _load(session, name, for_update=True)
            _check_owner(row, actor)
            if body.version is not None and body.version != row.version:
                raise VersionConflict(body.version, row.version)
            if body.name != row.name and await _users(session, row.name):
                raise Conflict("a calendar that schedules use cannot be renamed", field="name")
            before = _snapshot(row)
            for key, value in _columns(body).items():
                setattr(row, key, value)
            row.updated_at, row.updated_by, row.version = now, actor.name, row.version + 1
            session.add(row)
            await _flush_named(session, body.name)
            schedule_store.audit(session, actor, "calendar.updated", now, before=before, after=_snapshot(row))
            return await _out(session, row)

    async def put(self, body: CalendarIn, actor: Actor, now: datetime) -> CalendarOut:
        """Create the calendar, or replace the one of that name (an import)."""
        async with self.sessions() as session:
            exists = (await session.exec(select(Calendar.id).where(Calendar.name == body.name))).first()
        if exists is None:
            return await self.create(body, actor, now)
        return await self.update(body.name, body, actor, now)

    async def import_ics(self, name: str, text: str, timezone: str, actor: Actor, now: datetime) -> CalendarOut:
        """Create or replace calendar `name` from an iCalendar document (services.ics)."""
        dates, ranges, yearly = entries_from_ics(text)
        if len(dates) + len(ranges) + len(set(yearly)) > MAX_ENTRIES:
            raise ValidationFailed.single("body", f"holds more than {MAX_ENTRIES} dates, ranges and yearly dates")
        body = CalendarIn(
            name=name,
            timezone=timezone,
            dates=dates,
            ranges=[DateRange(start=a, end=b) for a, b in ranges],
            yearly=sorted(set(yearly)),
        )
        return await self.put(body, actor, now)

    async def delete(self, name: str, actor: Actor, now: datetime) -> None:
        require_writer(actor)
        async with self.sessions() as session, session.begin():
            row = await _load(session, name, for_update=True)
            _check_owner(row, actor)
            users = await _users(session, name)
            if users:
                named = ", ".join(f"{u.name!r} ({u.id})" for u in users[:20])
                raise Conflict(f"calendar {name!r} is used by {len(users)} schedule(s): {named}", field="name")
            schedule_store.audit(session, actor, "calendar.deleted", now, before=_snapshot(row))
            await session.delete(row)


def _check_owner(row: Calendar, actor: Actor) -> None:
    if actor.role is not Role.ADMIN and row.created_by != actor.name:
        raise Forbidden(f"calendar {row.name!r} belongs to {row.created_by!r}", field="name")


async def _flush_named(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a calendar named {name!r} exists already", field="name") from None


async def _load(session: AsyncSession, name: str, for_update: bool = False) -> Calendar:
    if not CALENDAR_NAME.match(name):  # no calendar has such a name (nor may one hold a NUL for the query)
        raise NotFound("calendar", repr(name.replace("\x00", "")), field="name")
    query = select(Calendar).where(Calendar.name == name)
    if for_update:
        query = query.with_for_update()
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound("calendar", name, field="name")
    return row


async def _users(session: AsyncSession, name: str) -> list[Schedule]:
    """The live schedules that list the calendar."""
    query = select(Schedule).where(col(Schedule.exclude_calendars).contains([name]), col(Schedule.deleted_at).is_(None))
    return list((await session.exec(query.order_by(col(Schedule.name)))).all())


def _snapshot(row: Calendar) -> dict[str, Any]:
    return {
        "name": row.name,
        "timezone": row.timezone,
        "dates": [d.isoformat() for d in row.dates],
        "ranges": row.ranges,
        "yearly": row.yearly,
        "windows": row.windows,
    }


# The live schedules listing any of some calendars, one row per (calendar, schedule); the GIN index on
# exclude_calendars (ix_schedules_exclude_calendars) answers the overlap.
_USED_BY = sa.text(
    "SELECT listed AS name, id FROM schedules, unnest(exclude_calendars) AS listed "
    "WHERE deleted_at IS NULL AND exclude_calendars && CAST(:names AS varchar[]) "
    "AND listed = ANY(CAST(:names AS varchar[])) ORDER BY name, id"
)


async def _outs(session: AsyncSession, rows: list[Calendar]) -> list[CalendarOut]:
    """The calendars as answers, with the schedules using each (one query for all of them)."""
    used_by: dict[str, list[Any]] = {row.name: [] for row in rows}
    if rows:
        found = await (await session.connection()).execute(_USED_BY, {"names": list(used_by)})
        for name, schedule_id in found.all():
            used_by[name].append(schedule_id)
    outs = []
    for row in rows:
        data = row.model_dump()
        data["ranges"] = [DateRange(start=a, end=b) for a, b in row.ranges]
        outs.append(CalendarOut(**data, used_by=used_by[row.name]))
    return outs


async def _out(session: AsyncSession, row: Calendar) -> CalendarOut:
    return (await _outs(session, [row]))[0]
