"""Health probes: /live (process up), /health, /health/detailed (each dependency with latency, and
the tickers and workers whose heartbeat is live), /ready (503 until PostgreSQL answers and the schema
is at the migrations' head).

The process list is information: an API with no live worker or ticker is still healthy itself (the
worker's and the ticker's own probes, runtime.probes, tell an orchestrator about them)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.tuning import CHECK_TIMEOUT_SECONDS
from services.liveness import prefix_for
from services.presence import live_processes

router = APIRouter(tags=["health"])


async def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        result: dict[str, Any] = {"status": "up"}
        if isinstance(detail, dict):
            result.update(detail)
    except Exception as error:  # a probe reports, it never raises
        result = {"status": "down", "error": f"{type(error).__name__}: {error}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


async def check_database(request: Request) -> dict[str, Any]:
    async def run():
        async with request.app.state.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    return await _timed(run)


async def check_redis(request: Request) -> dict[str, Any]:
    return await _timed(request.app.state.redis.ping)


async def check_nats(request: Request) -> dict[str, Any]:
    async def run():
        nc = await request.app.state.nats.connection()
        await nc.flush(timeout=CHECK_TIMEOUT_SECONDS)
        return {"server": nc.connected_url.netloc if nc.connected_url else None}

    return await _timed(run)


async def check_processes(request: Request) -> dict[str, Any]:
    """The live tickers and workers (services.presence), each with its id and last beat."""

    async def run():
        prefix = prefix_for(request.app.state.settings.BROKER_NAMESPACE)
        found = await live_processes(request.app.state.redis, prefix)
        return {kind + "s": [p.as_dict() for p in found if p.kind == kind] for kind in ("ticker", "worker")}

    return await _timed(run)


async def schema_at_head(request: Request) -> tuple[bool, str | None]:
    async with request.app.state.engine.connect() as conn:
        current = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    return current == request.app.state.migration_head, current


@router.get("/live", summary="Liveness: the process answers")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/health", summary="Basic health")
async def health(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    return {"status": "healthy", "service": settings.SERVICE_NAME, "version": settings.SERVICE_VERSION}


@router.get(
    "/health/detailed", summary="Health of PostgreSQL, Redis and NATS, with latency; the live tickers and workers"
)
async def health_detailed(request: Request) -> JSONResponse:
    database, redis, nats, processes = await asyncio.gather(
        check_database(request), check_redis(request), check_nats(request), check_processes(request)
    )
    checks = {"postgresql": database, "redis": redis, "nats": nats}
    healthy = all(c["status"] == "up" for c in checks.values())
    settings = request.app.state.settings
    body = {
        "status": "healthy" if healthy else "degraded",
        "service": settings.SERVICE_NAME,
        "version": settings.SERVICE_VERSION,
        "checks": checks,
        "processes": processes,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/ready", summary="Readiness: database reachable and migrations at head")
async def ready(request: Request) -> JSONResponse:
    try:
        at_head, current = await asyncio.wait_for(schema_at_head(request), CHECK_TIMEOUT_SECONDS)
    except Exception as error:
        return JSONResponse({"status": "not_ready", "reason": f"database: {type(error).__name__}"}, status_code=503)
    if not at_head:
        reason = f"schema at {current}, migrations head is {request.app.state.migration_head}"
        return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})
