"""Whitelist, payload schemas, body limit, headers, CORS, hidden secrets, and the API key CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from runtime.http import create_app
from runtime.nats_client import NatsConnection
from services.context import Actor
from services.firing import FiringService
from services.locks import ScheduleLocks
from services.publisher import CommandPublisher
from services.schemas import ScheduleCreate
from services.ticking import tick
from tests.support.http import cron_body
from tests.support.servers import nats_url, redis_url
from tests.support.settings import load_settings_in_a_process

ROOT = Path(__file__).resolve().parents[2]


async def client_for(settings):
    app = create_app(settings)
    context = app.router.lifespan_context(app)
    await context.__aenter__()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")
    return http, context


@pytest.fixture
async def whitelisted(settings, clean_db):
    http, context = await client_for(
        settings.model_copy(update={"COMMAND_WHITELIST": "cmd.notification.>,cmd.analytics.*.metrics"})
    )
    yield http
    await http.aclose()
    await context.__aexit__(None, None, None)


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("cmd.notification.send.bulk", True),
        ("cmd.analytics.sales.metrics", True),
        ("cmd.analytics.sales.report", False),
        ("cmd.billing.invoice", False),
        ("cmd.notification", False),
    ],
)
async def test_whitelist_is_enforced_on_save(whitelisted, db, target, allowed):
    response = await whitelisted.post(
        "/api/v1/schedules", json=cron_body(f"w-{uuid.uuid4().hex[:6]}", target_command=target)
    )
    assert (response.status_code == 201) == allowed, response.text
    if not allowed:
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "target_command"
        assert await db.fetchval("SELECT count(*) FROM schedules") == 0


async def test_own_subjects_are_never_targets(client):
    for target in ("cmd.scheduler.schedule.create", "evt.scheduler.execution.failed", "$JS.API.INFO"):
        response = await client.post("/api/v1/schedules", json=cron_body("own", target_command=target))
        assert response.status_code == 422, target


async def test_whitelist_narrowed_after_save_stops_the_schedule_at_fire_time(engine, schedules, service_settings, db):
    now = datetime.now(timezone.utc)
    created = await schedules.create(
        ScheduleCreate(name="was-ok", schedule_type="interval", interval_seconds=60, target_command="cmd.billing.run"),
        Actor("t"),
        now,
    )
    (dispatch,) = (await tick(engine, created.next_run_at, service_settings)).dispatch
    narrowed = service_settings.model_copy(update={"COMMAND_WHITELIST": "cmd.notification.>"})
    client = redis.from_url(redis_url())
    connection = NatsConnection(nats_url())
    received = []
    import nats

    listener = await nats.connect(nats_url())

    async def on_message(msg):
        received.append(msg)

    await listener.subscribe("cmd.billing.run", cb=on_message)
    try:
        firing = FiringService(engine, ScheduleLocks(client, 30), CommandPublisher(connection, 0), narrowed)
        result = await firing.fire([dispatch.execution_id], lambda: datetime.now(timezone.utc), 0.5)
    finally:
        await connection.close()
        await client.aclose()
    await listener.flush()
    await listener.close()
    assert [(o.status, o.reason) for o in result.outcomes] == [("failed", "forbidden")]
    assert received == []
    schedule = await db.fetchrow("SELECT status, status_reason FROM schedules")
    assert schedule["status"] == "disabled" and "COMMAND_WHITELIST" in schedule["status_reason"]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'schedule.disabled'") == 1


async def test_payload_schema_is_checked_on_save(settings, clean_db, db, tmp_path):
    (tmp_path / "notifications.json").write_text(
        json.dumps(
            {
                "pattern": "cmd.notification.>",
                "schema": {
                    "type": "object",
                    "required": ["notification_type"],
                    "properties": {"notification_type": {"enum": ["daily_summary", "alert"]}},
                },
            }
        )
    )
    http, context = await client_for(settings.model_copy(update={"PAYLOAD_SCHEMA_DIR": str(tmp_path)}))
    try:
        bad = await http.post("/api/v1/schedules", json=cron_body("s1", command_payload={"notification_type": "spam"}))
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "command_payload.notification_type"
        missing = await http.post("/api/v1/schedules", json=cron_body("s2", command_payload={}))
        assert missing.status_code == 422 and "required" in missing.json()["errors"][0]["message"]
        other_subject = await http.post(
            "/api/v1/schedules", json=cron_body("s3", target_command="cmd.other.x", command_payload={})
        )
        assert other_subject.status_code == 201
        good = await http.post(
            "/api/v1/schedules", json=cron_body("s4", command_payload={"notification_type": "alert"})
        )
        assert good.status_code == 201
    finally:
        await http.aclose()
        await context.__aexit__(None, None, None)
    assert await db.fetchval("SELECT count(*) FROM schedules") == 2


async def test_body_limit_headers_and_cors(settings, clean_db):
    http, context = await client_for(settings.model_copy(update={"MAX_BODY_BYTES": 2048}))
    try:
        big = await http.post(
            "/api/v1/schedules", content=b"{" + b" " * 4096 + b"}", headers={"content-type": "application/json"}
        )
        assert big.status_code == 413 and big.json()["errors"][0]["field"] == "body"

        async def chunks():  # no Content-Length: the limit still holds
            for _ in range(4):
                yield b" " * 1024

        streamed = await http.post("/api/v1/schedules", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        page = await http.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        api = await http.get("/health", headers={"Origin": "https://evil.example"})
        assert api.headers["x-content-type-options"] == "nosniff" and api.headers["x-frame-options"] == "DENY"
        assert "access-control-allow-origin" not in api.headers
    finally:
        await http.aclose()
        await context.__aexit__(None, None, None)
    http, context = await client_for(settings.model_copy(update={"CORS_ORIGINS": "https://admin.example"}))
    try:
        allowed = await http.get("/health", headers={"Origin": "https://admin.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://admin.example"
        other = await http.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    finally:
        await http.aclose()
        await context.__aexit__(None, None, None)


def test_configuration_errors_never_print_secrets():
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": "mysql://admin:hunter2@db/x",
        "NATS_URL": "http://u:s3cret@n",
    }
    result = load_settings_in_a_process(env)
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr and "NATS_URL" in result.stderr
    assert "hunter2" not in result.stderr and "s3cret" not in result.stderr


def test_api_key_cli_creates_lists_and_revokes(database_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "runtime.apikeys", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = cli("create", "--principal", f"svc-{uuid.uuid4().hex[:6]}", "--role", "writer")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["secret"].startswith(f"sk_{key['prefix']}_")
    listed = cli("list")
    assert key["prefix"] in listed.stdout and key["secret"] not in listed.stdout
    revoked = cli("revoke", key["prefix"])
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    assert cli("create", "--principal", "x", "--role", "root").returncode != 0
