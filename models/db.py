"""Async engine and session factory for PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.tuning import DATABASE_POOL_RECYCLE_SECONDS, READ_POOL_IDLE_SECONDS


def make_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    """An engine with pre-ping so a restarted PostgreSQL is survived without a restart of ours."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=DATABASE_POOL_RECYCLE_SECONDS,
    )


# PostgreSQL refusing or dropping connections: during a fast shutdown it answers new connections with
# "the database system is shutting down" (57P03) and ends open ones with 57P01.
_UNREACHABLE = (
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def database_unreachable(error: BaseException) -> bool:
    """True for a lost or refused PostgreSQL connection (raw, or wrapped by SQLAlchemy): the request
    may succeed later, unlike a constraint or programming error.

    The wrapped error's causes are followed: SQLAlchemy reports a connection refused during a shutdown
    as a plain DBAPIError whose cause is asyncpg's CannotConnectNowError.
    """
    for _ in range(6):
        if isinstance(error, (OperationalError, InterfaceError)) or (
            isinstance(error, DBAPIError) and error.connection_invalidated
        ):
            return True
        if isinstance(error, _UNREACHABLE):
            return True
        error = getattr(error, "orig", None) or error.__cause__
        if error is None:
            return False
    return False


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def _json_codecs(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Nothing to reset: reads run single statements outside a transaction and change no session state."""


class ReadPool:
    """Plain asyncpg connections for the hottest single-statement reads (GET by id).

    No ORM, no transaction and no pre-ping round trip: one round trip per read. Opened on first use;
    a read on a connection that PostgreSQL closed (a restart) is retried once on a fresh connection.
    """

    RETRYABLE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)

    def __init__(self, database_url: str, size: int = 10) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=0,
                        max_size=self.size,
                        init=_json_codecs,
                        reset=_no_reset,
                        max_inactive_connection_lifetime=READ_POOL_IDLE_SECONDS,
                    )
        return self._pool

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        pool = await self._opened()
        try:
            return await pool.fetchrow(query, *args)
        except self.RETRYABLE:
            return await pool.fetchrow(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._opened()
        try:
            return await pool.fetch(query, *args)
        except self.RETRYABLE:
            return await pool.fetch(query, *args)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
