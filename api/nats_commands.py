"""NATS request/reply commands `cmd.scheduler.schedule.{create,update,delete,pause,resume,trigger}` and
`cmd.scheduler.execution.{retry,complete}` (`complete`: a target's completion report, body
`{"execution_id", "status", "error"?, "result"?, "attempt"?}`).

Served by every API instance in one queue group (each request is handled once). The reply body is
the same JSON the REST route answers; failures are the same problem documents, and every reply
carries a `Scheduler-Status` header with the HTTP-equivalent status (503 while PostgreSQL is unreachable:
nothing was written, send it again). Credentials and the acting
principal come from the same headers, in the same order per operation, as REST (Authorization,
X-Created-By, X-Performed-By, ...; see `services.principals.PRINCIPAL_HEADERS`); header names are
matched without regard to case. A `traceparent` header is stored with the runs a command creates, and
`X-Correlation-ID` names the command in logs, the audit trail and the runs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import structlog
from pydantic import ValidationError

from core.errors import DomainError, ValidationFailed
from models.db import database_unreachable
from services.auth import ApiKeyService
from services.lifecycle import LifecycleService
from services.principals import PRINCIPAL_HEADERS, HeaderMap, resolve_principal
from services.problems import UNAVAILABLE, internal_problem, problem, problem_of
from services.schedules import validation_errors_of
from services.schemas import (
    CompletionReport,
    PauseRequest,
    ReasonRequest,
    ScheduleCreate,
    ScheduleUpdate,
    TriggerRequest,
)

log = logging.getLogger("api.nats")
SUBJECT_PREFIX = "cmd.scheduler."
# The families of commands: `cmd.scheduler.<family>.<operation>`.
FAMILIES = ("schedule", "execution")
QUEUE_GROUP = "scheduler-service"
Handler = Callable[..., Awaitable[tuple[int, Any]]]


def _id_field(body: dict[str, Any], name: str) -> uuid.UUID:
    """Take the UUID `name` out of the command's body (422 naming it when missing or malformed)."""
    try:
        return uuid.UUID(str(body.pop(name)))
    except KeyError:
        raise ValidationFailed.single(name, "is required") from None
    except ValueError:
        raise ValidationFailed.single(name, "is not a valid UUID") from None


def _schedule_id(body: dict[str, Any]) -> uuid.UUID:
    return _id_field(body, "schedule_id")


async def _create(service, body, actor, now):
    return 201, (await service.create(ScheduleCreate.model_validate(body), actor, now)).model_dump(mode="json")


async def _update(service, body, actor, now):
    schedule_id = _schedule_id(body)
    return 200, (await service.update(schedule_id, ScheduleUpdate.model_validate(body), actor, now)).model_dump(
        mode="json"
    )


async def _delete(service, body, actor, now):
    schedule_id = _schedule_id(body)
    await service.delete(schedule_id, actor, now, ReasonRequest.model_validate(body).reason)
    return 204, None


async def _pause(service, body, actor, now):
    schedule_id = _schedule_id(body)
    request = PauseRequest.model_validate(body)
    return 200, (await service.pause(schedule_id, actor, now, request.reason, request.until)).model_dump(mode="json")


async def _resume(service, body, actor, now):
    schedule_id = _schedule_id(body)
    reason = ReasonRequest.model_validate(body).reason
    return 200, (await service.resume(schedule_id, actor, now, reason)).model_dump(mode="json")


async def _trigger(service, body, actor, now):
    schedule_id = _schedule_id(body)
    override = TriggerRequest.model_validate(body).override_payload
    return 200, (await service.trigger(schedule_id, actor, now, override)).model_dump(mode="json")


async def _retry(service, body, actor, now):
    execution_id = _id_field(body, "execution_id")
    if body:
        raise ValidationFailed.single(next(iter(body)), "is not a field of this command")
    return 200, (await service.retry_execution(execution_id, actor, now)).model_dump(mode="json")


async def _complete(service, body, actor, now):
    execution_id = _id_field(body, "execution_id")
    report = CompletionReport.model_validate(body)
    return 200, (await service.complete_execution(execution_id, report, actor, now)).model_dump(mode="json")


HANDLERS: dict[str, Handler] = {
    "schedule.create": _create,
    "schedule.update": _update,
    "schedule.delete": _delete,
    "schedule.pause": _pause,
    "schedule.resume": _resume,
    "schedule.trigger": _trigger,
    "execution.retry": _retry,
    "execution.complete": _complete,
}


def _body_of(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data or b"{}")
    except ValueError as error:
        raise ValidationFailed.single("body", f"is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ValidationFailed.single("body", "must be a JSON object")
    return body


async def handle(
    service: LifecycleService,
    subject: str,
    data: bytes,
    headers: Mapping[str, str],
    now: datetime,
    api_keys: ApiKeyService,
    auth_enabled: bool,
) -> tuple[int, bytes]:
    """Run one command; returns (status, reply body). Never raises. Its log lines carry its correlation id."""
    found = HeaderMap(headers)
    correlation_id = (found.get("X-Correlation-ID") or str(uuid.uuid4()))[:64]
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
        return await _run(service, subject, data, found, correlation_id, now, api_keys, auth_enabled)


async def _run(
    service: LifecycleService,
    subject: str,
    data: bytes,
    found: HeaderMap,
    correlation_id: str,
    now: datetime,
    api_keys: ApiKeyService,
    auth_enabled: bool,
) -> tuple[int, bytes]:
    operation = subject.removeprefix(SUBJECT_PREFIX)
    try:
        verb = operation.rpartition(".")[2]
        header_names = PRINCIPAL_HEADERS.get(verb, PRINCIPAL_HEADERS["request"])
        actor = await resolve_principal(found, header_names, api_keys, auth_enabled, correlation_id)
        handler = HANDLERS.get(operation)
        if handler is None:
            raise ValidationFailed.single(
                "subject", f"unknown operation {operation!r}; expected one of {', '.join(HANDLERS)}"
            )
        body = _body_of(data)
        try:
            status, reply = await handler(service, body, actor, now)
        except ValidationError as error:
            raise ValidationFailed(validation_errors_of(error)) from None
        return status, json.dumps(reply).encode() if reply is not None else b""
    except DomainError as error:
        refused = problem_of(error, correlation_id)
        return refused["status"], json.dumps(refused).encode()
    except Exception as error:
        if database_unreachable(error):  # PostgreSQL restarting: nothing was written; the sender may retry
            log.warning(
                "database unavailable",
                extra={"action": "nats.database_unavailable", "subject": subject, "error": str(error)[:300]},
            )
            return 503, json.dumps(problem(503, *UNAVAILABLE, [], correlation_id)).encode()
        log.exception("command failed", extra={"action": "nats.command_failed", "subject": subject})
        return 500, json.dumps(internal_problem(correlation_id)).encode()


async def subscribe(nats_connection, service: LifecycleService, api_keys: ApiKeyService, auth_enabled: bool):
    """Subscribe the API's queue group; returns the subscriptions (unsubscribe on shutdown)."""
    client = await nats_connection.connection()

    async def on_message(msg) -> None:
        status, reply = await handle(
            service, msg.subject, msg.data, dict(msg.headers or {}), datetime.now(timezone.utc), api_keys, auth_enabled
        )
        if msg.reply:
            await client.publish(msg.reply, reply, headers={"Scheduler-Status": str(status)})

    return [await client.subscribe(f"{SUBJECT_PREFIX}{f}.*", queue=QUEUE_GROUP, cb=on_message) for f in FAMILIES]
