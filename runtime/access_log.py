"""The HTTP access log: one line per request, as a pure ASGI middleware (no task or stream per request).

This module owns the access line (logger `api.access`, action `http.request`): `method`, `path` (no
query string), `status`, `duration_ms` (until the response ends, or the app fails) and the request's
`correlation_id` (which `runtime.http.CorrelationId` keeps in the scope's state). A request that
fails before answering is logged with status 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("api.access")


async def call_and_time(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, done: Callable[[int, float, float], None]
) -> None:
    """Run `app` on an HTTP request, then `done(status, started, ended)` (perf_counter seconds), also when
    the app fails; a request that fails before answering has status 500."""
    started = time.perf_counter()
    status = 500

    async def keep_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, keep_status)
    finally:
        done(status, started, time.perf_counter())


def access_fields(scope: Scope, status: int, started: float, now: float) -> dict:
    """The fields of one access line (`started`, `now`: perf_counter readings in seconds)."""
    return {
        "action": "http.request",
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": status,
        "duration_ms": round((now - started) * 1000, 2),
        "correlation_id": scope.get("state", {}).get("correlation_id"),
    }


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        def write_line(status: int, started: float, ended: float) -> None:
            fields = access_fields(scope, status, started, ended)
            log.info("%s %s %s", fields["method"], fields["path"], status, extra=fields)

        await call_and_time(self.app, scope, receive, send, write_line)
