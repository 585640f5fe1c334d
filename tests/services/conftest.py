"""Fixtures of the service tests that talk to Redis: a client, and a key prefix of the test's own."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from tests.support.servers import redis_url


@pytest.fixture
async def redis_client():
    c = redis.from_url(redis_url())
    yield c
    await c.aclose()


@pytest.fixture
async def prefix(redis_client, request):
    """Keys of this test only (the epoch is per prefix), removed afterwards."""
    p = f"test-{request.module.__name__.rsplit('.', 1)[-1]}:{uuid.uuid4().hex[:8]}:"
    yield p
    keys = [k async for k in redis_client.scan_iter(match=f"{p}*")]
    if keys:
        await redis_client.delete(*keys)
