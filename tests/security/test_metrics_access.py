"""/metrics follows METRICS_PUBLIC: open when set; otherwise, with authentication on, any valid API
key (whatever its role) reads it and a request without one is refused with 401."""

from __future__ import annotations

import httpx
import pytest

from runtime.http import create_app
from tests.support.auth import bearer


@pytest.fixture
async def private_metrics(auth_settings, keys):
    app = create_app(auth_settings.model_copy(update={"METRICS_PUBLIC": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_metrics_are_public_by_default(secure_client, auth_settings):
    assert auth_settings.METRICS_PUBLIC is True
    response = await secure_client.get("/metrics")
    assert response.status_code == 200 and "schedules_total" in response.text


async def test_private_metrics_refuse_a_request_without_a_key(private_metrics):
    response = await private_metrics.get("/metrics")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_private_metrics_refuse_an_invalid_key(private_metrics):
    response = await private_metrics.get("/metrics", headers={"Authorization": "Bearer sk_00000000_nope"})
    assert response.status_code == 401


@pytest.mark.parametrize("who", ["reader", "owner", "admin"])
async def test_private_metrics_answer_any_role(private_metrics, keys, who):
    response = await private_metrics.get("/metrics", headers=bearer(keys, who))
    assert response.status_code == 200, response.text
    assert "schedules_total" in response.text


async def test_private_metrics_take_the_key_from_x_api_key(private_metrics, keys):
    assert (await private_metrics.get("/metrics", headers={"X-API-Key": keys["reader"]})).status_code == 200


async def test_private_metrics_are_open_when_authentication_is_off(settings, clean_db):
    app = create_app(settings.model_copy(update={"AUTH_ENABLED": False, "METRICS_PUBLIC": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/metrics")).status_code == 200
