"""The worker process's heartbeat (services.liveness), started before the process takes any message."""

from __future__ import annotations

import dramatiq

from core.settings import Settings
from services.liveness import Heartbeat, prefix_for

_current: Heartbeat | None = None


def current() -> Heartbeat | None:
    """This process's heartbeat, or None when it runs none (an API process, a test)."""
    return _current


def worker_id() -> str | None:
    """This process's heartbeat name, or None when it runs no heartbeat (an API process, a test)."""
    return _current.worker_id if _current is not None else None


class WorkerHeartbeat(dramatiq.Middleware):
    """Beats for the worker of each Dramatiq worker process (started in the child, after the fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.heartbeat: Heartbeat | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        global _current
        self.heartbeat = Heartbeat(
            self.settings.REDIS_URL,
            self.settings.WORKER_HEARTBEAT_SECONDS,
            self.settings.WORKER_DEAD_AFTER_SECONDS,
            prefix_for(self.settings.BROKER_NAMESPACE),
            consumer_id=getattr(broker, "broker_id", None),
        )
        self.heartbeat.start()
        _current = self.heartbeat

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        global _current
        if self.heartbeat is not None:
            self.heartbeat.stop()
        _current = None
