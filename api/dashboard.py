"""The web dashboard (static files from web/, served at /), the Dramatiq dashboard (/dramatiq), and
the vendored browser assets of GraphiQL and Swagger UI (web/vendor/, served at /vendor/) that the
/graphql and /docs pages load instead of a CDN.

The Dramatiq dashboard can delete and requeue queue messages, so with authentication on it is an
admin surface: every request to it needs an admin's API key, from the `Authorization` or
`X-API-Key` header or from the `scheduler_api_key` cookie that the web dashboard's sign-in sets
(path `/dramatiq`, `SameSite=Strict`, so no other site can make a browser send it).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from actors.broker import make_broker
from core.errors import Forbidden
from core.settings import Settings
from services.auth import bearer_token, resolve_actor
from services.context import Role

WEB = Path(__file__).resolve().parent.parent / "web"
KEY_COOKIE = "scheduler_api_key"
VENDORED = ("graphiql", "swagger-ui")  # the asset folders under web/vendor/ (not its update script)


class AdminOnly:
    """An ASGI gate letting through only requests made with an admin's key (when authentication is on).

    Refusals raise the core errors (`Unauthenticated` → 401, `Forbidden` → 403), which the app's
    problem handlers translate like any other route's.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.settings.AUTH_ENABLED:
            request = Request(scope)
            cookie = request.cookies.get(KEY_COOKIE)
            token = bearer_token(request.headers.get("Authorization"), request.headers.get("X-API-Key"))
            token = token or (unquote(cookie) if cookie else None)
            correlation = scope.get("state", {}).get("correlation_id", "")
            actor = await resolve_actor(request.app.state.api_keys, True, token, None, "Authorization", correlation)
            if actor.role != Role.ADMIN:
                raise Forbidden("the Dramatiq dashboard needs an admin's API key", field="Authorization")
        await self.app(scope, receive, send)


def mount_dashboards(app: FastAPI, settings: Settings) -> None:
    """`/` and `/static/*` serve the dashboard; `/dramatiq/` the workers' queues (read from Redis);
    `/vendor/<name>/*` the vendored assets."""
    from dramatiq_dashboard import DashboardApp  # installed without its stale pins (see Makefile)

    broker = make_broker(settings)
    queues = WSGIMiddleware(DashboardApp(broker=broker, prefix="/dramatiq"))
    app.mount("/dramatiq", AdminOnly(queues, settings), name="dramatiq")
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    for name in VENDORED:
        app.mount(f"/vendor/{name}", StaticFiles(directory=WEB / "vendor" / name), name=f"vendor-{name}")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})
