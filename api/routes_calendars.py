"""REST routes for calendars: named exclusion calendars that schedules list in `exclude_calendars`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.deps import Creator, Deleter, Now, Reader, Updater, reject_nul_query
from api.problems import PROBLEM_RESPONSES
from services.calendars import CalendarService
from services.schemas import CalendarIn, CalendarName, CalendarOut

router = APIRouter(
    prefix="/api/v1/calendars",
    tags=["calendars"],
    responses=PROBLEM_RESPONSES,
    dependencies=[Depends(reject_nul_query)],
)


def calendar_service(request: Request) -> CalendarService:
    return request.app.state.calendars


Calendars = Annotated[CalendarService, Depends(calendar_service)]
ICS_BODY = Body(media_type="text/calendar", description="an iCalendar document (.ics), e.g. public holidays")


@router.post("", response_model=CalendarOut, status_code=201, summary="Create a calendar")
async def create_calendar(body: CalendarIn, service: Calendars, actor: Creator, now: Now) -> CalendarOut:
    return await service.create(body, actor, now)


@router.get("", response_model=list[CalendarOut], summary="Every calendar, by name")
async def list_calendars(service: Calendars, actor: Reader) -> list[CalendarOut]:
    return await service.list()


@router.get("/{name}", response_model=CalendarOut, summary="A calendar, with the schedules that use it")
async def get_calendar(name: CalendarName, service: Calendars, actor: Reader) -> CalendarOut:
    return await service.get(name)


@router.put(
    "/{name}",
    response_model=CalendarOut,
    summary="Replace a calendar's entries (the schedules using it follow it from their next slot on)",
)
async def update_calendar(
    name: CalendarName, body: CalendarIn, service: Calendars, actor: Updater, now: Now
) -> CalendarOut:
    return await service.update(name, body, actor, now)


@router.delete("/{name}", status_code=204, response_class=Response, summary="Delete a calendar no schedule uses")
async def delete_calendar(name: CalendarName, service: Calendars, actor: Deleter, now: Now) -> Response:
    await service.delete(name, actor, now)
    return Response(status_code=204)


@router.post(
    "/{name}/import",
    response_model=CalendarOut,
    summary="Create or replace a calendar from an .ics file (all-day events, yearly ones as yearly dates)",
)
async def import_calendar(
    name: CalendarName,
    service: Calendars,
    actor: Updater,
    now: Now,
    body: Annotated[str, ICS_BODY],
    timezone: Annotated[str, Query(min_length=1, max_length=64)] = "UTC",
) -> CalendarOut:
    return await service.import_ics(name, body, timezone, actor, now)
