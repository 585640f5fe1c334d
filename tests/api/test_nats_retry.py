"""The NATS door's `cmd.scheduler.execution.retry`, on the real services and PostgreSQL (the NATS
transport itself is exercised by tests/pipeline/test_e2e.py)."""

from __future__ import annotations

import json

from api import nats_commands
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, insert_execution, interval

SUBJECT = f"{nats_commands.SUBJECT_PREFIX}execution.retry"


async def _retry(schedules, body: dict) -> tuple[int, dict]:
    status, reply = await nats_commands.handle(
        schedules, SUBJECT, json.dumps(body).encode(), {"X-Retried-By": "ops"}, T0, None, False
    )
    return status, json.loads(reply)


async def test_the_retry_command_retries_a_failed_run_once_and_names_what_is_wrong(engine, schedules):
    created = await schedules.create(interval("over-nats", 60), ACTOR, T0)
    run = await insert_execution(engine, created.id, status="failed", attempts=1)

    done = await _retry(schedules, {"execution_id": str(run["id"])})
    again = await _retry(schedules, {"execution_id": str(run["id"])})
    missing = await _retry(schedules, {})
    malformed = await _retry(schedules, {"execution_id": "nope"})
    extra = await _retry(schedules, {"execution_id": str(run["id"]), "schedule_id": str(created.id)})

    assert done[0] == 200 and (done[1]["id"], done[1]["status"]) == (str(run["id"]), "pending")
    assert again[0] == 409 and again[1]["errors"][0]["field"] == "status"
    assert [(s, p["errors"][0]["field"]) for s, p in (missing, malformed, extra)] == [
        (422, "execution_id"),
        (422, "execution_id"),
        (422, "schedule_id"),
    ]
    (row,) = await rows(engine, "SELECT status FROM executions")
    (audit,) = await rows(engine, "SELECT actor FROM audit_log WHERE action = 'execution.retried'")
    assert row.status == "pending" and audit.actor == "ops"
