"""Per-request GraphQL context: the services, the acting principal, the request's `now`, loaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Depends, Request, WebSocket
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from api.deps import utc_now
from services.audit import AuditService
from services.context import Actor
from services.executions import ExecutionService
from services.lifecycle import LifecycleService
from services.schemas import ExecutionOut, StatsOut

# The same headers name the principal as on REST; the first one present wins.
ACTOR_HEADERS = ("X-Performed-By", "X-Created-By", "X-Updated-By", "X-Deleted-By", "X-Paused-By", "X-Resumed-By", "X-Triggered-By")


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
    def __init__(self, schedules: LifecycleService, executions: ExecutionService, audit: AuditService,
                 actor: Actor, now: datetime, nats) -> None:
        super().__init__()
        self.schedules = schedules
        self.executions = executions
        self.audit = audit
        self.actor = actor
        self.now = now
        self.nats = nats
        self.loaders = Loaders(executions)


def _actor(headers, correlation_id: str) -> Actor:
    for name in ACTOR_HEADERS:
        value = headers.get(name)
        if value and value.strip():
            return Actor(name=value.strip()[:255], correlation_id=correlation_id)
    return Actor(name="anonymous", correlation_id=correlation_id)


async def get_context(request: Request = None, websocket: WebSocket = None, now: datetime = Depends(utc_now)) -> Context:  # type: ignore[assignment]
    connection = request or websocket
    state = connection.app.state
    correlation_id = getattr(connection.state, "correlation_id", None) or str(uuid.uuid4())
    return Context(state.schedules, state.executions, state.audit, _actor(connection.headers, correlation_id), now, state.nats)
