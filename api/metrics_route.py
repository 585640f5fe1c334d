"""`/metrics`: Prometheus text for all processes (multiprocess directory) plus schedule counts.

With METRICS_PUBLIC set, /metrics is open; otherwise it answers only to a valid API key of any role
when authentication is on (401 without one).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from api.deps import actor_from
from core.states import ScheduleStatus

router = APIRouter(tags=["health"])
_reader = actor_from("read")


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


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[Depends(metrics_access)])
async def metrics(request: Request) -> Response:
    async with request.app.state.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT schedule_type, status, count(*) FROM schedules "
                    f"WHERE status <> '{ScheduleStatus.DELETED}' GROUP BY 1, 2"
                )
            )
        ).all()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        body = generate_latest(processes)
    else:  # a single process: its own registry
        body = generate_latest(REGISTRY)
    counts = CollectorRegistry()
    counts.register(_Snapshot([tuple(r) for r in rows]))
    return Response(body + generate_latest(counts), media_type=CONTENT_TYPE_LATEST)
