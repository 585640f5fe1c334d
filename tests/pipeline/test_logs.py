"""Logs and traces of the real processes, started as `make run` and Compose start them (the worker and
housekeeping through `runtime.worker` and `runtime.periodic`).

Proves: every line every process writes is one JSON object naming the service, the process and the
level; a triggered run's worker lines carry the correlation id its request sent; the request's
traceparent reaches the published command (same trace, the run's own span as parent), over REST and
over NATS, and the run's events carry it; the API writes an access line per request;
LOG_FORMAT=console is not JSON; with OTEL_EXPORTER_OTLP_ENDPOINT set, the API's and the worker's spans
reach an OTLP collector in one trace.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import sys
import threading
import uuid
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from core.states import ExecutionStatus
from core.traceparent import parse
from tests.support.harness import Stack, free_port, unique_subject, wait_for

SERVICE = "scheduler-service"
PROCESSES = ("api", "ticker", "worker", "housekeeping")
LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}
DEADLINE = 30
YEARLY = "0 0 1 1 *"


class LoggedStack(Stack):
    """The harness's stack, with the worker and housekeeping run through the service's entry points."""

    def command(self, kind: str) -> list[str]:
        if kind == "worker":
            return [sys.executable, "-m", "runtime.worker", "actors", "housekeeping", "-p", "1", "-t", "4"]
        if kind == "housekeeping":
            return [sys.executable, "-m", "runtime.periodic", "actors", "housekeeping"]
        return super().command(kind)

    def log_of(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def records(path: Path) -> list[dict]:
    """The log's lines as JSON objects; fails on the first line that is not one."""
    parsed = []
    for number, line in enumerate(log_lines(path), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"{path.name}:{number} is not JSON: {line!r}")
        assert isinstance(record, dict), f"{path.name}:{number} is not an object: {line!r}"
        parsed.append(record)
    return parsed


def records_so_far(path: Path) -> list[dict]:
    """The JSON lines written so far (a line being written may be incomplete)."""
    found = []
    for line in log_lines(path) if path.exists() else []:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


@pytest.fixture
def stack():
    with LoggedStack() as running:
        yield running


async def listen(nc, subject: str) -> list:
    received: list = []

    async def on_message(msg) -> None:
        received.append(msg)

    await nc.subscribe(subject, cb=on_message)
    return received


async def create_yearly(http: httpx.AsyncClient, subject: str) -> str:
    body = {"name": f"logs-{uuid.uuid4().hex[:6]}", "schedule_type": "cron", "cron_expression": YEARLY}
    created = await http.post("/api/v1/schedules", json={**body, "target_command": subject})
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def trigger_over_nats(nc, schedule_id: str, headers: dict[str, str]) -> dict:
    """A trigger through the API's NATS listener (it subscribes shortly after /ready). Another stack's
    API on the same NATS server may share the queue group and answer 404 (its database has no such
    schedule): the request goes again until this stack's API answers it."""
    body = json.dumps({"schedule_id": schedule_id}).encode()

    async def answered():
        try:
            reply = await nc.request("cmd.scheduler.schedule.trigger", body, timeout=5, headers=headers)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return None
        if reply.headers["Scheduler-Status"] == "404":
            return None
        assert reply.headers["Scheduler-Status"] == "200", reply.data
        return json.loads(reply.data)

    return await wait_for(answered, DEADLINE, interval=0.3, message="the NATS trigger's reply")


def mine(events: list, execution_ids: set[str]) -> dict:
    """The events received about these runs, by execution id."""
    found = {}
    for event in events:
        execution_id = json.loads(event.data).get("execution_id")
        if execution_id in execution_ids:
            found[execution_id] = event
    return found


async def recorded_line(stack: LoggedStack, execution_id: str) -> dict:
    """The worker's `execution.recorded` line of a run."""

    def line():
        return next(
            (
                r
                for r in records_so_far(stack.log_of("worker"))
                if r.get("action") == "execution.recorded" and r.get("execution_id") == execution_id
            ),
            None,
        )

    return await wait_for(line, DEADLINE, interval=0.2, message=f"the worker's line for {execution_id}")


def assert_command_continues(message, sent: str, correlation_id: str, execution_id: str) -> None:
    """The published command carries the request's trace, with a span of its own as parent."""
    assert message.headers["Scheduler-Execution-Id"] == execution_id
    assert message.headers["Scheduler-Correlation-Id"] == correlation_id
    carried = parse(message.headers["traceparent"])
    assert carried is not None, message.headers
    assert carried.trace_id == parse(sent).trace_id
    assert carried.span_id != parse(sent).span_id


async def stored_traceparents(stack: LoggedStack, ids: list[str]) -> dict[str, str | None]:
    conn = await asyncpg.connect(stack.database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            "SELECT id::text, traceparent FROM executions WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids]
        )
    finally:
        await conn.close()
    return {row["id"]: row["traceparent"] for row in rows}


async def test_a_triggered_run_carries_its_request_s_correlation_id_and_trace(stack):
    for name in PROCESSES:
        stack.start(name)
    subject = unique_subject()
    rest_trace, nats_trace = traceparent(), traceparent()
    nc = await nats.connect(stack.nats_url)
    try:
        received = await listen(nc, subject)
        events = await listen(nc, "evt.scheduler.execution.succeeded")
        async with httpx.AsyncClient(base_url=stack.api, timeout=15) as http:
            schedule_id = await create_yearly(http, subject)
            triggered = await http.post(
                f"/api/v1/schedules/{schedule_id}/trigger",
                headers={"X-Correlation-ID": "corr-rest-trigger", "traceparent": rest_trace},
            )
            assert triggered.status_code == 200, triggered.text
            by_rest = triggered.json()["execution_id"]
        by_nats = (
            await trigger_over_nats(
                nc, schedule_id, {"X-Correlation-ID": "corr-nats-trigger", "traceparent": nats_trace}
            )
        )["execution_id"]
        await wait_for(lambda: len(received) >= 2, DEADLINE, message="both manual runs")
        await wait_for(lambda: len(mine(events, {by_rest, by_nats})) >= 2, DEADLINE, message="their events")
    finally:
        await nc.close()
    messages = {m.headers["Scheduler-Execution-Id"]: m for m in received}
    assert_command_continues(messages[by_rest], rest_trace, "corr-rest-trigger", by_rest)
    assert_command_continues(messages[by_nats], nats_trace, "corr-nats-trigger", by_nats)
    for execution_id, event in mine(events, {by_rest, by_nats}).items():
        body = json.loads(event.data)
        assert body["traceparent"] == event.headers["traceparent"] == messages[execution_id].headers["traceparent"]
        assert body["correlation_id"] == messages[execution_id].headers["Scheduler-Correlation-Id"]
    assert await stored_traceparents(stack, [by_rest, by_nats]) == {by_rest: rest_trace, by_nats: nats_trace}

    for execution_id, correlation_id in ((by_rest, "corr-rest-trigger"), (by_nats, "corr-nats-trigger")):
        line = await recorded_line(stack, execution_id)
        assert line["correlation_id"] == correlation_id
        assert line["schedule_id"] == schedule_id
        assert line["status"] == ExecutionStatus.SUCCEEDED.value
        assert line["traceparent"] == messages[execution_id].headers["traceparent"]

    access = [r for r in records_so_far(stack.log_of("api")) if r.get("action") == "http.request"]
    [trigger_line] = [r for r in access if r["path"] == f"/api/v1/schedules/{schedule_id}/trigger"]
    assert trigger_line["method"] == "POST" and trigger_line["status"] == 200
    assert trigger_line["correlation_id"] == "corr-rest-trigger"
    assert isinstance(trigger_line["duration_ms"], (int, float)) and trigger_line["duration_ms"] >= 0


async def test_every_line_of_every_process_is_json_naming_service_process_and_level(stack):
    stack.env["LOG_LEVEL"] = "DEBUG"  # every line there is: the ticker's passes, Dramatiq's start-up
    for name in PROCESSES:
        stack.start(name)
    subject = unique_subject()
    async with httpx.AsyncClient(base_url=stack.api, timeout=15) as http:
        schedule_id = await create_yearly(http, subject)
        triggered = await http.post(f"/api/v1/schedules/{schedule_id}/trigger")
        assert triggered.status_code == 200, triggered.text
        await recorded_line(stack, triggered.json()["execution_id"])
        assert (await http.get("/api/v1/does-not-exist")).status_code == 404
    await asyncio.sleep(1)
    stack.stop()  # the shutdown lines too
    seen_loggers: dict[str, set[str]] = {}
    for name in PROCESSES:
        lines = records(stack.log_of(name))
        assert lines, f"{name} wrote no log line"
        for record in lines:
            assert record.get("service") == SERVICE, record
            assert record.get("process") == name, record
            assert record.get("level") in LEVELS, record
            assert isinstance(record.get("message"), str) and record.get("timestamp"), record
            assert "color_message" not in record, record
        seen_loggers[name] = {r.get("logger", "") for r in lines}
    # The libraries' own lines went through the same format: uvicorn's, Dramatiq's parent and worker
    # processes', periodiq's.
    assert any(logger.startswith("uvicorn") for logger in seen_loggers["api"]), seen_loggers["api"]
    assert any(logger.startswith("dramatiq.MainProcess") for logger in seen_loggers["worker"]), seen_loggers
    assert any(logger.startswith("dramatiq.WorkerProcess") for logger in seen_loggers["worker"]), seen_loggers
    assert "periodiq" in seen_loggers["housekeeping"], seen_loggers["housekeeping"]


def test_log_format_console_renders_readable_lines_not_json(stack):
    stack.env["LOG_FORMAT"] = "console"
    stack.start("api")
    assert httpx.get(f"{stack.api}/live", timeout=5).status_code == 200
    stack.stop()
    lines = log_lines(stack.log_of("api"))
    assert any("GET /live 200" in line for line in lines), lines
    for line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        pytest.fail(f"a JSON line under LOG_FORMAT=console: {parsed!r}")


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on localhost: keeps the spans it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        super().__init__(("127.0.0.1", free_port()), CollectorHandler)


class CollectorHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def collector():
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_with_an_otlp_endpoint_the_api_and_worker_spans_share_the_request_s_trace(stack, collector):
    stack.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector.server_address[1]}"
    stack.env["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # the SDK's batch delay, in ms
    for name in ("api", "ticker", "worker"):
        stack.start(name)
    subject, sent = unique_subject(), traceparent()
    nc = await nats.connect(stack.nats_url)
    try:
        received = await listen(nc, subject)
        async with httpx.AsyncClient(base_url=stack.api, timeout=15) as http:
            schedule_id = await create_yearly(http, subject)
            triggered = await http.post(f"/api/v1/schedules/{schedule_id}/trigger", headers={"traceparent": sent})
            assert triggered.status_code == 200, triggered.text
        await wait_for(lambda: received, DEADLINE, message="the manual run")
    finally:
        await nc.close()
    trace_id = parse(sent).trace_id
    carried = parse(received[0].headers["traceparent"])
    assert carried.trace_id == trace_id

    def spans_of_trace():
        mine = {s.name: s for s in list(collector.spans) if s.trace_id.hex() == trace_id}
        return mine if "scheduler.fire" in mine and any(n.startswith("POST ") for n in mine) else None

    spans = await wait_for(spans_of_trace, DEADLINE, interval=0.3, message="the API's and the worker's spans")
    server = next(s for name, s in spans.items() if name.startswith("POST ") and name.endswith("/trigger"))
    fire = spans["scheduler.fire"]
    assert server.parent_span_id.hex() == parse(sent).span_id  # the API's span continues the request's
    assert fire.parent_span_id == server.span_id  # the run's span continues the API's
    assert fire.span_id.hex() == carried.span_id  # and the command names the run's span
