"""The HTTP application (port 8008), composed from the doors: the REST routes, the GraphQL router at
/graphql, the dashboards, the health probes and /metrics, plus the NATS command listener started in
its lifespan. This module owns the wiring (services, connections, middleware order); the doors own
their routes and translations, and neither imports the other."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import (
    health,
    metrics_route,
    nats_commands,
    routes_audit,
    routes_calendars,
    routes_executions,
    routes_schedules,
)
from api.dashboard import mount_dashboards
from api.docs import install_api_docs
from api.hardening import install_hardening
from api.problems import install_problem_handlers
from core.settings import Settings
from core.tuning import NATS_LISTENER_RETRY_SECONDS, REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS
from gql.schema import graphql_router
from models.db import ReadPool, make_engine, make_session_factory
from runtime import metrics, tracing
from runtime.access_log import AccessLog, call_and_time
from runtime.migrations import migration_head
from runtime.nats_client import NatsConnection
from services.audit import AuditService
from services.auth import ApiKeyService
from services.backfills import BackfillService
from services.calendars import CalendarService
from services.events import NatsEvents
from services.executions import ExecutionService
from services.failures import FinalFailures
from services.payload_schemas import PayloadSchemas
from services.publisher import CommandPublisher
from services.ratelimit import WriteLimiter

CORRELATION_HEADER = "X-Correlation-ID"
# The methods the HTTP metrics name; any other is counted as OTHER, so that a client cannot add series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "(unmatched)"
_CORRELATION_KEY = CORRELATION_HEADER.lower().encode()
log = logging.getLogger("api")


async def _serve_nats_commands(app: FastAPI) -> None:
    """Subscribe to cmd.scheduler.{schedule,execution}.* as soon as NATS answers (retrying while it does not)."""
    while True:
        try:
            await nats_commands.subscribe(
                app.state.nats, app.state.schedules, app.state.api_keys, app.state.settings.AUTH_ENABLED
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("NATS command listener not ready", extra={"action": "nats.listener_retry", "error": str(error)})
            await asyncio.sleep(NATS_LISTENER_RETRY_SECONDS)


class CorrelationId:
    """Take X-Correlation-ID from the request (or make one), keep it in `request.state.correlation_id`,
    bind it to the request's log lines and echo it on the response. A pure ASGI middleware: no task or
    stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = ""
        for key, value in scope["headers"]:
            if key == _CORRELATION_KEY:
                incoming = value.decode("latin-1")
                break
        correlation = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation
        encoded = correlation.encode("latin-1")

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _CORRELATION_KEY]
                headers.append((_CORRELATION_KEY, encoded))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation):
            await self.app(scope, receive, with_header)


class RequestMetrics:
    """Count and time each HTTP request (`http_requests_total`, `http_request_duration_seconds`) by the
    route template the router matched (`/api/v1/schedules/{schedule_id}`, a mount's prefix such as
    `/dramatiq`, or `(unmatched)`), the method and the status.

    A pure ASGI middleware, outermost, so the time covers every other middleware and the whole
    response body (seconds, monotonic clock). Per request it reads the clock twice and looks up one
    counter and one histogram child in dicts; each label set's children are created once. A request
    whose handler raises is counted with status 500. WebSocket and lifespan scopes pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        await call_and_time(
            self.app, scope, receive, send, lambda status, started, ended: self._observe(scope, status, ended - started)
        )

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[(route, method, status)] = metrics.HTTP_REQUESTS.labels(route, method, str(status))
        counter.inc()
        timer = self._timers.get((route, method))
        if timer is None:
            timer = self._timers[(route, method)] = metrics.HTTP_DURATION.labels(route, method)
        timer.observe(seconds)


def _lifecycle(settings: Settings, engine, sessions, reads: ReadPool, nats: NatsConnection) -> BackfillService:
    """The service every door calls, with its rate limiter, payload schemas, events and dead letters."""
    limiter = (
        WriteLimiter(settings.REDIS_URL, settings.RATE_LIMIT_WRITES) if settings.RATE_LIMIT_WRITES.strip() else None
    )
    schemas = PayloadSchemas.load(settings.PAYLOAD_SCHEMA_DIR) if settings.PAYLOAD_SCHEMA_DIR else None
    failures = FinalFailures(engine, CommandPublisher(nats, settings.NATS_STREAM_CACHE_SECONDS), settings)
    return BackfillService(
        sessions,
        settings,
        NatsEvents(nats),
        limiter,
        schemas,
        reads,
        failures=failures,
        report_observer=metrics.observe_report,
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the app; connections open in the lifespan so importing this module does no I/O."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE)
        sessions = make_session_factory(engine)
        reads = ReadPool(settings.DATABASE_URL, size=settings.API_READ_POOL_SIZE)
        app.state.settings = settings
        app.state.engine = engine
        app.state.nats = NatsConnection.from_settings(settings, name=f"{settings.SERVICE_NAME}-api")
        app.state.schedules = _lifecycle(settings, engine, sessions, reads, app.state.nats)
        app.state.api_keys = ApiKeyService(sessions, settings.API_KEY_CACHE_SECONDS)
        app.state.executions = ExecutionService(sessions)
        app.state.audit = AuditService(sessions)
        app.state.calendars = CalendarService(sessions)
        app.state.redis = redis.from_url(
            settings.REDIS_URL,
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        )
        app.state.migration_head = migration_head()
        listener = asyncio.create_task(_serve_nats_commands(app))
        try:
            yield
        finally:
            listener.cancel()
            await app.state.nats.close()
            await app.state.redis.aclose()
            await engine.dispose()
            await reads.close()

    app = FastAPI(
        title="Scheduler service",
        version=settings.SERVICE_VERSION,
        description="Schedules (cron, interval, once, immediate) that publish commands to NATS, exactly once per slot.",
        lifespan=lifespan,
        docs_url=None,  # api/docs.py serves /docs from local files
        redoc_url=None,  # ReDoc would load from a CDN; /docs covers the same description
    )

    metrics.install(metrics.API)
    app.add_middleware(CorrelationId)
    if tracing.enabled():
        app.add_middleware(tracing.ServerSpans)
    install_problem_handlers(app)
    install_hardening(app, settings)
    app.add_middleware(AccessLog)  # outside the others but metrics: every response, with its correlation id
    _include_routes(app, settings)
    app.add_middleware(RequestMetrics)  # added last: the outermost of the app's middleware
    return app


def _include_routes(app: FastAPI, settings: Settings) -> None:
    """REST, GraphQL, health, metrics, the dashboards and /docs."""
    app.include_router(routes_schedules.router)
    app.include_router(routes_executions.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_calendars.router)
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    mount_dashboards(app, settings)
    install_api_docs(app)
