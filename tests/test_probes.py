"""runtime.probes: the metrics and probe server of the worker and the ticker, on a real socket."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from actors.probes import process_index
from core.tuning import TICKER_STALL_SECONDS
from runtime.probes import AGGREGATED, ProbeApp, ProbeServer, serve_probes
from ticker.loop import Pulse


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("probe_test_events", "events of this test", ["kind"], registry=registry).labels("seen").inc(3)
    return registry


def serve(app: ProbeApp) -> tuple[ProbeServer, str]:
    server = ProbeServer("127.0.0.1", 0, app)
    port = server.start()
    return server, f"http://127.0.0.1:{port}"


def test_metrics_serve_the_process_registry_and_the_probes_answer_their_checks(registry, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    state = {"ready": False}
    app = ProbeApp(lambda: (True, {"id": "p1"}), lambda: (state["ready"], {"why": "waiting"}), registry)
    server, url = serve(app)
    try:
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.status_code == 200
        assert 'probe_test_events_total{kind="seen"} 3.0' in metrics.text
        assert httpx.get(f"{url}/live").json() == {"status": "up", "id": "p1"}
        not_ready = httpx.get(f"{url}/ready")
        assert not_ready.status_code == 503 and not_ready.json() == {"status": "down", "why": "waiting"}
        state["ready"] = True
        assert httpx.get(f"{url}/ready").status_code == 200
        assert httpx.get(f"{url}/elsewhere").status_code == 404
    finally:
        server.stop()


def test_a_check_that_raises_answers_503(registry):
    def broken() -> tuple[bool, dict]:
        raise RuntimeError("no pulse")

    server, url = serve(ProbeApp(broken, broken, registry))
    try:
        answer = httpx.get(f"{url}/live")
        assert answer.status_code == 503 and "no pulse" in answer.json()["error"]
    finally:
        server.stop()


def test_with_a_multiprocess_directory_the_server_leaves_the_samples_to_the_api(registry, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    server, url = serve(ProbeApp(lambda: (True, {}), lambda: (True, {}), registry))
    try:
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.status_code == 200 and metrics.content == AGGREGATED
        assert "probe_test_events" not in metrics.text
    finally:
        server.stop()


def test_port_zero_serves_nothing_and_a_busy_port_does_not_stop_the_process(registry):
    assert serve_probes("test", "127.0.0.1", 0, lambda: (True, {}), lambda: (True, {})) is None
    first, url = serve(ProbeApp(lambda: (True, {}), lambda: (True, {}), registry))
    try:
        assert serve_probes("test", "127.0.0.1", first.port, lambda: (True, {}), lambda: (True, {})) is None
        assert httpx.get(f"{url}/live").status_code == 200
    finally:
        first.stop()


def test_the_tickers_pulse_is_live_from_the_start_ready_after_a_good_pass_and_dead_when_stalled():
    pulse = Pulse()
    assert pulse.live()[0] and not pulse.ready()[0]
    pulse.mark(False)
    assert pulse.live()[0] and not pulse.ready()[0]
    pulse.mark(True)
    ready, details = pulse.ready()
    assert ready and details["last_pass_ok"] is True and 0 <= details["last_pass_age_seconds"] < 1
    pulse.passed_at -= TICKER_STALL_SECONDS + 1
    assert not pulse.live()[0] and not pulse.ready()[0]


def test_a_worker_process_outside_dramatiqs_children_is_number_zero():
    assert process_index() == 0
