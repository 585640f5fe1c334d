"""The fuzz tests' server: `python -m api` on a free port, over a fresh database migrated to head.

A real uvicorn process (rather than schemathesis's ASGI transport) runs the app's lifespan exactly as
production does, puts a real network timeout on every request, and keeps a hung handler from
blocking the test process. The database is dropped at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.support.database import admin, url_for
from tests.support.fuzz import FuzzServer
from tests.support.harness import ROOT, free_port

READY_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> FuzzServer:
    from runtime.migrations import upgrade

    database = f"sched_fuzz_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    process = None
    try:
        url = url_for(database)
        upgrade(url)
        port = free_port()
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
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
