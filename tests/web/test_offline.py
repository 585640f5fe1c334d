"""GraphiQL (/graphql), Swagger UI (/docs), the web dashboard (/) and the Dramatiq dashboard (/dramatiq/)
in headless Chromium with every request to another host refused: each page renders and works from this
server's files alone, none tries to reach the internet, and none breaks its Content-Security-Policy.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, WebSocket, expect

from tests.support.browser import create_schedule, graphql, shot

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LIVE = 30_000  # the deadline for an execution event to reach the subscription
TRIGGER_EVERY_MS = 3_000
TRIGGER = "mutation($id: UUID!) { triggerSchedule(id: $id) { __typename } }"


def _local(url: str) -> bool:
    """Served by this machine, or no request at all (a data: or blob: URL)."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS


class Network:
    """What a page asked for: every request and WebSocket URL, the non-local ones (refused), the
    headers of each request to /graphql, the frames sent on WebSockets, and CSP violations."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.refused: list[str] = []
        self.graphql_headers: list[dict[str, str]] = []
        self.ws_frames: list[str] = []
        self.csp_violations: list[str] = []

    def route(self, route: Route) -> None:
        request = route.request
        self.urls.append(request.url)
        if not _local(request.url):
            self.refused.append(request.url)
            route.abort("blockedbyclient")
            return
        if request.method == "POST" and urlsplit(request.url).path == "/graphql":
            self.graphql_headers.append(request.headers)
        route.continue_()

    def websocket(self, socket: WebSocket) -> None:
        self.urls.append(socket.url)
        if not _local(socket.url):
            self.refused.append(socket.url)
        socket.on("framesent", lambda payload: self.ws_frames.append(str(payload)))

    def console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)


@pytest.fixture
def network(page: Page) -> Network:
    """Route every request of `page` through a Network that refuses other hosts; after the test, no
    request to another host was attempted and no CSP violation was reported."""
    seen = Network()
    page.route("**/*", seen.route)
    page.on("websocket", seen.websocket)
    page.on("console", seen.console)
    yield seen
    assert seen.refused == [], f"requests to other hosts: {seen.refused}"
    assert seen.csp_violations == [], seen.csp_violations
    assert seen.urls, "the page made no request at all"


def _editor_input(page: Page, selector: str, text: str) -> None:
    """Replace the text of a GraphiQL (CodeMirror) editor, as typed from the keyboard."""
    page.locator(f"{selector} .CodeMirror").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def _query_taken(page: Page, fragment: str) -> None:
    """Wait until GraphiQL has taken the edited query: it parses the editor's text (and picks the
    operation to run) on a debounce, and stores its tabs once it has, so the stored tab state holding
    `fragment` means a click on Execute runs the new operation, not the previous one."""
    stored = "localStorage.getItem('graphiql:tabState') || ''"
    _wait_until(page, lambda: fragment in page.evaluate(stored), "GraphiQL to take the edited query")


def _wait_until(page: Page, condition, what: str, timeout_ms: int = LIVE) -> None:
    """Poll `condition` while Playwright delivers the page's events."""
    for _ in range(timeout_ms // 100):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def _shows(locator, text: str, timeout_ms: int) -> bool:
    try:
        expect(locator).to_contain_text(text, timeout=timeout_ms)
        return True
    except AssertionError:
        return False


def test_graphiql_runs_a_query_with_the_headers_tab_and_no_other_host(page: Page, network: Network, stack):
    schedule = create_schedule(stack, name=f"graphiql-{uuid.uuid4().hex[:6]}")
    page.goto("/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    expect(page.locator(".graphiql-query-editor .CodeMirror")).to_contain_text("RecentSchedules")
    # The Headers tab is open: the API key goes there.
    _editor_input(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", '{"Authorization": "Bearer k-test"}')
    query = f'{{ schedule(id: "{schedule["id"]}") {{ id name status }} }}'
    _editor_input(page, ".graphiql-query-editor", query)
    _query_taken(page, "id name status")
    page.get_by_role("button", name=re.compile(r"^Execute query")).click()

    result = page.locator("section.result-window")
    expect(result).to_contain_text('"data"')
    expect(result).to_contain_text(schedule["name"])
    expect(result).to_contain_text('"status": "ACTIVE"')
    shot(page, "20-graphiql-offline")
    sent = [h for h in network.graphql_headers if h.get("authorization")]
    assert sent and all(h["authorization"] == "Bearer k-test" for h in sent), network.graphql_headers
    assert all(_local(url) for url in network.urls)
    assert any("/vendor/graphiql/graphiql.min.js" in url for url in network.urls), network.urls


def test_graphiql_subscription_over_the_websocket_carries_the_headers(page: Page, network: Network, stack):
    schedule = create_schedule(stack, name=f"graphiql-ws-{uuid.uuid4().hex[:6]}")
    page.goto("/graphql")
    _editor_input(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", '{"Authorization": "Bearer k-ws"}')
    subscription = f'subscription {{ executionEvents(scheduleId: "{schedule["id"]}") {{ event scheduleId }} }}'
    _editor_input(page, ".graphiql-query-editor", subscription)
    _query_taken(page, "executionEvents(scheduleId:")
    page.get_by_role("button", name=re.compile(r"^Execute query")).click()
    expect(page.get_by_role("button", name=re.compile(r"^Stop query"))).to_be_visible()

    _wait_until(page, lambda: any('"type":"subscribe"' in frame for frame in network.ws_frames), "the subscribe frame")

    # Triggered until an event arrives: the first trigger may beat the server's subscription to NATS.
    result = page.locator("section.result-window")
    triggered = graphql(stack, TRIGGER, {"id": schedule["id"]})["triggerSchedule"]
    assert triggered["__typename"] == "TriggerScheduleSuccess", triggered
    for _ in range(LIVE // TRIGGER_EVERY_MS):
        if _shows(result, schedule["id"], TRIGGER_EVERY_MS):
            break
        graphql(stack, TRIGGER, {"id": schedule["id"]})
    expect(result).to_contain_text(schedule["id"])
    shot(page, "21-graphiql-subscription-offline")

    init = [json.loads(frame) for frame in network.ws_frames if '"connection_init"' in frame]
    assert init and init[0].get("payload", {}).get("Authorization") == "Bearer k-ws", network.ws_frames
    assert any(url.startswith("ws://127.0.0.1:") and url.endswith("/graphql") for url in network.urls), network.urls


def test_swagger_ui_renders_with_authorize_and_no_other_host(page: Page, network: Network, stack):
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Scheduler service")
    expect(page.get_by_role("button", name=re.compile("Authorize"))).to_be_visible()
    expect(page.locator(".opblock-summary-path").filter(has_text="/api/v1/schedules").first).to_be_visible()
    page.get_by_role("button", name=re.compile("Authorize")).first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_contain_text("bearer")
    expect(dialog).to_contain_text("X-API-Key")
    shot(page, "22-swagger-ui-offline")
    assert any("/vendor/swagger-ui/swagger-ui-bundle.js" in url for url in network.urls), network.urls


def test_dashboard_renders_with_no_other_host(page: Page, network: Network, stack):
    schedule = create_schedule(stack, name=f"offline-{uuid.uuid4().hex[:6]}")
    page.goto("/")
    page.get_by_label("Search by name").fill(schedule["name"])
    expect(page.locator(f'#schedules-table tr[data-id="{schedule["id"]}"]')).to_be_visible()
    shot(page, "23-dashboard-offline")


def test_dramatiq_dashboard_renders_with_no_other_host(page: Page, network: Network, stack):
    page.goto("/dramatiq/")
    expect(page).to_have_title(re.compile("Dramatiq"))
    expect(page.get_by_role("columnheader", name="Queue")).to_be_visible()
    shot(page, "24-dramatiq-offline")
