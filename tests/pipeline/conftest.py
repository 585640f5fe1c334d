"""Fixtures for tests that run the service's real processes."""

from __future__ import annotations

import pytest

from tests.support.harness import Stack


@pytest.fixture
def stack():
    """A private database and Dramatiq namespace; start processes with `stack.start("ticker")`."""
    with Stack() as running:
        yield running
