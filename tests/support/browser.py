"""The browser tests' helpers: screenshots, and GraphQL calls to a running stack's API."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.support.harness import ROOT, Stack

SCREENSHOTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"


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
