"""Per-request GraphQL context: the services, the acting principal, the request's `now`, loaders."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Depends, Request, WebSocket
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from api.deps import named_principal, utc_now
from core.errors import Unauthenticated
from gql.errors import query_error
from services.audit import AuditService
from services.auth import bearer_token, resolve_actor
from services.context import Actor
from services.executions import ExecutionService
from services.lifecycle import LifecycleService
from services.schemas import ExecutionOut, StatsOut

# The same headers name the principal as on REST; the first one present wins.
ACTOR_HEADERS = (
    "X-Performed-By",
    "X-Created-By",
    "X-Updated-By",
    "X-Deleted-By",
    "X-Paused-By",
    "X-Resumed-By",
    "X-Triggered-By",
)


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
        schedules: LifecycleService,
        executions: ExecutionService,
        audit: AuditService,
        actor: Actor | None,
        now: datetime,
        nats,
        resolve: Callable[..., Awaitable[Actor]],
    ) -> None:
        super().__init__()
        self.schedules = schedules
        self.executions = executions
        self.audit = audit
        self._actor = actor
        self.now = now
        self.nats = nats
        self.resolve = resolve  # resolves the principal of a WebSocket from its connection_init payload
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

    async def resolve(authorization: str | None, api_key: str | None, headers) -> Actor:
        named, header = named_principal(headers, ACTOR_HEADERS)
        return await resolve_actor(
            state.api_keys,
            state.settings.AUTH_ENABLED,
            bearer_token(authorization, api_key),
            named,
            header,
            correlation_id,
        )

    actor = None
    if request is not None:
        actor = await resolve(request.headers.get("Authorization"), request.headers.get("X-API-Key"), request.headers)
    return Context(state.schedules, state.executions, state.audit, actor, now, state.nats, resolve)
