"""After a run finally fails: its dead letter and the auto-pause, against the real PostgreSQL and NATS."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import nats
import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator

from core.errors import ValidationFailed
from core.outcomes import Decision
from runtime.nats_client import NatsConnection
from services.dead_letters import dead_letter_subject_of
from services.firing import FireResult, FiringService
from services.locks import ScheduleLocks
from services.payload_schemas import PayloadSchema, PayloadSchemas
from services.publisher import CommandPublisher
from services.runs import Outcome
from services.schemas import ScheduleCreate
from services.validation import validate_schedule
from tests.support.database import rows
from tests.support.factories import ACTOR, T0, interval
from tests.support.harness import wait_for
from tests.support.servers import nats_url


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def nats_client():
    client = await nats.connect(nats_url())
    yield client
    await client.close()


@pytest.fixture
async def firing(engine, redis_client, service_settings):
    connection = NatsConnection(nats_url(), name="failures-tests")
    yield FiringService(engine, ScheduleLocks(redis_client, 30), CommandPublisher(connection, 0), service_settings)
    await connection.close()


class Target:
    """A request-mode target on its own subject that answers an error while `failing`."""

    def __init__(self) -> None:
        self.subject = f"cmd.test.{uuid.uuid4().hex[:12]}"
        self.failing = True

    async def respond(self, msg) -> None:
        await msg.respond(b'{"error": "disk full"}' if self.failing else b'{"ok": true}')


async def target_of(nats_client) -> Target:
    target = Target()
    await nats_client.subscribe(target.subject, cb=target.respond)
    return target


async def schedule_for(schedules, target: Target, **fields):
    body = ScheduleCreate(
        name=f"f-{uuid.uuid4().hex[:6]}",
        schedule_type="cron",
        cron_expression="0 9 * * *",
        target_command=target.subject,
        delivery_mode="request",
        request_timeout_seconds=2,
        retry_delay=0,
        **fields,
    )
    return await schedules.create(body, ACTOR, utc_now())


async def run_once(schedules, firing, schedule_id, at: datetime):
    """A manual run of the schedule at `at`, fired by the worker's batch step; its FireResult."""
    triggered = await schedules.trigger(schedule_id, ACTOR, at)
    return await firing.fire([triggered.execution_id], utc_now, 0.0)


async def test_a_run_that_finally_fails_sends_one_dead_letter_with_its_command_and_last_error(
    engine, schedules, firing, service_settings, nats_client
):
    target = await target_of(nats_client)
    letters = f"{service_settings.DEAD_LETTER_SUBJECT}.{uuid.uuid4().hex[:8]}"
    received = []

    async def keep(msg) -> None:
        received.append(msg)

    await nats_client.subscribe(letters, cb=keep)
    created = await schedule_for(schedules, target, max_retries=1, dead_letter_subject=letters)
    triggered = await schedules.trigger(created.id, ACTOR, utc_now())

    first = await firing.fire([triggered.execution_id], utc_now, 0.0)
    await nats_client.flush()
    assert first.outcomes[0].status == "retrying" and first.dead_letters == (0, 0) and received == []
    final = await firing.fire([triggered.execution_id], utc_now, 0.0)
    await wait_for(lambda: received, 5, message="the dead letter")
    await nats_client.flush()

    assert final.outcomes[0].status == "failed" and final.dead_letters == (1, 0)
    (letter,) = received
    body = json.loads(letter.data)
    assert body["execution_id"] == str(triggered.execution_id) and body["attempts"] == 2
    assert "disk full" in body["error"]
    assert body["command"]["subject"] == target.subject
    assert body["command"]["headers"]["Scheduler-Attempt"] == "2"
    assert letter.headers["Nats-Msg-Id"] == f"dead-letter-{triggered.execution_id}-2"
    (row,) = await rows(engine, "SELECT status, dead_lettered_at FROM executions")
    assert row.status == "failed" and row.dead_lettered_at is not None


async def test_a_success_or_a_retry_sends_no_dead_letter(engine, schedules, firing, service_settings, nats_client):
    target = await target_of(nats_client)
    created = await schedule_for(schedules, target, max_retries=1)

    retried = await run_once(schedules, firing, created.id, utc_now())
    target.failing = False
    succeeded = await run_once(schedules, firing, created.id, utc_now())

    assert retried.outcomes[0].status == "retrying" and succeeded.outcomes[0].status == "succeeded"
    assert retried.dead_letters == succeeded.dead_letters == (0, 0)
    assert await rows(engine, "SELECT id FROM executions WHERE dead_lettered_at IS NOT NULL") == []


async def test_the_third_consecutive_failure_pauses_the_schedule_and_not_before(engine, schedules, firing, nats_client):
    target = await target_of(nats_client)
    created = await schedule_for(schedules, target, max_retries=0, pause_after_failures=3)
    start = utc_now()

    results = [await run_once(schedules, firing, created.id, start + timedelta(seconds=i)) for i in range(3)]

    assert [r.auto_paused for r in results[:2]] == [[], []]
    (paused,) = results[2].auto_paused
    assert paused[0] == created.id and "3 consecutive failed runs" in paused[1]
    (row,) = await rows(engine, "SELECT status, status_reason FROM schedules")
    assert row.status == "paused" and row.status_reason == paused[1]
    (audit,) = await rows(engine, "SELECT actor, reason FROM audit_log WHERE action = 'schedule.paused'")
    assert audit.actor == "scheduler" and audit.reason == paused[1]


async def test_a_success_between_failures_resets_the_count(engine, schedules, firing, nats_client):
    target = await target_of(nats_client)
    created = await schedule_for(schedules, target, max_retries=0, pause_after_failures=2)
    start = utc_now()

    await run_once(schedules, firing, created.id, start)
    target.failing = False
    await run_once(schedules, firing, created.id, start + timedelta(seconds=1))
    target.failing = True
    last = await run_once(schedules, firing, created.id, start + timedelta(seconds=2))

    assert last.auto_paused == []
    (row,) = await rows(engine, "SELECT status FROM schedules")
    assert row.status == "active"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"dead_letter_subject": "evt.billing.failed"}, "dead_letter_subject"),
        ({"dead_letter_subject": "cmd.test.*"}, "dead_letter_subject"),
        ({"dead_letter_subject": "queue.outside.the.whitelist"}, "dead_letter_subject"),
    ],
)
async def test_bad_failure_settings_are_refused_naming_the_field(engine, schedules, fields, field):
    with pytest.raises((ValidationFailed, ValueError)) as refused:
        await schedules.create(interval("bad", 60, **fields), ACTOR, T0)

    assert field in str(refused.value)
    assert await rows(engine, "SELECT id FROM schedules") == []


async def test_a_failure_this_batch_no_longer_holds_sends_no_dead_letter(
    engine, schedules, firing, service_settings, nats_client
):
    """A run reaped and taken over while its worker was frozen: its late failure is not recorded, so it
    is not reported either."""
    target = await target_of(nats_client)
    created = await schedule_for(schedules, target, max_retries=0, pause_after_failures=1)
    triggered = await schedules.trigger(created.id, ACTOR, utc_now())
    (run,) = await firing.claim([triggered.execution_id], utc_now(), "frozen#1")
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE executions SET claimed_by = 'other#2'"))
    outcome = Outcome.of(run, utc_now(), Decision.failed("late"))
    result = FireResult(outcomes=[outcome])

    await firing.record(result.outcomes, utc_now(), "frozen#1")
    await firing._after_failures([run], result, utc_now(), "frozen#1")

    assert result.dead_letters == (0, 0) and result.auto_paused == []
    (row,) = await rows(engine, "SELECT status, dead_lettered_at FROM executions")
    assert row.status == "running" and row.dead_lettered_at is None


async def test_a_dead_letter_subject_the_whitelist_no_longer_allows_falls_back_to_the_default(service_settings):
    run = SimpleNamespace(dead_letter_subject="cmd.billing.dead")
    default = service_settings.DEAD_LETTER_SUBJECT

    assert dead_letter_subject_of(run, default, ["cmd.>"]) == "cmd.billing.dead"
    assert dead_letter_subject_of(run, default, ["cmd.orders.>"]) == default
    assert dead_letter_subject_of(SimpleNamespace(dead_letter_subject=None), default, ["cmd.>"]) == default


async def test_a_subject_below_the_dead_letter_subject_or_on_the_whitelist_is_accepted(schedules, service_settings):
    below = f"{service_settings.DEAD_LETTER_SUBJECT}.billing"
    whitelisted = "cmd.billing.dead"

    first = await schedules.create(interval("below", 60, dead_letter_subject=below), ACTOR, T0)
    second = await schedules.create(interval("listed", 60, dead_letter_subject=whitelisted), ACTOR, T0)

    assert (first.dead_letter_subject, second.dead_letter_subject) == (below, whitelisted)


def test_a_dead_letter_subject_a_payload_schema_covers_is_refused(service_settings):
    billing = Draft202012Validator({"type": "object", "required": ["amount"]})
    schemas = PayloadSchemas([PayloadSchema("cmd.billing.>", "billing.json", billing)])
    values = interval("dl", 60, dead_letter_subject="cmd.billing.dead").model_dump()

    with pytest.raises(ValidationFailed) as refused:
        validate_schedule(values, service_settings, T0, payload_schemas=schemas)

    assert [e.field for e in refused.value.errors] == ["dead_letter_subject"]
    assert "payload schema" in refused.value.errors[0].message
