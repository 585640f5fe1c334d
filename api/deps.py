"""The REST door's FastAPI dependencies: the services, the clock and the acting principal of each
kind of operation (header orders in `services.principals.PRINCIPAL_HEADERS`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from core.errors import ValidationFailed
from services.backfills import BackfillService
from services.clock import utc_now
from services.context import Actor
from services.executions import ExecutionService
from services.principals import PRINCIPAL_HEADERS, resolve_principal


async def schedules_service(request: Request) -> BackfillService:
    return request.app.state.schedules


async def executions_service(request: Request) -> ExecutionService:
    return request.app.state.executions


def actor_from(operation: str):
    """A dependency resolving the principal of an `operation` (a key of `PRINCIPAL_HEADERS`): from
    the API key when authentication is on (a header naming someone else is then only honoured for
    admins), else from the operation's X-Created-By / X-Triggered-By / X-Performed-By ... header,
    falling back to `anonymous`."""
    header_names = PRINCIPAL_HEADERS[operation]

    async def dependency(request: Request) -> Actor:
        state = request.app.state
        return await resolve_principal(
            request.headers, header_names, state.api_keys, state.settings.AUTH_ENABLED, request.state.correlation_id
        )

    return dependency


async def reject_nul_query(request: Request) -> None:
    """PostgreSQL text holds no NUL character: a query parameter with one is refused, not a 500."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise ValidationFailed.single(name.replace("\x00", ""), "must not contain NUL (\\u0000) characters")


Now = Annotated[datetime, Depends(utc_now)]
Schedules = Annotated[BackfillService, Depends(schedules_service)]
Executions = Annotated[ExecutionService, Depends(executions_service)]
Reader = Annotated[Actor, Depends(actor_from("read"))]
Creator = Annotated[Actor, Depends(actor_from("create"))]
Updater = Annotated[Actor, Depends(actor_from("update"))]
Deleter = Annotated[Actor, Depends(actor_from("delete"))]
Pauser = Annotated[Actor, Depends(actor_from("pause"))]
Resumer = Annotated[Actor, Depends(actor_from("resume"))]
Triggerer = Annotated[Actor, Depends(actor_from("trigger"))]
Performer = Annotated[Actor, Depends(actor_from("perform"))]
Retrier = Annotated[Actor, Depends(actor_from("retry"))]
Reporter = Annotated[Actor, Depends(actor_from("complete"))]
