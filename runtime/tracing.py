"""OpenTelemetry spans, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

This module owns the tracer of a process. Tracing is off and free when the endpoint is empty:
`setup` returns at once, nothing of OpenTelemetry is imported and no span is created; `traceparent`
headers still travel with the runs (`core.traceparent`). When it is on:

- the API opens a server span per HTTP request (`ServerSpans`), a child of the request's
  `traceparent`, and the runs the request creates store that span as their parent;
- the worker opens one span per attempt of a run (`SpanTraces`), a child of the run's stored
  traceparent (a new trace for a slot no request created), whose id is the parent named in the
  published command's `traceparent` header and in the run's events; it ends with the outcome.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings
from core.traceparent import HEADER, normalized

log = logging.getLogger("runtime.tracing")
_TRACEPARENT_KEY = HEADER.encode()
_tracer: Any = None


def enabled() -> bool:
    return _tracer is not None


def setup(settings: Settings, process: str) -> bool:
    """Install the OTLP exporter for this process when OTEL_EXPORTER_OTLP_ENDPOINT is set; True if on.
    Without the `otel` extra installed, says so once and stays off."""
    global _tracer
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.strip()
    if not endpoint or _tracer is not None:
        return _tracer is not None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (pip install '.[otel]')",
            extra={"action": "tracing.unavailable"},
        )
        return False
    resource = Resource.create(
        {"service.name": settings.SERVICE_NAME, "service.namespace": "scheduler", "process": process}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    _tracer = provider.get_tracer("scheduler-service")
    log.info("tracing on", extra={"action": "tracing.on", "endpoint": endpoint})
    return True


def start_span(name: str, parent: str | None, kind: str, attributes: dict[str, Any]) -> Any:
    """A started span, child of the `parent` traceparent (a new trace when None). Tracing must be on."""
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({HEADER: parent}) if parent else None
    return _tracer.start_span(name, context=context, kind=SpanKind[kind], attributes=attributes)


def traceparent_of(span: Any) -> str:
    """The W3C traceparent naming `span` as the parent."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class SpanTraces:
    """`services.firing.RunTraces` with exported spans: one per claimed attempt, ended with its outcome."""

    def __init__(self) -> None:
        self.open_spans: dict[tuple[str, int], Any] = {}

    def open(self, run) -> str:
        attributes = {
            "scheduler.execution_id": str(run.execution_id),
            "scheduler.schedule_id": str(run.schedule_id),
            "scheduler.attempt": run.attempt,
            "messaging.destination.name": run.target_command,
        }
        if run.correlation_id:
            attributes["scheduler.correlation_id"] = run.correlation_id
        span = start_span("scheduler.fire", run.traceparent, "PRODUCER", attributes)
        self.open_spans[(str(run.execution_id), run.attempt)] = span
        return traceparent_of(span)

    def close(self, outcomes) -> None:
        for outcome in outcomes:
            span = self.open_spans.pop((str(outcome.execution_id), outcome.attempt), None)
            if span is not None:
                span.set_attribute("scheduler.status", outcome.status.value)
                if outcome.reason:
                    span.set_attribute("scheduler.reason", outcome.reason)
                span.end()


class ServerSpans:
    """A server span per HTTP request (installed only when tracing is on). It replaces the request's
    `traceparent` header with its own, so what the request records names this span as its parent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _tracer is None:
            return await self.app(scope, receive, send)
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == _TRACEPARENT_KEY), None)
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        span = start_span(f"{scope['method']} {scope['path']}", normalized(incoming), "SERVER", attributes)
        headers = [(k, v) for k, v in scope["headers"] if k != _TRACEPARENT_KEY]
        headers.append((_TRACEPARENT_KEY, traceparent_of(span).encode()))
        scope["headers"] = headers

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                span.set_attribute("http.response.status_code", message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            span.end()
