"""Shared fixtures: one real PostgreSQL database per test run, emptied before each test that uses it.

The suite's servers are found or started before the first test (tests/support/servers.py).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timezone

import asyncpg
import httpx
import pytest

from core.settings import Settings
from models.db import make_engine, make_session_factory
from services.events import RecordingEvents
from services.lifecycle import LifecycleService
from tests.support import servers
from tests.support.database import RESET_TABLES, admin, url_for

TEST_DB = f"sched_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
SERVER_SOURCES = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    """Find or start the suite's PostgreSQL, Redis and NATS (tests/support/servers.py) before any test."""
    sources = servers.start_suite_servers()
    config.stash[SERVER_SOURCES] = sources


def pytest_unconfigure(config: pytest.Config) -> None:
    servers.stop_suite_servers()


def pytest_report_header(config: pytest.Config) -> list[str]:
    sources = config.stash.get(SERVER_SOURCES, {})
    return [f"servers: {', '.join(f'{name} {source}' for name, source in sources.items())}"]


@pytest.fixture(scope="session")
def database_url() -> str:
    """A fresh database migrated to head, dropped at the end of the run."""
    from runtime.migrations import upgrade

    asyncio.run(admin(f'CREATE DATABASE "{TEST_DB}"'))
    url = url_for(TEST_DB)
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))


@pytest.fixture
async def clean_db(database_url: str) -> str:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(RESET_TABLES)
    finally:
        await conn.close()
    return database_url


@pytest.fixture
async def db(clean_db: str):
    """A raw asyncpg connection to the test database, for asserting on stored state."""
    conn = await asyncpg.connect(clean_db.replace("+asyncpg", ""))
    yield conn
    await conn.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        DATABASE_URL=database_url, MAX_SCHEDULES_PER_CREATOR=5, AUTH_ENABLED=False, RATE_LIMIT_WRITES="", _env_file=None
    )


class FrozenClock:
    """A settable UTC clock for the API's `utc_now` dependency."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture
async def client(settings: Settings, clean_db: str, clock: FrozenClock):
    """An HTTP client bound in-process to a fresh app (lifespan run), with the frozen clock."""
    from api.deps import utc_now
    from runtime.http import create_app

    app = create_app(settings)
    app.dependency_overrides[utc_now] = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


# Service-level fixtures: an engine and the services on the real test database.


@pytest.fixture
async def engine(clean_db):
    engine = make_engine(clean_db, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def service_settings(settings):
    return settings.model_copy(update={"MAX_SCHEDULES_PER_CREATOR": 100_000})


@pytest.fixture
def schedules(engine, service_settings, events) -> LifecycleService:
    return LifecycleService(make_session_factory(engine), service_settings, events)
