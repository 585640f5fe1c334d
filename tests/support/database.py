"""The test PostgreSQL server: its admin DSN, URLs for databases on it, and small query helpers."""

from __future__ import annotations

import os

import asyncpg
import sqlalchemy as sa

ADMIN_DSN = os.environ.get("TEST_ADMIN_DSN", "postgresql://postgres@localhost:5432/postgres")


def url_for(database: str) -> str:
    """The SQLAlchemy (asyncpg) URL of `database` on the admin DSN's server."""
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def admin(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) over the admin DSN."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def rows(engine, sql: str, **params):
    """All rows of one query on `engine`."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).all()
