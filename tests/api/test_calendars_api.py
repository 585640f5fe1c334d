"""Calendars over REST against the real PostgreSQL: CRUD, refusals naming the field, .ics import of
holidays, a schedule's fire times as .ics, and the preview marking excluded slots."""

from __future__ import annotations

import icalendar

from tests.support.http import create, cron_body

HOLIDAYS_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:christmas
DTSTART;VALUE=DATE:20301225
DTEND;VALUE=DATE:20301226
SUMMARY:Christmas Day
END:VEVENT
BEGIN:VEVENT
UID:new-year
DTSTART;VALUE=DATE:20300101
RRULE:FREQ=YEARLY
SUMMARY:New Year
END:VEVENT
BEGIN:VEVENT
UID:break
DTSTART;VALUE=DATE:20300805
DTEND;VALUE=DATE:20300810
SUMMARY:Summer break
END:VEVENT
END:VCALENDAR
"""


async def test_create_read_update_delete(client, db):
    body = {"name": "ops-freeze", "timezone": "Europe/Berlin", "dates": ["2030-12-24"], "windows": ["* 0-5 * * *"]}
    created = await client.post("/api/v1/calendars", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["used_by"] == []
    listed = (await client.get("/api/v1/calendars")).json()
    assert [c["name"] for c in listed] == ["ops-freeze"]
    changed = await client.put("/api/v1/calendars/ops-freeze", json={**body, "yearly": ["05-01"], "version": 1})
    assert changed.status_code == 200 and changed.json()["yearly"] == ["05-01"] and changed.json()["version"] == 2
    stale = await client.put("/api/v1/calendars/ops-freeze", json={**body, "version": 1})
    assert stale.status_code == 409
    assert (await client.delete("/api/v1/calendars/ops-freeze")).status_code == 204
    assert (await client.get("/api/v1/calendars/ops-freeze")).status_code == 404
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["calendar.created", "calendar.updated", "calendar.deleted"]


async def test_bad_calendars_are_refused_naming_the_field(client, db):
    cases = [
        ({"name": "Bad Name"}, "name"),
        ({"name": "c", "timezone": "Mars/Base"}, "timezone"),
        ({"name": "c", "ranges": [{"start": "2030-01-02", "end": "2030-01-01"}]}, "ranges.0.end"),
        ({"name": "c", "yearly": ["02-30"]}, "yearly.0"),
        ({"name": "c", "windows": ["*/60 * * * *"]}, "windows.0"),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/calendars", json=body)
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["errors"]], (field, response.text)
    assert (await client.post("/api/v1/calendars", json={"name": "c"})).status_code == 201
    assert (await client.post("/api/v1/calendars", json={"name": "c"})).status_code == 409
    assert await db.fetchval("SELECT count(*) FROM calendars") == 1


async def test_a_calendar_in_use_cannot_be_deleted_and_the_schedule_must_name_an_existing_one(client):
    assert (await client.post("/api/v1/calendars", json={"name": "holidays"})).status_code == 201
    unknown = await client.post("/api/v1/schedules", json=cron_body(exclude_calendars=["nope"]))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "exclude_calendars"
    schedule = await create(client, cron_body(exclude_calendars=["holidays"]))
    refused = await client.delete("/api/v1/calendars/holidays")
    assert refused.status_code == 409 and schedule["id"] in refused.json()["detail"]


async def test_ics_import_and_the_preview_marks_excluded_slots(client):
    imported = await client.post(
        "/api/v1/calendars/public-holidays/import",
        params={"timezone": "UTC"},
        content=HOLIDAYS_ICS,
        headers={"Content-Type": "text/calendar"},
    )
    assert imported.status_code == 200, imported.text
    calendar = imported.json()
    assert calendar["dates"] == ["2030-12-25"] and calendar["yearly"] == ["01-01"]
    assert calendar["ranges"] == [{"start": "2030-08-05", "end": "2030-08-09"}]
    body = {"schedule_type": "cron", "cron_expression": "0 12 * * *", "timezone": "UTC", "count": 4}
    window = {"after": "2030-12-23T00:00:00Z", "exclude_calendars": ["public-holidays"]}
    fires = (await client.post("/api/v1/schedules/preview", json={**body, **window})).json()["fire_times"]
    assert [(f["at"][:10], f["excluded_by"]) for f in fires] == [
        ("2030-12-23", None),
        ("2030-12-24", None),
        ("2030-12-25", "calendar:public-holidays"),
        ("2030-12-26", None),
    ]
    garbage = await client.post(
        "/api/v1/calendars/x/import", content="not ics", headers={"Content-Type": "text/calendar"}
    )
    assert garbage.status_code == 422 and garbage.json()["errors"][0]["field"] == "body"


async def test_a_schedules_fire_times_as_ics_leave_out_excluded_slots(client, clock):
    assert (
        await client.post("/api/v1/calendars", json={"name": "weekends", "windows": ["* * * * 0,6"]})
    ).status_code == 201
    schedule = await create(
        client, cron_body(cron_expression="0 12 * * *", timezone="UTC", exclude_calendars=["weekends"])
    )
    response = await client.get(f"/api/v1/schedules/{schedule['id']}/calendar.ics", params={"count": 14})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    events = icalendar.Calendar.from_ical(response.text).walk("VEVENT")
    starts = [e.decoded("DTSTART") for e in events]
    assert len(starts) == 10  # 14 days, 4 of them in two weekends
    assert all(s.weekday() < 5 and s.hour == 12 for s in starts)
