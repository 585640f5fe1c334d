"""HTTP hardening: a request body size limit, security headers, and CORS only when configured."""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import FieldError
from core.settings import Settings
from services.problems import PROBLEM_MEDIA_TYPE, problem

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# GraphiQL (/graphql) and Swagger UI (/docs): scripts, styles, images and connections from this origin
# only (their bundles need no eval and no inline script); images also as data: URIs (Swagger UI's icons).
TOOLS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
TOOLS_PATHS = ("/graphql", "/docs")
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        seen = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    # Answer now and tell the app the client went away, so it stops reading.
                    refused = True
                    await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the 413 has been sent: drop whatever the app still says
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, send: Send) -> None:
        detail = f"request body over {self.limit} bytes"
        body = json.dumps(
            problem(413, "payload_too_large", "Payload too large", detail, [FieldError("body", detail)])
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """nosniff, no referrer and no framing everywhere; a strict CSP on the dashboard's own pages and on
    the GraphiQL and Swagger UI pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        csp = _policy_for(path)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(COMMON_HEADERS)
                if csp:
                    headers.append((b"content-security-policy", csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _policy_for(path: str) -> bytes | None:
    """The Content-Security-Policy of a path: the dashboard's, the tools', or none (JSON APIs)."""
    if path == "/" or path.startswith("/static/"):
        return DASHBOARD_CSP.encode()
    if path.rstrip("/") in TOOLS_PATHS:
        return TOOLS_CSP.encode()
    return None


def install_hardening(app: FastAPI, settings: Settings) -> None:
    origins = [o.strip() for o in settings.CORS_ORIGINS.split(",") if o.strip()]
    if origins:  # off unless configured: the dashboard is same-origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Correlation-ID", "X-Performed-By"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.MAX_BODY_BYTES)
