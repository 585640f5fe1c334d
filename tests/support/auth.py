"""Authentication headers for the tests that run with authentication on."""

from __future__ import annotations


def bearer(keys: dict[str, str], who: str) -> dict[str, str]:
    """The Authorization header of `who`'s API key; no header for a principal without a key."""
    return {"Authorization": f"Bearer {keys[who]}"} if who in keys else {}
