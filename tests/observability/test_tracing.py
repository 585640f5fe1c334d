"""Trace context through a run (services.firing, runtime.tracing), in process: no servers."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest

from core.outcomes import Decision
from core.traceparent import parse, run_span_id
from runtime import tracing
from services.firing import DerivedTraces
from services.runs import Claimed, Outcome, render_command
from tests.support.harness import ROOT

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def claimed(traceparent: str | None, attempt: int = 1, span: str | None = None) -> Claimed:
    return Claimed(
        execution_id=uuid.uuid4(),
        schedule_id=uuid.uuid4(),
        scheduled_for=T0,
        attempt=attempt,
        trigger_type="manual",
        payload_override=None,
        correlation_id="corr-1",
        priority=5,
        name="s",
        schedule_status="active",
        schedule_type="interval",
        target_command="cmd.test.trace",
        command_payload={"a": 1},
        delivery_mode="core",
        request_timeout_seconds=5,
        max_retries=3,
        retry_delay=1,
        max_concurrent=1,
        traceparent=traceparent,
        span=span,
    )


def test_the_command_carries_the_request_s_trace_with_the_attempt_s_span():
    run = claimed(TRACEPARENT, attempt=2)
    sent = parse(render_command(run).headers["traceparent"])
    assert sent.trace_id == parse(TRACEPARENT).trace_id
    assert sent.span_id == run_span_id(run.execution_id, 2)
    assert render_command(run).headers["Scheduler-Correlation-Id"] == "corr-1"


def test_a_slot_without_a_request_starts_its_own_trace():
    run = claimed(None)
    sent = parse(render_command(run).headers["traceparent"])
    assert sent.trace_id == run.execution_id.hex


def test_the_opened_span_is_the_one_the_command_and_the_outcome_name():
    run = claimed(TRACEPARENT)
    opened = DerivedTraces().open(run)
    spanned = Claimed(**{**run.__dict__, "span": opened})
    assert render_command(spanned).headers["traceparent"] == opened
    outcome = Outcome.of(spanned, T0, Decision.succeeded("core"))
    assert outcome.traceparent == opened and outcome.correlation_id == "corr-1"


@pytest.fixture
def exported(monkeypatch):
    """Tracing on, into memory."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    return exporter


def test_with_tracing_on_each_attempt_is_an_exported_child_span(exported):
    traces = tracing.SpanTraces()
    with_request, slot = claimed(TRACEPARENT), claimed(None)
    headers = [parse(traces.open(with_request)), parse(traces.open(slot))]
    assert headers[0].trace_id == parse(TRACEPARENT).trace_id
    assert headers[1].trace_id != parse(TRACEPARENT).trace_id  # a new trace for a slot
    assert exported.get_finished_spans() == ()
    outcomes = [
        Outcome.of(Claimed(**{**with_request.__dict__, "span": headers[0].header()}), T0, Decision.succeeded("core")),
        Outcome.of(Claimed(**{**slot.__dict__, "span": headers[1].header()}), T0, Decision.succeeded("core")),
    ]
    traces.close(outcomes)
    spans = {format(s.context.span_id, "016x"): s for s in exported.get_finished_spans()}
    assert set(spans) == {h.span_id for h in headers}
    child = spans[headers[0].span_id]
    assert format(child.parent.span_id, "016x") == parse(TRACEPARENT).span_id
    assert child.attributes["scheduler.status"] == "succeeded"
    assert child.attributes["scheduler.execution_id"] == str(with_request.execution_id)
    assert traces.open_spans == {}


def test_tracing_off_needs_nothing_of_opentelemetry():
    # Off and free: with OTEL_EXPORTER_OTLP_ENDPOINT unset, the service's code imports neither the
    # OpenTelemetry SDK nor an exporter and creates no tracer. (Installed, the SDK may still be imported by
    # a client library, e.g. redis-py's optional metrics, so the check hides it: an import of it by our
    # code fails the run. The API package alone comes with FastAPI.)
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('opentelemetry.sdk', 'opentelemetry.exporter')):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from core.settings import Settings\n"
        "from runtime import tracing\n"
        "import runtime.http, actors, actors.resources, housekeeping, ticker.loop\n"
        "assert tracing.setup(Settings(OTEL_EXPORTER_OTLP_ENDPOINT=''), 'api') is False\n"
        "runtime.http.create_app(Settings())\n"
        "assert not tracing.enabled()\n"
        "print('ok')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_an_endpoint_without_the_package_leaves_tracing_off_with_a_warning():
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('opentelemetry.sdk', 'opentelemetry.exporter')):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from core.settings import Settings\n"
        "from runtime import tracing\n"
        "from runtime.logging import configure_logging\n"
        "configure_logging('INFO', 'svc', 'api', 'json')\n"
        "assert tracing.setup(Settings(OTEL_EXPORTER_OTLP_ENDPOINT='http://127.0.0.1:9'), 'api') is False\n"
        "assert not tracing.enabled()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"action": "tracing.unavailable"' in done.stderr
