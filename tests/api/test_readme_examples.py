"""The README's curl examples, run verbatim (but for the port) against a real `python -m api` process.

This also exercises what `make run` does: `python -m runtime.migrate` creates a missing database and
upgrades it, then `python -m api` serves it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.database import url_for
from tests.support.servers import admin_dsn

ROOT = Path(__file__).resolve().parents[2]


def readme_curl_commands() -> list[str]:
    """Every ```bash block of the README that starts with `curl`, in order."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [b.strip() for b in blocks if b.lstrip().startswith("curl")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_api():
    """A fresh database created by runtime.migrate, and the API serving it on a free port."""
    database = f"sched_readme_{uuid.uuid4().hex[:8]}"
    port = free_port()
    # As `make run` does: the local development run has no API keys.
    env = {
        **os.environ,
        "DATABASE_URL": url_for(database),
        "API_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "AUTH_ENABLED": "false",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "runtime.migrate"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "created database" in migrate.stdout
    process = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "API did not become ready"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        import asyncio

        async def drop():
            conn = await asyncpg.connect(admin_dsn())
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await conn.close()

        asyncio.run(drop())


def run_curl(command: str, port: int, env: dict[str, str]) -> tuple[int, dict]:
    command = command.replace("localhost:8008", f"127.0.0.1:{port}")
    completed = subprocess.run(
        ["bash", "-c", command + " -s -w '\\n%{http_code}'"], capture_output=True, text=True, env=env, timeout=30
    )
    assert completed.returncode == 0, completed.stderr
    body, _, status = completed.stdout.rpartition("\n")
    return int(status), json.loads(body) if body.strip() else {}


def test_readme_curl_examples_answer_as_documented(served_api: int) -> None:
    commands = readme_curl_commands()
    assert len(commands) == 4, "README examples: daily cron, hourly interval, bulk pause, trigger"
    env = dict(os.environ)

    status, daily = run_curl(commands[0], served_api, env)
    assert status == 201, daily
    assert daily["schedule_type"] == "cron" and daily["timezone"] == "America/New_York"
    assert daily["next_run_at_local"].endswith(("09:00:00-05:00", "09:00:00-04:00"))
    assert daily["created_by"] == "notification-service"

    status, hourly = run_curl(commands[1], served_api, env)
    assert status == 201, hourly
    assert hourly["interval_seconds"] == 3600 and hourly["max_retries"] == 5

    status, bulk = run_curl(commands[2], served_api, env)
    assert status == 200, bulk
    assert bulk["operation"] == "pause" and bulk["failed"] == 3
    assert {r["error"]["code"] for r in bulk["results"]} == {"invalid_id"}

    env["SCHEDULE_ID"] = daily["id"]
    status, triggered = run_curl(commands[3], served_api, env)
    assert status == 200, triggered
    execution = httpx.get(f"http://127.0.0.1:{served_api}/api/v1/executions/{triggered['execution_id']}").json()
    assert execution["trigger_type"] == "manual" and execution["triggered_by"] == "admin"
