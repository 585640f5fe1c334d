"""The fuzz tests' server: `python -m api` on a free port, over a fresh database migrated to head.

A real uvicorn process (rather than schemathesis's ASGI transport) runs the app's lifespan exactly as
production does, puts a real network timeout on every request, and keeps a hung handler from
blocking the test process. The database is dropped at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import ADMIN_DSN, _url_for

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60
SCHEDULE_BODIES = [
    {
        "name": "fuzz-cron",
        "schedule_type": "cron",
        "cron_expression": "*/5 * * * *",
        "timezone": "Europe/Paris",
        "target_command": "cmd.fuzz.cron",
        "command_payload": {"n": 1},
        "tags": ["fuzz", "cron"],
    },
    {
        "name": "fuzz-interval",
        "schedule_type": "interval",
        "interval_seconds": 600,
        "target_command": "cmd.fuzz.interval",
        "command_payload": {},
    },
    {"name": "fuzz-immediate", "schedule_type": "immediate", "target_command": "cmd.fuzz.now", "command_payload": {}},
    {
        "name": "fuzz-cron-2",
        "schedule_type": "cron",
        "cron_expression": "0 3 * * 1-5",
        "target_command": "cmd.fuzz.weekday",
        "command_payload": {"a": [1, 2]},
    },
]


@dataclass(frozen=True)
class FuzzServer:
    base_url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def seed_data(base_url: str, prefix: str) -> tuple[list[str], list[str]]:
    """Schedules (and manual executions of them) for the fuzzer to point path parameters at."""
    schedule_ids, execution_ids = [], []
    with httpx.Client(base_url=base_url, timeout=10, headers={"X-Created-By": "fuzzer"}) as http:
        for copy in range(3):
            for body in SCHEDULE_BODIES:
                created = http.post("/api/v1/schedules", json={**body, "name": f"{prefix}-{body['name']}-{copy}"})
                assert created.status_code == 201, created.text
                schedule_ids.append(created.json()["id"])
        for schedule_id in schedule_ids[:4]:
            triggered = http.post(f"/api/v1/schedules/{schedule_id}/trigger", json={"override_payload": {"x": 1}})
            assert triggered.status_code == 200, triggered.text
            execution_ids.append(triggered.json()["execution_id"])
    return schedule_ids, execution_ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> FuzzServer:
    from runtime.migrations import upgrade

    database = f"sched_fuzz_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    process = None
    try:
        url = _url_for(database)
        upgrade(url)
        port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "AUTH_ENABLED": "false",
            "RATE_LIMIT_WRITES": "",
            "MAX_SCHEDULES_PER_CREATOR": "1000000",
            "LOG_LEVEL": "WARNING",
        }
        # A file, not a pipe: a pipe nobody reads fills up and then blocks the server's logging.
        log_path = tmp_path_factory.mktemp("fuzz") / "api.log"
        log_file = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        log_file.close()
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            try:
                if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, f"the API exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"the API did not become ready:\n{log_path.read_text()}"
            time.sleep(0.2)
        yield FuzzServer(base_url, log_path, process)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
