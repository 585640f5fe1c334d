"""Metrics and probes of the real processes: the API, the ticker and a worker as separate processes.

Compose-shaped (no shared PROMETHEUS_MULTIPROC_DIR): every metric has samples in the process that owns
it and in no other, after one auto-mode and one request-mode run; the worker's and the ticker's probes
answer, and /health/detailed lists both. Launcher-shaped (one shared directory): the API's /metrics
has the worker's samples and the worker's own server serves none, so nothing is counted twice. A
worker with two processes serves one port per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket

import httpx
import nats
import pytest
from prometheus_client import Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from runtime import metrics
from runtime.probes import AGGREGATED
from tests.support.harness import Stack, free_port, unique_subject, wait_for, wait_until

DEADLINE = 30  # seconds: generous upper bound for any awaited condition

# Which process serves each metric family (counters without `_total`, as the parser names them; the
# schedules gauge keeps its name): the contract under test.
OWNERS = {
    "schedule_executions": {"worker"},
    "schedule_execution_duration_seconds": {"worker", "api"},  # the API: runs a completion report ended
    "schedule_fire_lag_seconds": {"worker"},
    "schedule_misfires": {"worker", "ticker"},
    "distributed_locks_acquired": {"worker"},
    "schedule_dead_letters": {"worker", "ticker", "api"},  # whoever records the final failure
    "schedule_auto_pauses": {"worker", "ticker", "api"},
    "schedule_completion_reports": {"api"},
    "schedule_completion_timeouts": {"ticker"},
    "ticker_batch_size": {"ticker"},
    "ticker_batch_duration_seconds": {"ticker"},
    "scheduler_enqueued": {"ticker"},
    "schedule_runs_reaped": {"ticker"},
    "http_requests": {"api"},
    "http_request_duration_seconds": {"api"},
    "schedules_total": {"api"},
}


@pytest.fixture
def stack():
    with Stack() as running:
        yield running
        for name, process in running.processes.items():  # one SIGTERM to Dramatiq's parent stops it cleanly
            if name.startswith("worker") and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(Exception):
                    process.wait(timeout=10)


def port_pair() -> int:
    """A port p with p and p + 1 both free (a worker started with -p 2 takes both)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as s:
            s.bind(("127.0.0.1", port + 1))
            return port
    raise AssertionError("no two consecutive free ports")


def scrape(url: str) -> dict[str, list]:
    """Family name -> its samples, from a Prometheus text endpoint."""
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, (url, response.status_code)
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(families: dict[str, list], sample_name: str, **labels: str) -> float:
    """The sum of the samples named `sample_name` whose labels include `labels`."""
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def probe(port: int, path: str) -> httpx.Response | None:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    return None


def ready(port: int) -> bool:
    answer = probe(port, "/ready")
    return answer is not None and answer.status_code == 200


def start_compose_shaped(stack: Stack, worker_port: int, ticker_port: int) -> None:
    stack.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stack.env.update(WORKER_METRICS_PORT=str(worker_port), TICKER_METRICS_PORT=str(ticker_port))
    for name in ("api", "ticker", "worker"):
        stack.start(name)
    wait_until(lambda: ready(worker_port) and ready(ticker_port), DEADLINE, message="worker and ticker ready")


async def fire_one_auto_and_one_request_run(stack: Stack, reply_after: float) -> None:
    """An immediate schedule in auto mode and one in request mode whose responder waits `reply_after`
    seconds; returns once both commands arrived and both schedules completed."""
    auto_subject, request_subject = unique_subject(), unique_subject()
    nc = await nats.connect(stack.nats_url)
    received: list[str] = []

    async def on_auto(msg) -> None:
        received.append(msg.subject)

    async def on_request(msg) -> None:
        await asyncio.sleep(reply_after)
        received.append(msg.subject)
        await msg.respond(b'{"ok": true}')

    await nc.subscribe(auto_subject, cb=on_auto)
    await nc.subscribe(request_subject, cb=on_request)
    await nc.flush()
    try:
        async with httpx.AsyncClient(base_url=stack.api, timeout=15) as http:
            ids = []
            runs = (("obs-auto", auto_subject, "auto"), ("obs-request", request_subject, "request"))
            for name, subject, mode in runs:
                body = {"name": name, "schedule_type": "immediate", "target_command": subject, "delivery_mode": mode}
                response = await http.post("/api/v1/schedules", json=body)
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])

            async def completed() -> bool:
                statuses = [(await http.get(f"/api/v1/schedules/{i}")).json()["status"] for i in ids]
                return statuses == ["completed", "completed"]

            await wait_for(completed, DEADLINE, message="both schedules completed")
        await wait_for(lambda: len(received) == 2, DEADLINE, message="both commands")
    finally:
        await nc.close()


def test_the_owners_table_names_every_metric_of_runtime_metrics():
    defined = {
        metric.describe()[0].name for metric in vars(metrics).values() if isinstance(metric, (Counter, Histogram))
    }
    assert defined | {"schedules_total"} == set(OWNERS)


async def test_each_process_serves_the_metrics_it_owns_and_no_other(stack):
    worker_port, ticker_port = free_port(), free_port()
    start_compose_shaped(stack, worker_port, ticker_port)
    reply_after = 0.3
    await fire_one_auto_and_one_request_run(stack, reply_after)
    urls = {
        "api": f"{stack.api}/metrics",
        "worker": f"http://127.0.0.1:{worker_port}/metrics",
        "ticker": f"http://127.0.0.1:{ticker_port}/metrics",
    }
    # The worker observes a batch once its outcomes are recorded: wait for both runs' outcomes.
    wait_until(
        lambda: value(scrape(urls["worker"]), "schedule_executions_total", schedule_type="immediate") >= 2,
        DEADLINE,
        message="the worker's outcome counts",
    )
    scraped = {process: scrape(url) for process, url in urls.items()}

    for family, owners in OWNERS.items():
        for process, families in scraped.items():
            has = bool(families.get(family))
            assert has == (process in owners), f"{family} served by {process}: {has}"

    worker, ticker, api = scraped["worker"], scraped["ticker"], scraped["api"]
    assert value(worker, "schedule_executions_total", schedule_type="immediate", status="succeeded") == 2
    assert value(worker, "schedule_executions_total", schedule_type="cron", status="failed") == 0  # pre-created
    assert value(worker, "schedule_fire_lag_seconds_count") == 2
    assert value(worker, "schedule_execution_duration_seconds_count") == 2
    assert value(worker, "schedule_execution_duration_seconds_sum") >= reply_after  # the reply is inside
    assert value(worker, "distributed_locks_acquired_total") == 2
    assert value(worker, "schedule_dead_letters_total", result="published") == 0  # pre-created, nothing failed
    assert value(worker, "schedule_auto_pauses_total") == 0
    for families in (worker, ticker):
        reasons = {s.labels["reason"] for s in families["schedule_misfires"] if s.name.endswith("_total")}
        assert reasons >= {"missed", "paused", "lock_conflict", "forbidden", "deleted"}
    assert value(ticker, "ticker_batch_size_count") >= 1 and value(ticker, "ticker_batch_size_sum") >= 2
    assert value(ticker, "ticker_batch_duration_seconds_count") >= 1
    assert value(ticker, "scheduler_enqueued_total") >= 2
    assert value(ticker, "schedule_runs_reaped_total", status="failed") == 0  # pre-created, nothing lost
    assert value(api, "http_requests_total", route="/api/v1/schedules", method="POST", status="201") == 2
    assert value(api, "http_request_duration_seconds_count", route="/api/v1/schedules", method="POST") == 2
    assert value(api, "schedules_total", type="immediate", status="completed") == 2


async def test_the_worker_and_the_ticker_answer_their_probes_and_detailed_health_lists_them(stack):
    worker_port, ticker_port = free_port(), free_port()
    start_compose_shaped(stack, worker_port, ticker_port)
    worker = probe(worker_port, "/live").json()
    ticker = probe(ticker_port, "/live").json()
    assert worker["status"] == "up" and worker["threads_running"] == worker["threads"] == stack.worker_threads
    assert ticker["status"] == "up" and ticker["last_pass_ok"] is True

    def listed() -> dict:
        processes = httpx.get(f"{stack.api}/health/detailed", timeout=5).json()["processes"]
        return {kind: [p["id"] for p in processes[kind]] for kind in ("tickers", "workers")}

    assert listed() == {"tickers": [ticker["ticker_id"]], "workers": [worker["worker_id"]]}

    stack.kill("ticker", signal.SIGTERM)  # a clean stop takes its heartbeat away at once
    assert probe(ticker_port, "/live") is None
    assert listed() == {"tickers": [], "workers": [worker["worker_id"]]}


async def test_under_one_shared_directory_the_api_serves_every_process_and_the_worker_none(stack, tmp_path):
    """The launcher's shape (`make run`): one PROMETHEUS_MULTIPROC_DIR for all processes."""
    worker_port, ticker_port = free_port(), free_port()
    stack.env.update(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        WORKER_METRICS_PORT=str(worker_port),
        TICKER_METRICS_PORT=str(ticker_port),
    )
    for name in ("api", "ticker", "worker"):
        stack.start(name)
    wait_until(lambda: ready(worker_port) and ready(ticker_port), DEADLINE, message="worker and ticker ready")
    await fire_one_auto_and_one_request_run(stack, 0.0)
    url = f"{stack.api}/metrics"
    wait_until(
        lambda: value(scrape(url), "schedule_executions_total", schedule_type="immediate", status="succeeded") == 2,
        DEADLINE,
        message="the worker's outcomes in the API's view",
    )
    combined = scrape(url)
    assert value(combined, "schedule_fire_lag_seconds_count") == 2
    assert value(combined, "ticker_batch_size_count") >= 1
    assert value(combined, "http_requests_total", route="/api/v1/schedules", method="POST", status="201") == 2
    for port in (worker_port, ticker_port):
        own = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert own.status_code == 200 and own.content == AGGREGATED


async def test_a_worker_with_two_processes_serves_one_port_per_process(stack):
    base = port_pair()
    stack.worker_processes = 2
    stack.env.update(WORKER_METRICS_PORT=str(base))
    stack.start("worker")
    wait_until(lambda: ready(base) and ready(base + 1), DEADLINE, message="both worker processes ready")
    ids = {probe(port, "/live").json()["worker_id"] for port in (base, base + 1)}
    assert len(ids) == 2
