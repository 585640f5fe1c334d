"""The web dashboard (static files from web/, served at /) and the Dramatiq dashboard (/dramatiq)."""

from __future__ import annotations

from pathlib import Path

from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from actors.broker import make_broker
from core.settings import Settings

WEB = Path(__file__).resolve().parent.parent / "web"


def mount_dashboards(app: FastAPI, settings: Settings) -> None:
    """`/` and `/static/*` serve the dashboard; `/dramatiq/` the workers' queues (read from Redis)."""
    from dramatiq_dashboard import DashboardApp  # installed without its stale pins (see Makefile)

    broker = make_broker(settings)
    app.mount("/dramatiq", WSGIMiddleware(DashboardApp(broker=broker, prefix="/dramatiq")), name="dramatiq")
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})
