"""Fixtures for service-level tests: an engine and services on the real test database."""

from __future__ import annotations

import pytest

from models.db import make_engine, make_session_factory
from services.events import RecordingEvents
from services.lifecycle import LifecycleService


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
