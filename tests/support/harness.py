"""Run the service's real processes (API, ticker, worker) against a private database for a test.

Each stack gets its own PostgreSQL database (created and migrated), its own Dramatiq namespace in
Redis (deleted afterwards) and unique NATS subjects chosen by the test, so tests never see each
other's work and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import redis

from runtime.servers import free_port
from tests.support import servers
from tests.support.database import url_for

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


async def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Async twin of wait_until; `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class Stack:
    """The service's processes for one test. Use `start("ticker")`, `kill("worker-1")`, `stop()`."""

    def __init__(self, redis_url: str | None = None, nats_url: str | None = None, **settings: str) -> None:
        redis_url = redis_url or servers.redis_url()
        nats_url = nats_url or servers.nats_url()
        self.database = f"sched_stack_{uuid.uuid4().hex[:10]}"
        self.database_url = url_for(self.database)
        self.namespace = f"scheduler-test-{uuid.uuid4().hex[:10]}"
        self.redis_url = redis_url
        self.nats_url = nats_url
        self.api_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.worker_threads = 16
        self.worker_processes = 1
        self.logs = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / self.database
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "NATS_URL": nats_url,
            "BROKER_NAMESPACE": self.namespace,
            "API_PORT": str(self.api_port),
            "dramatiq_worker_timeout": "20",
            "AUTH_ENABLED": "false",
            "RATE_LIMIT_WRITES": "",
            "LOG_LEVEL": "INFO",
            # No metrics and probe servers unless a test asks for them: stacks run side by side.
            "WORKER_METRICS_PORT": "0",
            "TICKER_METRICS_PORT": "0",
            **settings,
        }

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def create_database(self) -> None:
        async def create():
            conn = await asyncpg.connect(servers.admin_dsn())
            await conn.execute(f'CREATE DATABASE "{self.database}"')
            await conn.close()

        asyncio.run(create())
        from runtime.migrations import upgrade

        upgrade(self.database_url)

    def command(self, kind: str) -> list[str]:
        return {
            "api": [sys.executable, "-m", "api"],
            "ticker": [sys.executable, "-m", "ticker"],
            "worker": [
                str(VENV_BIN / "dramatiq"),
                "actors",
                "-p",
                str(self.worker_processes),
                "-t",
                str(self.worker_threads),
            ],
        }[kind]

    def start(self, name: str, kind: str | None = None, port: int | None = None) -> subprocess.Popen:
        """Start a process; a second API needs its own `port`."""
        kind = kind or name.split("-")[0]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        env = {**self.env, "API_PORT": str(port)} if port else self.env
        process = subprocess.Popen(
            self.command(kind), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        if kind == "api":
            url = f"http://127.0.0.1:{port}" if port else self.api
            wait_until(lambda: self._api_ready(url), 30, message="API ready")
        return process

    def _api_ready(self, url: str) -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Dramatiq worker has children)."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        if sig in (signal.SIGKILL, signal.SIGTERM):
            process.wait(timeout=30)

    def stop(self) -> None:
        for _name, process in self.processes.items():
            if process.poll() is None:
                # Signal the group leader only: Dramatiq's parent forwards SIGTERM to its workers,
                # and a second SIGTERM makes a worker hang until the SIGKILL fallback below.
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def cleanup(self) -> None:
        self.stop()
        try:
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            keys = list(client.scan_iter(f"{self.namespace}*"))
            if keys:
                client.delete(*keys)
            client.close()
        except redis.RedisError:
            pass

        async def drop():
            conn = await asyncpg.connect(servers.admin_dsn())
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await conn.close()

        asyncio.run(drop())

    def __enter__(self) -> Stack:
        self.create_database()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def unique_subject(prefix: str = "cmd.test") -> str:
    """A subject no other test uses: `cmd.test.<hex>`."""
    return f"{prefix}.{uuid.uuid4().hex[:12]}"
