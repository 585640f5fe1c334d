"""The API's HTTP metrics (runtime.http.RequestMetrics) against the real app: each request is counted
under the route template the router matched, its method and its status, and timed."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY


def requests_of(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def timed(route: str, method: str) -> float:
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", {"route": route, "method": method}) or 0.0


async def test_a_request_is_counted_under_its_route_template_method_and_status(client):
    template = "/api/v1/schedules/{schedule_id}"
    before_404, before_timed = requests_of(template, "GET", 404), timed(template, "GET")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for schedule_id in ids:
        assert (await client.get(f"/api/v1/schedules/{schedule_id}")).status_code == 404
    assert requests_of(template, "GET", 404) - before_404 == 3
    assert timed(template, "GET") - before_timed == 3
    routes = {
        s.labels["route"] for family in REGISTRY.collect() if family.name == "http_requests" for s in family.samples
    }
    assert not [route for route in routes if any(schedule_id in route for schedule_id in ids)]


async def test_unmatched_paths_and_unknown_methods_share_bounded_labels(client):
    before = requests_of("(unmatched)", "GET", 404)
    for path in ("/no/such/page", f"/nothing-{uuid.uuid4()}"):
        assert (await client.get(path)).status_code == 404
    assert requests_of("(unmatched)", "GET", 404) - before == 2

    before_other = sum(requests_of("/health", "OTHER", status) for status in (405, 404))
    assert (await client.request("BREW", "/health")).status_code in (404, 405)
    assert sum(requests_of("/health", "OTHER", status) for status in (405, 404)) - before_other == 1


async def test_the_api_metrics_endpoint_serves_the_http_metrics(client):
    assert (await client.get("/health")).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.0005",method="GET",route="/health"}' in text
