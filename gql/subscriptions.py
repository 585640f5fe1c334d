"""GraphQL subscriptions over WebSocket (graphql-transport-ws), fed from the NATS execution events,
so every API instance streams the events of every worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from core.errors import DomainError, ValidationFailed
from core.states import ExecutionEvent as CoreEvent
from core.states import ExecutionStatus as CoreStatus
from core.tuning import QUEUE_LIMIT
from gql.enums import ExecutionStatus
from gql.errors import query_error
from services.events import EXECUTION_EVENT_PREFIX

EVENT_KINDS = frozenset(kind.value for kind in CoreEvent)


@strawberry.type
class ExecutionEvent:
    event: str
    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    status: ExecutionStatus
    attempt: int | None
    scheduled_for: datetime | None
    at: datetime | None
    reason: str | None
    error: str | None


def _event(subject: str, body: dict) -> ExecutionEvent:
    def instant(key):
        return datetime.fromisoformat(body[key]) if body.get(key) else None

    return ExecutionEvent(
        event=subject.removeprefix(EXECUTION_EVENT_PREFIX),
        execution_id=uuid.UUID(body["execution_id"]) if body.get("execution_id") else uuid.UUID(int=0),
        schedule_id=uuid.UUID(body["schedule_id"]),
        status=ExecutionStatus(body.get("status", CoreStatus.MISSED)),
        attempt=body.get("attempt"),
        scheduled_for=instant("scheduled_for"),
        at=instant("at"),
        reason=body.get("reason"),
        error=body.get("error"),
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Execution state changes as they happen; all schedules when scheduleId is null."
    )
    async def execution_events(
        self, info: strawberry.Info, schedule_id: uuid.UUID | None = None
    ) -> AsyncGenerator[ExecutionEvent, None]:
        actor = info.context.actor
        if schedule_id is not None:
            try:  # the same visibility as a query: a writer follows only its own schedules
                await info.context.schedules.get(schedule_id, actor)
            except DomainError as error:
                raise query_error(error) from None
        elif not actor.sees_everything:
            raise query_error(ValidationFailed.single("scheduleId", "is required for the writer role"))
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_LIMIT)
        wanted = str(schedule_id) if schedule_id else None

        async def on_event(msg) -> None:
            # Only the execution events: the default dead-letter subject shares their prefix.
            if msg.subject.removeprefix(EXECUTION_EVENT_PREFIX) not in EVENT_KINDS:
                return
            try:
                body = json.loads(msg.data)
            except ValueError:
                return
            if wanted and body.get("schedule_id") != wanted:
                return
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((msg.subject, body))

        client = await info.context.nats.connection()
        subscription = await client.subscribe(EXECUTION_EVENT_PREFIX + "*", cb=on_event)
        try:
            while True:
                subject, body = await queue.get()
                yield _event(subject, body)
        finally:
            await subscription.unsubscribe()
