"""The acting principal of a request, resolved the same way by every door (REST, GraphQL, NATS).

This module owns the headers that name a principal for each kind of operation, their validation,
and the extraction of the API key (`Authorization: Bearer <key>` or `X-API-Key`). The doors pass
their request's headers and the operation's header names; `services.auth.resolve_actor` decides
who acts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Protocol

from core.errors import ValidationFailed
from core.traceparent import HEADER as TRACEPARENT
from core.traceparent import normalized
from services.auth import ApiKeyService, bearer_token, resolve_actor
from services.context import Actor

_PRINCIPAL = re.compile(r"^[\w.@:+\-/ ]{1,255}$")
DEFAULT_HEADER = "X-Performed-By"

# The headers naming the principal of each kind of operation; the first one present wins. These
# are the REST routes' orders (the reference for every door): a route's own header, then
# X-Performed-By (an update also accepts X-Created-By last). A read names nobody: the key decides.
# `request` is the order for a request whose operations are not known when it authenticates (a
# GraphQL document over HTTP or a WebSocket's connection_init): every header, X-Performed-By first.
PRINCIPAL_HEADERS: dict[str, tuple[str, ...]] = {
    "read": (),
    "create": ("X-Created-By", "X-Performed-By"),
    "update": ("X-Updated-By", "X-Performed-By", "X-Created-By"),
    "delete": ("X-Deleted-By", "X-Performed-By"),
    "pause": ("X-Paused-By", "X-Performed-By"),
    "resume": ("X-Resumed-By", "X-Performed-By"),
    "trigger": ("X-Triggered-By", "X-Performed-By"),
    "perform": ("X-Performed-By",),
    "retry": ("X-Retried-By", "X-Performed-By"),
    "complete": ("X-Reported-By", "X-Performed-By"),
    "request": (
        "X-Performed-By",
        "X-Created-By",
        "X-Updated-By",
        "X-Deleted-By",
        "X-Paused-By",
        "X-Resumed-By",
        "X-Triggered-By",
        "X-Retried-By",
        "X-Reported-By",
    ),
}


class Headers(Protocol):
    """A header mapping whose `get` ignores the case of the name (Starlette's `Headers`, `HeaderMap`)."""

    def get(self, key: str, default: None = None) -> str | None: ...


class HeaderMap:
    """A case-insensitive view of plain name/value pairs (NATS message headers, connection_init
    parameters); when a name repeats in another case, its first value counts."""

    def __init__(self, pairs: Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        self._values: dict[str, str] = {}
        for name, value in items:
            if isinstance(value, str):
                self._values.setdefault(name.lower(), value)

    def get(self, key: str, default: None = None) -> str | None:
        return self._values.get(key.lower(), default)


def named_principal(headers: Headers, header_names: tuple[str, ...]) -> tuple[str | None, str]:
    """The first of `header_names` present (validated) and its name; else None and the name a
    refusal cites (the first of `header_names`, or X-Performed-By)."""
    for name in header_names:
        value = headers.get(name)
        if value is not None:
            value = value.strip()
            if not _PRINCIPAL.match(value):
                raise ValidationFailed.single(name, "must be 1-255 letters, digits or . _ @ : + - / characters")
            return value, name
    return None, header_names[0] if header_names else DEFAULT_HEADER


async def resolve_principal(
    headers: Headers,
    header_names: tuple[str, ...],
    api_keys: ApiKeyService,
    auth_enabled: bool,
    correlation_id: str,
) -> Actor:
    """The acting principal of one request: the named header is validated, the key taken from
    `Authorization: Bearer` or `X-API-Key`, and `resolve_actor` applied; a valid `traceparent` header
    is kept with the actor. Raises `ValidationFailed`, `Unauthenticated` or `Forbidden`."""
    named, header = named_principal(headers, header_names)
    token = bearer_token(headers.get("Authorization"), headers.get("X-API-Key"))
    actor = await resolve_actor(api_keys, auth_enabled, token, named, header, correlation_id)
    traceparent = normalized(headers.get(TRACEPARENT))
    return replace(actor, traceparent=traceparent) if traceparent else actor
