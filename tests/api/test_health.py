"""Health probes against the real PostgreSQL, Redis and NATS."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from core.settings import Settings
from runtime.http import create_app
from services.liveness import Heartbeat, prefix_for
from services.presence import TickerHeartbeat
from tests.support.database import url_for
from tests.support.servers import admin_dsn


async def test_probes_report_each_dependency(client):
    assert (await client.get("/live")).json() == {"status": "alive"}
    assert (await client.get("/health")).json()["status"] == "healthy"
    detailed = await client.get("/health/detailed")
    assert detailed.status_code == 200, detailed.text
    checks = detailed.json()["checks"]
    assert set(checks) == {"postgresql", "redis", "nats"}
    assert all(c["status"] == "up" and c["latency_ms"] >= 0 for c in checks.values())
    assert (await client.get("/ready")).status_code == 200


async def test_not_ready_until_migrated_and_degraded_without_redis():
    name = "sched_unmigrated_probe"
    admin = await asyncpg.connect(admin_dsn())
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(DATABASE_URL=url_for(name), REDIS_URL="redis://127.0.0.1:1/0", _env_file=None)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                ready = await http.get("/ready")
                assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
                detailed = await http.get("/health/detailed")
                assert detailed.status_code == 503
                assert detailed.json()["checks"]["redis"]["status"] == "down"
                assert detailed.json()["checks"]["postgresql"]["status"] == "up"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_detailed_health_lists_the_live_tickers_and_workers_with_their_last_beat(settings, clean_db):
    namespace = f"test-health-{uuid.uuid4().hex[:8]}"
    prefix = prefix_for(namespace)
    ticker = TickerHeartbeat(settings.REDIS_URL, 0.2, 1.0, prefix)
    worker = Heartbeat(settings.REDIS_URL, 0.2, 1.0, prefix)
    ticker_id, worker_id = ticker.start(), worker.start()
    app = create_app(settings.model_copy(update={"BROKER_NAMESPACE": namespace}))
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                processes = (await http.get("/health/detailed")).json()["processes"]
                assert processes["status"] == "up"
                assert [t["id"] for t in processes["tickers"]] == [ticker_id]
                assert [w["id"] for w in processes["workers"]] == [worker_id]
                for process in processes["tickers"] + processes["workers"]:
                    assert 0 <= process["age_seconds"] < 1.0 and process["last_beat"].endswith("+00:00")
                ticker.stop()
                processes = (await http.get("/health/detailed")).json()["processes"]
                assert processes["tickers"] == [] and [w["id"] for w in processes["workers"]] == [worker_id]
    finally:
        ticker.stop()
        worker.stop()
