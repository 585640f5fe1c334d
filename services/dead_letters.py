"""Dead letters: the message published once when a run finally fails (no retry left).

Owns the dead letter's subject, headers and body. It goes to the schedule's `dead_letter_subject`,
else to the DEAD_LETTER_SUBJECT setting, and carries the command as it was last sent (subject,
headers, JSON payload), the attempts made and the last error. Its `Nats-Msg-Id` is
`dead-letter-<execution id>-<attempt>`: a JetStream stream over the subject keeps one copy of a
failure's dead letter however often it is sent, and a run retried by hand that fails again has a new
one. Instants are UTC, ISO 8601.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Protocol

from core.subjects import dead_letter_problem
from services.publisher import MSG_ID_HEADER, Outgoing

# Dead letters are plain publishes (JetStream when a stream covers the subject), confirmed within this.
DEAD_LETTER_TIMEOUT_SECONDS = 5.0


class FailedRun(Protocol):
    """What a dead letter names of the run (services.firing.Claimed provides it)."""

    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    name: str
    scheduled_for: datetime
    attempt: int
    correlation_id: str | None
    dead_letter_subject: str | None


def dead_letter_subject_of(run: FailedRun, default: str, whitelist: list[str]) -> str:
    """The schedule's dead-letter subject while it is still allowed (the whitelist may have narrowed
    since it was saved), else `default` (DEAD_LETTER_SUBJECT)."""
    chosen = run.dead_letter_subject
    if chosen and dead_letter_problem(chosen, default, whitelist) is None:
        return chosen
    return default


def dead_letter(
    run: FailedRun, command: Outgoing, error: str | None, reason: str | None, subject: str, failed_at: datetime
) -> Outgoing:
    """The dead letter of `run` to `subject`: its last attempt sent `command` and failed with `error`."""
    body = {
        "execution_id": str(run.execution_id),
        "schedule_id": str(run.schedule_id),
        "schedule_name": run.name,
        "scheduled_for": run.scheduled_for.isoformat(),
        "attempts": run.attempt,
        "error": error,
        "reason": reason,
        "failed_at": failed_at.isoformat(),
        "command": {"subject": command.subject, "headers": command.headers, "payload": json.loads(command.body)},
    }
    headers = {
        MSG_ID_HEADER: f"dead-letter-{run.execution_id}-{run.attempt}",
        "Scheduler-Execution-Id": str(run.execution_id),
        "Scheduler-Schedule-Id": str(run.schedule_id),
        "Scheduler-Correlation-Id": run.correlation_id or str(run.execution_id),
    }
    return Outgoing(
        execution_id=str(run.execution_id),
        subject=subject,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers=headers,
        timeout_seconds=DEAD_LETTER_TIMEOUT_SECONDS,
    )
