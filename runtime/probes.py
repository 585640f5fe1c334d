"""The metrics and probe server of a process without an HTTP API (a worker process, the ticker).

`/metrics`, `/live` and `/ready` on a port of the process's own, served from daemon threads, so that
a busy event loop still answers and the checks say whether it is stuck. `/metrics` is
prometheus_client's WSGI exposition of the process's registry (text or OpenMetrics, gzip when asked).
With PROMETHEUS_MULTIPROC_DIR set, the process's samples go to that directory and the API's /metrics
aggregates every process there; this server's /metrics then serves no samples, so that a scrape of
both never counts one twice. `/live` and `/ready` answer 200 or 503 with the check's JSON.

A port that cannot be bound is logged and the process runs on without the server: metrics and probes
never stop the scheduler's work.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

log = logging.getLogger("runtime.probes")

# A check: (healthy, details for the JSON answer).
Check = Callable[[], tuple[bool, dict[str, Any]]]
AGGREGATED = b"# This process writes its metrics to PROMETHEUS_MULTIPROC_DIR; the API's /metrics serves them.\n"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes and probes are not news
        pass


class ProbeApp:
    """The WSGI application: routes /metrics, /live and /ready; anything else is 404."""

    def __init__(self, live: Check, ready: Check, registry: CollectorRegistry = REGISTRY) -> None:
        self.live = live
        self.ready = ready
        self.aggregated = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.exposition = make_wsgi_app(registry)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            if self.aggregated:
                start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
                return [AGGREGATED]
            return self.exposition(environ, start_response)
        if path in ("/live", "/ready"):
            return self._probe(self.live if path == "/live" else self.ready, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /metrics, /live and /ready are served here\n"]

    @staticmethod
    def _probe(check: Check, start_response: Callable) -> Iterable[bytes]:
        try:
            healthy, details = check()
        except Exception as error:  # a probe reports, it never raises
            healthy, details = False, {"error": f"{type(error).__name__}: {error}"[:300]}
        body = {"status": "up" if healthy else "down", **details}
        start_response("200 OK" if healthy else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


class ProbeServer:
    """The server of one process; `port` is the port it listens on once started (0 asks the system)."""

    def __init__(self, host: str, port: int, app: ProbeApp) -> None:
        self.host = host
        self.port = port
        self.app = app
        self._server: _Server | None = None

    def start(self) -> int:
        """Bind and serve from a daemon thread; returns the port. Raises OSError when it cannot bind."""
        self._server = make_server(self.host, self.port, self.app, _Server, _QuietHandler)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, name="probe-server", daemon=True).start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve_probes(process: str, host: str, port: int, live: Check, ready: Check) -> ProbeServer | None:
    """Start the server of `process` (a name for the logs) on host:port; None when `port` is 0 (off)
    or cannot be bound (logged)."""
    if port == 0:
        return None
    server = ProbeServer(host, port, ProbeApp(live, ready))
    try:
        server.start()
    except OSError as error:
        log.error(
            "metrics and probe server not started",
            extra={"action": "probes.bind_failed", "role": process, "port": port, "error": str(error)},
        )
        return None
    log.info("metrics and probes served", extra={"action": "probes.started", "role": process, "port": port})
    return server
