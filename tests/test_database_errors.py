"""Which PostgreSQL errors mean "unreachable, try later" (503, retry) rather than a bad request.

Against a private PostgreSQL (tests/support/postgres.py), because the case that mattered needs a server
that is shutting down: a smart shutdown waits for its open sessions and meanwhile answers every new
connection "the database system is shutting down", which SQLAlchemy wraps as a plain DBAPIError.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa

from models.db import database_unreachable, make_engine
from runtime.servers import PostgresServer
from tests.support.servers import PrivatePostgres


@pytest.fixture
def server():
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.cleanup()


async def test_a_server_shutting_down_is_unreachable_and_a_constraint_error_is_not(server):
    engine = make_engine(server.database_url("postgres"), pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY)"))
        await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    with pytest.raises(Exception) as duplicate:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    assert not database_unreachable(duplicate.value)
    await engine.dispose()

    session = await asyncpg.connect(server.admin_dsn)  # keeps the smart shutdown waiting
    server.signal(PostgresServer.SHUTDOWN["smart"])  # returns at once
    try:
        engine = make_engine(server.database_url("postgres"), pool_size=1)
        refused = None
        for _ in range(100):  # until the postmaster has taken the signal
            try:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            except Exception as error:
                refused = error
                break
            await asyncio.sleep(0.05)
        assert refused is not None and "shutting down" in str(refused)
        assert database_unreachable(refused)
        await engine.dispose()
    finally:
        await session.close()
