"""The doors' clock: the `now` of a request (tests replace it to freeze time)."""

from __future__ import annotations

from datetime import datetime, timezone


async def utc_now() -> datetime:
    """The current UTC time (async, so a FastAPI dependency on it needs no thread hop)."""
    return datetime.now(timezone.utc)
