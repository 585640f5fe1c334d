"""`/metrics`: Prometheus text for all processes (multiprocess directory) plus schedule counts.

Without PROMETHEUS_MULTIPROC_DIR the API serves its own metrics only (the HTTP metrics; the worker and
the ticker serve theirs on their own ports, runtime.probes). `schedules_total` counts schedules by type
and status with one GROUP BY, at most once per SCHEDULES_GAUGE_CACHE_SECONDS per API process: scrapes
in between reuse the count (the gauge may lag the table by that long).

With METRICS_PUBLIC set, /metrics is open; otherwise it answers only to a valid API key of any role
when authentication is on (401 without one).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from api.deps import actor_from
from core.states import ScheduleStatus
from core.tuning import SCHEDULES_GAUGE_CACHE_SECONDS

router = APIRouter(tags=["health"])
_reader = actor_from("read")
_COUNT = sa.text(
    f"SELECT schedule_type, status, count(*) FROM schedules WHERE status <> '{ScheduleStatus.DELETED}' GROUP BY 1, 2"
)


async def metrics_access(request: Request) -> None:
    """Let the scrape through when METRICS_PUBLIC is set, else resolve the caller as a reader."""
    if not request.app.state.settings.METRICS_PUBLIC:
        await _reader(request)


class _Snapshot:
    """A collector over values read just before the scrape (collectors are synchronous)."""

    def __init__(self, counts: list[tuple[str, str, int]]) -> None:
        self.counts = counts

    def collect(self):
        family = GaugeMetricFamily("schedules_total", "Schedules by type and status", labels=["type", "status"])
        for schedule_type, status, count in self.counts:
            family.add_metric([schedule_type, status], count)
        yield family


class ScheduleCounts:
    """The last count of schedules by type and status, reused for SCHEDULES_GAUGE_CACHE_SECONDS
    (monotonic clock); concurrent scrapes of a stale count wait for one query."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: list[tuple[str, str, int]] = []
        self.taken_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self.taken_at is not None and self.clock() - self.taken_at < SCHEDULES_GAUGE_CACHE_SECONDS

    async def get(self, engine) -> list[tuple[str, str, int]]:
        if self._fresh():
            return self.counts
        async with self._lock:
            if not self._fresh():
                async with engine.connect() as conn:
                    self.counts = [tuple(row) for row in (await conn.execute(_COUNT)).all()]
                self.taken_at = self.clock()
        return self.counts


def _counts_of(request: Request) -> ScheduleCounts:
    counts = getattr(request.app.state, "schedule_counts", None)
    if counts is None:
        counts = request.app.state.schedule_counts = ScheduleCounts()
    return counts


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[Depends(metrics_access)])
async def metrics(request: Request) -> Response:
    rows = await _counts_of(request).get(request.app.state.engine)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        body = generate_latest(processes)
    else:  # a single process: its own registry
        body = generate_latest(REGISTRY)
    counts = CollectorRegistry()
    counts.register(_Snapshot(rows))
    return Response(body + generate_latest(counts), media_type=CONTENT_TYPE_LATEST)
