"""An app with authentication on, and one API key per role (created through the service)."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from models.db import make_engine, make_session_factory
from runtime.http import create_app
from services.auth import ApiKeyService

PRINCIPALS = {
    "reader": ("rita", "reader"),
    "owner": ("wendy", "writer"),
    "other": ("otto", "writer"),
    "admin": ("ada", "admin"),
}


@pytest.fixture
async def keys(clean_db) -> dict[str, str]:
    engine = make_engine(clean_db, pool_size=1)
    service = ApiKeyService(make_session_factory(engine), 0)
    secrets = {}
    for who, (name, role) in PRINCIPALS.items():
        _, secrets[who] = await service.create(name, role, datetime.now(timezone.utc))
    await engine.dispose()
    return secrets


@pytest.fixture
def auth_settings(settings):
    return settings.model_copy(
        update={"AUTH_ENABLED": True, "API_KEY_CACHE_SECONDS": 0, "MAX_SCHEDULES_PER_CREATOR": 1000}
    )


@pytest.fixture
async def secure_client(auth_settings, keys):
    app = create_app(auth_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
