"""The worker process's metrics and probes (runtime.probes): its port, its checks, and the worker
metrics it owns (runtime.metrics), set up in each Dramatiq worker process once it has booted.

Process i of `dramatiq -p N` (0-based, in the order Dramatiq starts them) listens on
WORKER_METRICS_PORT + i. `/live`: the heartbeat thread and every Dramatiq worker thread of the process
run. `/ready`: besides, Redis took a heartbeat within WORKER_DEAD_AFTER_SECONDS (the ticker counts the
process among the live workers).
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import dramatiq

from actors import heartbeat
from core.settings import Settings
from runtime import metrics
from runtime.probes import ProbeServer, serve_probes


def process_index() -> int:
    """This process's place among the worker processes of its `dramatiq` command (0-based): Dramatiq
    starts them first, as its multiprocessing children 1..N. 0 outside such a child."""
    identity = multiprocessing.current_process()._identity
    return identity[0] - 1 if identity else 0


class WorkerProbes(dramatiq.Middleware):
    """Installs the worker metrics and serves them with the probes, in each worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker: dramatiq.Worker | None = None
        self.server: ProbeServer | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.worker = worker
        metrics.install(metrics.WORKER)
        port = self.settings.WORKER_METRICS_PORT
        if port:
            port += process_index()
        self.server = serve_probes("worker", self.settings.METRICS_HOST, port, self.live, self.ready)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def live(self) -> tuple[bool, dict[str, Any]]:
        beat = heartbeat.current()
        threads = list(self.worker.workers) if self.worker is not None else []
        running = sum(1 for thread in threads if thread.is_alive())
        details = {
            "worker_id": beat.worker_id if beat is not None else None,
            "heartbeat_running": beat is not None and beat.running,
            "threads_running": running,
            "threads": len(threads),
        }
        return bool(details["heartbeat_running"] and threads and running == len(threads)), details

    def ready(self) -> tuple[bool, dict[str, Any]]:
        alive, details = self.live()
        beat = heartbeat.current()
        age = time.monotonic() - beat.beaten_at if beat is not None and beat.beaten_at is not None else None
        details["last_beat_age_seconds"] = round(age, 3) if age is not None else None
        fresh = age is not None and age < self.settings.WORKER_DEAD_AFTER_SECONDS
        return alive and fresh, details
