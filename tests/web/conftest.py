"""Fixtures for the browser tests: the real API, ticker and worker, and headless Chromium via Playwright.

The browser is `CHROMIUM` when set, else the machine's Chromium (Debian's `chromium`), else the one
`playwright install chromium` downloaded (`make test` tries that when no Chromium is found).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.harness import Stack

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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
    with sync_playwright() as playwright:
        bundled = playwright.chromium.executable_path
        assert CHROMIUM or Path(bundled).exists(), (
            "no Chromium: apt-get install chromium, or .venv/bin/playwright install chromium, or set CHROMIUM"
        )
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
