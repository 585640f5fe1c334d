"""FastAPI dependencies: the services, the clock and the acting principal."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, Request

from core.errors import ValidationFailed
from services.context import Actor
from services.executions import ExecutionService
from services.lifecycle import LifecycleService

_PRINCIPAL = re.compile(r"^[\w.@:+\-/ ]{1,255}$")


def utc_now() -> datetime:
    """The entry point's clock; tests override this dependency to freeze time."""
    return datetime.now(timezone.utc)


def schedules_service(request: Request) -> LifecycleService:
    return request.app.state.schedules


def executions_service(request: Request) -> ExecutionService:
    return request.app.state.executions


def actor_from(*header_names: str):
    """A dependency reading the principal from the first present header (the original service's
    X-Created-By / X-Triggered-By / X-Performed-By ...), falling back to `anonymous`."""

    def dependency(request: Request) -> Actor:
        for name in header_names:
            value = request.headers.get(name)
            if value is not None:
                value = value.strip()
                if not _PRINCIPAL.match(value):
                    raise ValidationFailed.single(name, "must be 1-255 letters, digits or . _ @ : + - / characters")
                return Actor(name=value, correlation_id=request.state.correlation_id)
        return Actor(name="anonymous", correlation_id=request.state.correlation_id)

    return dependency


Now = Annotated[datetime, Depends(utc_now)]
Schedules = Annotated[LifecycleService, Depends(schedules_service)]
Executions = Annotated[ExecutionService, Depends(executions_service)]
Creator = Annotated[Actor, Depends(actor_from("X-Created-By", "X-Performed-By"))]
Updater = Annotated[Actor, Depends(actor_from("X-Updated-By", "X-Performed-By", "X-Created-By"))]
Deleter = Annotated[Actor, Depends(actor_from("X-Deleted-By", "X-Performed-By"))]
Pauser = Annotated[Actor, Depends(actor_from("X-Paused-By", "X-Performed-By"))]
Resumer = Annotated[Actor, Depends(actor_from("X-Resumed-By", "X-Performed-By"))]
Triggerer = Annotated[Actor, Depends(actor_from("X-Triggered-By", "X-Performed-By"))]
Performer = Annotated[Actor, Depends(actor_from("X-Performed-By"))]
