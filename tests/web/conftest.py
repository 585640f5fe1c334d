"""Fixtures for the browser tests: the real API, ticker and worker, and headless Debian Chromium via Playwright."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.pipeline.harness import ROOT, Stack

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"


@pytest.fixture(scope="module")
def stack():
    """One private stack (database, Redis namespace, processes) for the module's browser tests."""
    with Stack() as running:
        running.start("api")
        running.start("ticker")
        running.start("worker")
        yield running


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Browser:
    # Depends on `stack` so the stack's asyncio.run() set-up and tear-down happen outside Playwright's
    # sync API, which keeps an event loop running while it is open.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Page:
    """A fresh browser context at 1280×900; JavaScript errors fail the test."""
    context = browser.new_context(base_url=stack.api, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def graphql(stack: Stack, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{stack.api}/graphql", json={"query": query, "variables": variables or {}}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


def create_schedule(stack: Stack, **fields) -> dict:
    """Create a schedule through GraphQL (defaults: a daily cron in New York with tags)."""
    data = {
        "scheduleType": "CRON",
        "cronExpression": "0 9 * * *",
        "timezone": "America/New_York",
        "name": f"web-{uuid.uuid4().hex[:8]}",
        "targetCommand": f"cmd.test.{uuid.uuid4().hex[:12]}",
        "tags": ["web", "daily"],
        **fields,
    }
    result = graphql(
        stack,
        """mutation($i: CreateScheduleInput!) { createSchedule(input: $i) {
        __typename ... on Schedule { id name status version } ... on Error { code message } } }""",
        {"i": data},
    )
    created = result["createSchedule"]
    assert created["__typename"] == "Schedule", created
    return created
