"""Builders of the state a test needs: schedule bodies for the services, and rows written straight to SQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import Execution, Schedule
from services.context import Actor
from services.schemas import ScheduleCreate

T0 = datetime(2030, 1, 7, 12, 0, 0, tzinfo=timezone.utc)
ACTOR = Actor("tests")


def interval(name: str, seconds: int = 60, **extra) -> ScheduleCreate:
    """A service-level body of an interval schedule on `cmd.test.tick`."""
    return ScheduleCreate(
        name=name, schedule_type="interval", interval_seconds=seconds, target_command="cmd.test.tick", **extra
    )


# Rows written straight to SQL. `conn` is an asyncpg connection, or a SQLAlchemy AsyncEngine (one
# transaction per row) or AsyncConnection (the caller's transaction). Each factory returns the values
# it inserted, `id` included; keyword arguments name columns and override the defaults.


def schedule_values(**fields: Any) -> dict[str, Any]:
    """An active interval schedule (every 60 s from T0, not yet due: next_run_at NULL) plus `fields`."""
    values = {
        "id": uuid.uuid4(),
        "name": f"schedule-{uuid.uuid4().hex[:8]}",
        "schedule_type": "interval",
        "interval_seconds": 60,
        "timezone": "UTC",
        "start_at": T0,
        "target_command": "cmd.test.tick",
        "max_retries": 1,
        "retry_delay": 1,
        "misfire_grace_seconds": 60,
        "max_concurrent": 1,
        "status": "active",
        "created_by": ACTOR.name,
        "created_at": T0,
        "updated_at": T0,
    }
    return _with(Schedule.__table__, values, fields)


def execution_values(schedule_id: uuid.UUID | str, **fields: Any) -> dict[str, Any]:
    """A pending scheduled run of `schedule_id` at T0 (created at its slot, no attempts) plus `fields`."""
    scheduled_for = fields.get("scheduled_for", T0)
    values = {
        "id": uuid.uuid4(),
        "schedule_id": uuid.UUID(str(schedule_id)),
        "scheduled_for": scheduled_for,
        "trigger_type": "scheduled",
        "status": "pending",
        "priority": 5,
        "attempts": 0,
        "attempt_log": [],
        "created_at": scheduled_for,
    }
    return _with(Execution.__table__, values, fields)


async def insert_schedule(conn, **fields: Any) -> dict[str, Any]:
    """Insert one schedule row (see `schedule_values`) and return its values."""
    return await _insert(conn, Schedule.__table__, schedule_values(**fields))


async def insert_execution(conn, schedule_id: uuid.UUID | str, **fields: Any) -> dict[str, Any]:
    """Insert one execution row (see `execution_values`) and return its values."""
    return await _insert(conn, Execution.__table__, execution_values(schedule_id, **fields))


def _with(table: sa.Table, defaults: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(table.c.keys())
    if unknown:
        raise TypeError(f"{table.name} has no column(s) {sorted(unknown)}")
    return {**defaults, **fields}


async def _insert(conn, table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    if isinstance(conn, asyncpg.Connection):
        await _insert_asyncpg(conn, table, values)
    elif isinstance(conn, AsyncEngine):
        async with conn.begin() as transaction:
            await transaction.execute(table.insert().values(values))
    else:
        await conn.execute(table.insert().values(values))
    return values


async def _insert_asyncpg(conn: asyncpg.Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """asyncpg takes JSONB parameters as JSON text; everything else goes as is."""
    columns = list(values)
    params = [json.dumps(values[c]) if isinstance(table.c[c].type, JSONB) else values[c] for c in columns]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", *params)
