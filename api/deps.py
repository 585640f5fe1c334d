"""FastAPI dependencies: the services, the clock and the acting principal."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, Request

from core.errors import ValidationFailed
from services.auth import bearer_token, resolve_actor
from services.context import Actor
from services.executions import ExecutionService
from services.lifecycle import LifecycleService

_PRINCIPAL = re.compile(r"^[\w.@:+\-/ ]{1,255}$")


async def utc_now() -> datetime:
    """The entry point's clock; tests override this dependency to freeze time (async: no thread hop)."""
    return datetime.now(timezone.utc)


async def schedules_service(request: Request) -> LifecycleService:
    return request.app.state.schedules


async def executions_service(request: Request) -> ExecutionService:
    return request.app.state.executions


def named_principal(headers, header_names: tuple[str, ...]) -> tuple[str | None, str]:
    """The first X-…-By header present (validated) and its name."""
    for name in header_names:
        value = headers.get(name)
        if value is not None:
            value = value.strip()
            if not _PRINCIPAL.match(value):
                raise ValidationFailed.single(name, "must be 1-255 letters, digits or . _ @ : + - / characters")
            return value, name
    return None, header_names[0] if header_names else "X-Performed-By"


def actor_from(*header_names: str):
    """A dependency resolving the principal: from the API key when authentication is on (a header
    naming someone else is then only honoured for admins), else from the original service's
    X-Created-By / X-Triggered-By / X-Performed-By ... headers, falling back to `anonymous`."""

    async def dependency(request: Request) -> Actor:
        named, header = named_principal(request.headers, header_names)
        state = request.app.state
        token = bearer_token(request.headers.get("Authorization"), request.headers.get("X-API-Key"))
        return await resolve_actor(
            state.api_keys, state.settings.AUTH_ENABLED, token, named, header, request.state.correlation_id
        )

    return dependency


async def reject_nul_query(request: Request) -> None:
    """PostgreSQL text holds no NUL character: a query parameter with one is refused, not a 500."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise ValidationFailed.single(name.replace("\x00", ""), "must not contain NUL (\\u0000) characters")


Now = Annotated[datetime, Depends(utc_now)]
Schedules = Annotated[LifecycleService, Depends(schedules_service)]
Executions = Annotated[ExecutionService, Depends(executions_service)]
Reader = Annotated[Actor, Depends(actor_from())]
Creator = Annotated[Actor, Depends(actor_from("X-Created-By", "X-Performed-By"))]
Updater = Annotated[Actor, Depends(actor_from("X-Updated-By", "X-Performed-By", "X-Created-By"))]
Deleter = Annotated[Actor, Depends(actor_from("X-Deleted-By", "X-Performed-By"))]
Pauser = Annotated[Actor, Depends(actor_from("X-Paused-By", "X-Performed-By"))]
Resumer = Annotated[Actor, Depends(actor_from("X-Resumed-By", "X-Performed-By"))]
Triggerer = Annotated[Actor, Depends(actor_from("X-Triggered-By", "X-Performed-By"))]
Performer = Annotated[Actor, Depends(actor_from("X-Performed-By"))]
