"""`python -m runtime.launcher`: run API, ticker, worker and housekeeping together (what `make run` does).

Every child gets the same environment plus a shared PROMETHEUS_MULTIPROC_DIR (emptied at start) so
the API's /metrics covers them all. A child that exits is restarted after a pause; Ctrl-C or SIGTERM
stops them all (SIGTERM, then SIGKILL after a grace period) and leaves no process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
STOP_GRACE_SECONDS = 10
RESTART_PAUSE_SECONDS = 2


def commands(worker_processes: int, worker_threads: int) -> dict[str, list[str]]:
    return {
        "api": [sys.executable, "-m", "api"],
        "ticker": [sys.executable, "-m", "ticker"],
        "worker": [str(VENV_BIN / "dramatiq"), "actors", "housekeeping", "-p", str(worker_processes), "-t", str(worker_threads)],
        "housekeeping": [str(VENV_BIN / "periodiq"), "actors", "housekeeping"],
    }


def child_environment(metrics_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # The Redis consumer polls an empty queue with backoff up to this many ms (Dramatiq's default is
    # 1000, i.e. up to a second of added latency per fire).
    env.setdefault("dramatiq_worker_timeout", "20")
    return env


def main() -> None:
    metrics_dir = ROOT / ".data" / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = child_environment(metrics_dir)
    specs = commands(int(os.environ.get("WORKER_PROCESSES", "1")), int(os.environ.get("WORKER_THREADS", "8")))
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, command in specs.items():
        children[name] = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    port = env.get("API_PORT", "8008")
    print(f"scheduler running: API and docs at http://localhost:{port}/docs, metrics at /metrics (Ctrl-C stops)", flush=True)
    try:
        while not stopping:
            time.sleep(0.5)
            for name, process in list(children.items()):
                if process.poll() is not None and not stopping:
                    print(f"{name} exited with {process.returncode}; restarting", file=sys.stderr, flush=True)
                    time.sleep(RESTART_PAUSE_SECONDS)
                    children[name] = subprocess.Popen(specs[name], cwd=ROOT, env=env, start_new_session=True)
    finally:
        for process in children.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in children.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


if __name__ == "__main__":
    main()
