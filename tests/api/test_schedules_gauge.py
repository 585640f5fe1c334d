"""The schedules gauge of /metrics (api.metrics_route): counted by type and status, the count reused
within SCHEDULES_GAUGE_CACHE_SECONDS and taken again after it."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics_route import ScheduleCounts
from core.tuning import SCHEDULES_GAUGE_CACHE_SECONDS
from runtime.http import create_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def app_and_clock(settings, clean_db):
    app = create_app(settings)
    clock = Clock()
    async with app.router.lifespan_context(app):
        app.state.schedule_counts = ScheduleCounts(clock)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, clock


async def gauge(http: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    text = (await http.get("/metrics")).text
    return {
        (s.labels["type"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "schedules_total"
        for s in family.samples
    }


async def create_cron(http: httpx.AsyncClient, name: str) -> dict:
    body = {"name": name, "schedule_type": "cron", "cron_expression": "0 3 * * *", "target_command": "cmd.test.gauge"}
    response = await http.post("/api/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_count_is_reused_within_the_cache_time_and_taken_again_after(app_and_clock):
    http, clock = app_and_clock
    first = await create_cron(http, "gauge-1")
    assert await gauge(http) == {("cron", "active"): 1}

    await create_cron(http, "gauge-2")
    assert (await http.post(f"/api/v1/schedules/{first['id']}/pause")).status_code == 200
    clock.now += SCHEDULES_GAUGE_CACHE_SECONDS / 2
    assert await gauge(http) == {("cron", "active"): 1}

    clock.now += SCHEDULES_GAUGE_CACHE_SECONDS / 2
    assert await gauge(http) == {("cron", "active"): 1, ("cron", "paused"): 1}
