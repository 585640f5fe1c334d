"""The test PostgreSQL server: its admin DSN, URLs for databases on it, and small query helpers."""

from __future__ import annotations

import asyncpg
import sqlalchemy as sa

from tests.support.servers import admin_dsn

# Empties every table a test writes (api_keys aside: the fixtures that issue keys own them).
RESET_TABLES = "TRUNCATE executions, audit_log, schedules, calendars CASCADE"


def url_for(database: str) -> str:
    """The SQLAlchemy (asyncpg) URL of `database` on the admin DSN's server."""
    base = admin_dsn().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def admin(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) over the admin DSN."""
    conn = await asyncpg.connect(admin_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def rows(engine, sql: str, **params):
    """All rows of one query on `engine`."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).all()
