"""The stores and the database refuse what the transition table of core.states forbids."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.outcomes import Decision
from core.states import ExecutionStatus, InvalidTransition, transition_pairs
from services.context import Actor
from services.runs import Outcome
from services.schemas import ScheduleCreate
from services.stores import executions as store

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=timezone.utc)


async def _schedule_id(schedules) -> uuid.UUID:
    body = ScheduleCreate(name="s", schedule_type="interval", interval_seconds=60, target_command="cmd.t.s")
    return (await schedules.create(body, Actor("tests"), T0)).id


async def test_the_database_allows_exactly_the_transitions_of_the_table(engine, schedules):
    schedule_id = await _schedule_id(schedules)
    allowed = []

    for current, target in itertools.product(ExecutionStatus, ExecutionStatus):
        if current == target:
            continue
        try:
            async with engine.begin() as conn:
                execution_id = uuid.uuid4()
                await conn.execute(
                    sa.text(
                        "INSERT INTO executions (id, schedule_id, scheduled_for, trigger_type, status, attempts,"
                        " attempt_log, created_at) VALUES (:id, :s, :t, 'manual', :status, 0, '[]', :t)"
                    ),
                    {"id": execution_id, "s": schedule_id, "t": T0, "status": current.value},
                )
                await conn.execute(
                    sa.text("UPDATE executions SET status = :status WHERE id = :id"),
                    {"id": execution_id, "status": target.value},
                )
            allowed.append((current.value, target.value))
        except IntegrityError as error:
            assert "cannot change status" in str(error)

    assert sorted(allowed) == transition_pairs()


@pytest.mark.parametrize("decision", [Decision(ExecutionStatus.PENDING), Decision(ExecutionStatus.RUNNING)])
async def test_the_store_refuses_an_outcome_the_table_does_not_allow(engine, decision):
    outcome = Outcome(uuid.uuid4(), uuid.uuid4(), "interval", 1, T0, T0, decision)

    with pytest.raises(InvalidTransition):
        async with engine.begin() as conn:
            await store.record(conn, [outcome], T0, "claim")


async def test_the_store_refuses_a_slot_born_running(engine, schedules):
    schedule_id = await _schedule_id(schedules)
    columns = {
        "ids": [uuid.uuid4()],
        "schedule_ids": [schedule_id],
        "slots": [T0],
        "statuses": [ExecutionStatus.RUNNING.value],
        "reasons": [None],
        "priorities": [5],
        "not_befores": [None],
        "enqueued": [None],
        "finished": [None],
    }

    with pytest.raises(InvalidTransition):
        async with engine.begin() as conn:
            await store.insert_slots(conn, columns, T0)

    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM executions"))).scalar() == 0
