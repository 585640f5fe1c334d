"""The NATS door's `cmd.scheduler.execution.complete` (a target's completion report), on the real
services and PostgreSQL (the NATS transport itself is exercised by tests/pipeline/test_e2e.py)."""

from __future__ import annotations

import json
import uuid

from api import nats_commands
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, insert_execution, interval

SUBJECT = f"{nats_commands.SUBJECT_PREFIX}execution.complete"


async def _complete(schedules, body: dict) -> tuple[int, dict]:
    status, reply = await nats_commands.handle(
        schedules, SUBJECT, json.dumps(body).encode(), {"X-Reported-By": "billing"}, T0, None, False
    )
    return status, json.loads(reply)


async def test_the_complete_command_completes_once_and_names_what_is_wrong(engine, schedules):
    created = await schedules.create(interval("reported", 60, completion="report"), ACTOR, T0)
    run = await insert_execution(engine, created.id, status="awaiting", attempts=1, started_at=T0)
    report = {"execution_id": str(run["id"]), "status": "succeeded", "result": {"rows": 3}}

    done = await _complete(schedules, report)
    repeated = await _complete(schedules, report)
    contrary = await _complete(schedules, {**report, "status": "failed"})
    refused = [
        await _complete(schedules, {"status": "succeeded"}),
        await _complete(schedules, {**report, "status": "done"}),
        await _complete(schedules, {**report, "result": {"blob": "x" * 20_000}}),
        await _complete(schedules, {**report, "attempt": 0}),
        await _complete(schedules, {**report, "execution_id": str(uuid.uuid4())}),
    ]

    assert done[0] == repeated[0] == 200 and done[1]["status"] == "succeeded" and done[1]["result"] == {"rows": 3}
    assert repeated[1]["reported_at"] == done[1]["reported_at"]
    assert contrary[0] == 409 and contrary[1]["errors"][0]["field"] == "status"
    assert [(s, p["errors"][0]["field"]) for s, p in refused] == [
        (422, "execution_id"),
        (422, "status"),
        (422, "result"),
        (422, "attempt"),
        (404, "execution_id"),
    ]
    (row,) = await rows(engine, "SELECT status, result FROM executions")
    assert row.status == "succeeded" and row.result == {"rows": 3}
