"""Per-request GraphQL context: the services, the acting principal, the request's `now`, loaders."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Depends, Request, WebSocket
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from core.errors import Unauthenticated
from gql.errors import query_error
from services.audit import AuditService
from services.backfills import BackfillService
from services.calendars import CalendarService
from services.clock import utc_now
from services.context import Actor
from services.executions import ExecutionService
from services.principals import PRINCIPAL_HEADERS, Headers, resolve_principal
from services.schemas import ExecutionOut, StatsOut


@dataclass
class Loaders:
    """Batch per-schedule lookups across one request (a page of 50 schedules costs one query each)."""

    executions: ExecutionService
    last_execution: DataLoader = field(init=False)
    stats: DataLoader = field(init=False)

    def __post_init__(self) -> None:
        async def load_last(ids: list[uuid.UUID]) -> list[ExecutionOut | None]:
            found = await self.executions.latest_for(list(ids))
            return [found.get(i) for i in ids]

        async def load_stats(ids: list[uuid.UUID]) -> list[StatsOut]:
            found = await self.executions.stats_many(list(ids))
            return [found[i] for i in ids]

        self.last_execution = DataLoader(load_fn=load_last)
        self.stats = DataLoader(load_fn=load_stats)


class Context(BaseContext):
    def __init__(
        self,
        schedules: BackfillService,
        executions: ExecutionService,
        audit: AuditService,
        actor: Actor | None,
        now: datetime,
        nats,
        resolve: Callable[[Headers], Awaitable[Actor]],
        calendars: CalendarService,
    ) -> None:
        super().__init__()
        self.calendars = calendars
        self.schedules = schedules
        self.executions = executions
        self.audit = audit
        self._actor = actor
        self.now = now
        self.nats = nats
        self.resolve = resolve  # resolves the principal of a WebSocket from its connection_init parameters
        self.connection_params: dict | None = None
        self.loaders = Loaders(executions)

    @property
    def actor(self) -> Actor:
        if self._actor is None:  # a WebSocket that never sent valid credentials
            raise query_error(Unauthenticated())
        return self._actor

    @actor.setter
    def actor(self, value: Actor) -> None:
        self._actor = value


async def get_context(
    request: Request = None, websocket: WebSocket = None, now: datetime = Depends(utc_now)
) -> Context:  # type: ignore[assignment]
    """HTTP requests authenticate here (headers); WebSockets in `GraphQLRouter.on_ws_connect`."""
    connection = request or websocket
    state = connection.app.state
    correlation_id = getattr(connection.state, "correlation_id", None) or str(uuid.uuid4())

    async def resolve(headers: Headers) -> Actor:
        return await resolve_principal(
            headers, PRINCIPAL_HEADERS["request"], state.api_keys, state.settings.AUTH_ENABLED, correlation_id
        )

    actor = await resolve(request.headers) if request is not None else None
    return Context(state.schedules, state.executions, state.audit, actor, now, state.nats, resolve, state.calendars)
