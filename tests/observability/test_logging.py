"""The log format of every process (runtime.logging), the access log and the traceparent of the doors,
in process: no servers."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings

import httpx
import pytest
import structlog
from fastapi import FastAPI

from runtime.access_log import AccessLog, access_fields
from runtime.http import CorrelationId
from runtime.logging import configure_logging
from services.principals import HeaderMap, resolve_principal

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def stream():
    """Configure logging onto a buffer; the root logger and structlog are put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    buffer = io.StringIO()
    yield buffer
    sys.excepthook, threading.excepthook = hooks
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(buffer: io.StringIO) -> list[str]:
    return [line for line in buffer.getvalue().splitlines() if line.strip()]


def test_a_standard_library_record_is_one_json_line_with_the_identity_and_extras(stream):
    configure_logging("INFO", "svc-x", "worker", "json", stream)
    logging.getLogger("services.firing").info(
        "run %s", "abc", extra={"action": "execution.recorded", "execution_id": "e1", "correlation_id": "c1"}
    )
    logging.getLogger("services.firing").debug("below the level")
    [line] = lines(stream)
    record = json.loads(line)
    assert record["message"] == "run abc"
    assert record["level"] == "info"
    assert record["service"] == "svc-x" and record["process"] == "worker"
    assert record["logger"] == "services.firing"
    assert record["action"] == "execution.recorded"
    assert record["execution_id"] == "e1" and record["correlation_id"] == "c1"
    assert record["timestamp"].endswith("Z")


def test_bound_context_and_exceptions_and_warnings_stay_json(stream):
    configure_logging("INFO", "svc", "api", "json", stream)
    with structlog.contextvars.bound_contextvars(correlation_id="corr-7"):
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("api").exception("failed")
    logging.getLogger("api").info("after")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    records = [json.loads(line) for line in lines(stream)]
    assert records[0]["correlation_id"] == "corr-7"
    assert "ValueError: boom" in records[0]["exception"]
    assert "correlation_id" not in records[1]  # the binding ended with its request
    assert "deprecated thing" in records[2]["message"] and records[2]["level"] == "warning"


def test_the_console_format_is_readable_and_not_json(stream):
    configure_logging("INFO", "svc", "ticker", "console", stream)
    logging.getLogger("ticker").info("tick done", extra={"action": "ticker.pass", "schedule_id": "s1"})
    [line] = lines(stream)
    with pytest.raises(ValueError):
        json.loads(line)
    assert "tick done" in line and "schedule_id" in line and "s1" in line and "ticker" in line


@pytest.mark.parametrize("process, fmt", [("scheduler", "json"), ("api", "xml")])
def test_an_unknown_process_or_format_is_refused(process, fmt):
    with pytest.raises(ValueError):
        configure_logging("INFO", "svc", process, fmt, io.StringIO())


def test_access_fields_measure_the_request():
    scope = {"method": "POST", "path": "/api/v1/schedules", "state": {"correlation_id": "c-1"}}
    fields = access_fields(scope, 201, 10.0, 10.0125)
    assert fields == {
        "action": "http.request",
        "method": "POST",
        "path": "/api/v1/schedules",
        "status": 201,
        "duration_ms": 12.5,
        "correlation_id": "c-1",
    }


async def test_the_access_log_names_every_request_with_its_correlation_id(stream):
    configure_logging("INFO", "svc", "api", "json", stream)
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> dict:
        logging.getLogger("api").info("inside", extra={"action": "test.inside"})
        if item == "bad":
            raise RuntimeError("broken")
        return {"item": item}

    app.add_middleware(CorrelationId)
    app.add_middleware(AccessLog)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        ok = await client.get("/items/a?secret=1", headers={"X-Correlation-ID": "corr-access"})
        failed = await client.get("/items/bad", headers={"X-Correlation-ID": "corr-failed"})
    assert ok.status_code == 200 and failed.status_code == 500
    records = [json.loads(line) for line in lines(stream)]
    inside = [r for r in records if r.get("action") == "test.inside"]
    access = [r for r in records if r.get("action") == "http.request"]
    assert inside[0]["correlation_id"] == "corr-access"  # lines inside the request carry its id
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/items/a", 200),
        ("GET", "/items/bad", 500),
    ]
    assert access[0]["correlation_id"] == "corr-access" and access[0]["logger"] == "api.access"
    assert access[1]["correlation_id"] == "corr-failed"  # a request that raised is logged as a 500
    assert all(a["duration_ms"] >= 0 for a in access)


async def test_a_request_s_valid_traceparent_stays_with_its_actor():
    named = await resolve_principal(HeaderMap({"traceparent": TRACEPARENT.upper()}), (), None, False, "c")
    assert named.traceparent == TRACEPARENT
    ignored = await resolve_principal(HeaderMap({"traceparent": "00-zz"}), (), None, False, "c")
    assert ignored.traceparent is None
    absent = await resolve_principal(HeaderMap({}), (), None, False, "c")
    assert absent.traceparent is None


def test_log_level_holds_when_a_library_resets_the_root_level(stream):
    configure_logging("WARNING", "svc", "housekeeping", "json", stream)
    logging.getLogger().setLevel(logging.INFO)  # what periodiq does with its default verbosity
    logging.getLogger("periodiq").info("chatty")
    logging.getLogger("periodiq").warning("worth seeing")
    assert [json.loads(line)["message"] for line in lines(stream)] == ["worth seeing"]


def test_an_uncaught_exception_in_a_thread_is_a_json_line(stream):
    configure_logging("INFO", "svc", "worker", "json", stream)

    def fail() -> None:
        raise RuntimeError("thread broke")

    thread = threading.Thread(target=fail, name="doomed")
    thread.start()
    thread.join()
    [record] = [json.loads(line) for line in lines(stream)]
    assert record["level"] == "error" and "doomed" in record["message"]
    assert "RuntimeError: thread broke" in record["exception"]


def test_the_launcher_s_own_lines_name_it_and_an_unknown_format_falls_back_to_json(stream, capsys):
    from runtime.launcher import configure_launcher_logging

    configure_launcher_logging({"LOG_FORMAT": "fancy", "SERVICE_NAME": "svc-l"})
    logging.getLogger("launcher").warning("api exited with 1; restarting", extra={"action": "launcher.child_restart"})
    record = json.loads(capsys.readouterr().err.strip())
    assert (record["process"], record["service"], record["action"]) == ("launcher", "svc-l", "launcher.child_restart")
