"""A claimed run and its command: what a worker holds of a run while it decides its fate.

Owns `Claimed` (a run with its schedule's fields, as the store's CLAIM and LOAD_RUN return it),
`Outcome` (one attempt as recorded) and `render_command` (the NATS message of a run: templated body,
metadata headers, the execution id as `Nats-Msg-Id`). Instants are UTC.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.outcomes import Decision
from core.overlap import Completion, OverlapPolicy
from core.states import ExecutionStatus
from core.templates import render
from core.traceparent import HEADER as TRACEPARENT
from core.traceparent import for_run as trace_for_run
from services.publisher import MSG_ID_HEADER, Outgoing


@dataclass(frozen=True)
class Claimed:
    """A run this worker now owns (status `running`), with what it needs from its schedule."""

    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    attempt: int
    trigger_type: str
    payload_override: dict | None
    correlation_id: str | None
    priority: int
    name: str
    schedule_status: str
    schedule_type: str
    target_command: str
    command_payload: dict
    delivery_mode: str
    request_timeout_seconds: int
    max_retries: int
    retry_delay: int
    max_concurrent: int
    misfire_grace_seconds: int = 0
    # An earlier attempt may have reached NATS (executions.may_have_published).
    may_have_published: bool = False
    due: datetime | None = None  # when it may be published (slot + jitter, UTC); None = at once
    traceparent: str | None = None  # the request's W3C traceparent (executions.traceparent)
    span: str | None = None  # this attempt's traceparent: the run's trace, its own span as parent
    pause_after_failures: int | None = None  # pause the schedule after this many failed runs in a row
    dead_letter_subject: str | None = None  # where its dead letter goes (None: DEAD_LETTER_SUBJECT)
    completion: str = Completion.NONE  # `report`: the run ends when the target reports
    completion_timeout_seconds: int = 300  # with `report`: how long the report may take after the publish
    overlap_policy: str = OverlapPolicy.ALLOW  # what it does while an earlier run is in progress
    # An earlier attempt reached the target for sure (it reported a failure, or timed out): this one
    # gets its own Nats-Msg-Id, or a JetStream stream would drop it as a repeat.
    delivered_before: bool = False


@dataclass(frozen=True)
class Outcome:
    """One attempt of one run as recorded: the run's identity, its timing and the policy's decision."""

    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    schedule_type: str
    attempt: int
    scheduled_for: datetime
    started_at: datetime
    decision: Decision
    subject: str | None = None  # the target subject, when the run got as far as publishing
    published_at: datetime | None = None  # when its publish began (UTC); None when nothing was sent
    settled_at: datetime | None = None  # when its publish's outcome was known (UTC); None when nothing was sent
    correlation_id: str | None = None  # of the request that created or triggered the run
    traceparent: str | None = None  # the attempt's span (Claimed.span)
    complete_by: datetime | None = None  # for an `awaiting` outcome: when its completion times out (UTC)

    @classmethod
    def of(cls, run: Claimed, now: datetime, decision: Decision, subject: str | None = None) -> Outcome:
        started = max(now, run.due) if run.due is not None else now  # a run claimed ahead starts at its instant
        return cls(
            run.execution_id,
            run.schedule_id,
            run.schedule_type,
            run.attempt,
            run.scheduled_for,
            started,
            decision,
            subject,
            correlation_id=run.correlation_id,
            traceparent=run.span,
        )

    @property
    def status(self) -> ExecutionStatus:
        return self.decision.status

    @property
    def reason(self) -> str | None:
        return self.decision.reason.value if self.decision.reason else None

    @property
    def error(self) -> str | None:
        return self.decision.error

    @property
    def retry_in_ms(self) -> int | None:
        return self.decision.retry_in_ms

    @property
    def waits_for_nats(self) -> bool:
        return self.decision.waits_for_nats

    @property
    def via(self) -> str | None:
        return self.decision.via


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def claimed_of(row: Any) -> Claimed:
    """The Claimed of a row the executions store returned with its schedule's fields (CLAIM, LOAD_RUN)."""
    return Claimed(
        execution_id=row.id,
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
        attempt=row.attempts,
        trigger_type=row.trigger_type,
        payload_override=_json(row.payload_override),
        correlation_id=row.correlation_id,
        priority=row.priority,
        name=row.name,
        schedule_status=row.schedule_status,
        schedule_type=row.schedule_type,
        target_command=row.target_command,
        command_payload=_json(row.command_payload),
        delivery_mode=row.delivery_mode,
        request_timeout_seconds=row.request_timeout_seconds,
        max_retries=row.max_retries,
        retry_delay=row.retry_delay,
        max_concurrent=row.max_concurrent,
        misfire_grace_seconds=row.misfire_grace_seconds,
        may_have_published=row.may_have_published,
        due=getattr(row, "due", None),
        traceparent=getattr(row, "traceparent", None),
        pause_after_failures=getattr(row, "pause_after_failures", None),
        dead_letter_subject=getattr(row, "dead_letter_subject", None),
        completion=getattr(row, "completion", Completion.NONE),
        completion_timeout_seconds=getattr(row, "completion_timeout_seconds", 300),
        overlap_policy=getattr(row, "overlap_policy", OverlapPolicy.ALLOW),
        delivered_before=bool(getattr(row, "delivered_before", False)),
    )


def render_command(run: Claimed) -> Outgoing:
    """The NATS message of one run: templated body, metadata headers, execution id as Nats-Msg-Id, and
    a W3C `traceparent` naming the attempt's span (`run.span`, else derived from the stored one)."""
    values = {
        "scheduled_for": run.scheduled_for.isoformat(),
        "execution_id": str(run.execution_id),
        "attempt": str(run.attempt),
        "schedule.id": str(run.schedule_id),
        "schedule.name": run.name,
    }
    payload = render(run.payload_override if run.payload_override is not None else run.command_payload, values)
    headers = {
        MSG_ID_HEADER: f"{run.execution_id}.{run.attempt}" if run.delivered_before else str(run.execution_id),
        "Scheduler-Execution-Id": str(run.execution_id),
        "Scheduler-Schedule-Id": str(run.schedule_id),
        "Scheduler-Scheduled-For": run.scheduled_for.isoformat(),
        "Scheduler-Attempt": str(run.attempt),
        "Scheduler-Correlation-Id": run.correlation_id or str(run.execution_id),
        TRACEPARENT: run.span or trace_for_run(run.traceparent, run.execution_id, run.attempt).header(),
    }
    return Outgoing(
        execution_id=str(run.execution_id),
        subject=run.target_command,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        headers=headers,
        mode=run.delivery_mode,
        timeout_seconds=float(run.request_timeout_seconds),
    )
