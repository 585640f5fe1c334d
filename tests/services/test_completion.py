"""Completion tracking and overlap policies against the real PostgreSQL, Redis and NATS: the worker's
batch step (FiringService), the ticker's sweep (services.outbox) and the completion report
(LifecycleService.complete_execution) as every door calls it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import nats
import pytest

from core.errors import Conflict, Forbidden, NotFound
from core.outcomes import Decision
from runtime.nats_client import NatsConnection
from services.context import Actor, Role
from services.failures import FinalFailures
from services.firing import FiringService
from services.lifecycle import LifecycleService
from services.locks import ScheduleLocks
from services.outbox import sweep
from services.publisher import CommandPublisher
from services.runs import Outcome
from services.schemas import CompletionReport, ScheduleCreate, ScheduleUpdate
from services.ticking import tick
from tests.support.database import rows
from tests.support.factories import ACTOR
from tests.support.harness import wait_for
from tests.support.servers import nats_url


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


OK = CompletionReport(status="succeeded", result={"rows": 42})


@pytest.fixture
async def nats_client():
    client = await nats.connect(nats_url())
    yield client
    await client.close()


@pytest.fixture
async def publisher():
    connection = NatsConnection(nats_url(), name="completion-tests")
    yield CommandPublisher(connection, 0)
    await connection.close()


@pytest.fixture
def firing(engine, redis_client, service_settings, publisher):
    return FiringService(engine, ScheduleLocks(redis_client, 30), publisher, service_settings)


@pytest.fixture
def reports(engine, schedules, service_settings, events, publisher) -> LifecycleService:
    """The service the doors call, with the dead letters of reported failures wired as in the API."""
    failures = FinalFailures(engine, publisher, service_settings)
    return LifecycleService(schedules.sessions, service_settings, events, failures=failures)


class Target:
    """A subject of the test's own with a subscriber keeping its commands and its cancel notices."""

    def __init__(self) -> None:
        self.subject = f"cmd.test.{uuid.uuid4().hex[:12]}"
        self.commands: list = []
        self.cancels: list = []

    async def start(self, client) -> Target:
        await client.subscribe(self.subject, cb=self._keep(self.commands))
        await client.subscribe(self.subject + ".cancel", cb=self._keep(self.cancels))
        return self

    @staticmethod
    def _keep(into: list):
        async def keep(msg) -> None:
            into.append(msg)

        return keep


async def reporting_schedule(schedules, target: Target, **fields):
    body = ScheduleCreate(
        name=f"c-{uuid.uuid4().hex[:6]}",
        schedule_type="cron",
        cron_expression="0 9 * * *",
        target_command=target.subject,
        completion="report",
        retry_delay=0,
        max_concurrent=10,
        **fields,
    )
    return await schedules.create(body, ACTOR, utc_now())


class Runs:
    """Manual runs of one schedule, one second apart (their slot order), fired one batch each."""

    def __init__(self, schedules, firing, schedule_id) -> None:
        self.schedules, self.firing, self.schedule_id = schedules, firing, schedule_id
        self.start = utc_now()
        self.ids: list[uuid.UUID] = []

    async def fire_next(self) -> str:
        at = self.start + timedelta(seconds=len(self.ids))
        triggered = await self.schedules.trigger(self.schedule_id, ACTOR, at)
        self.ids.append(triggered.execution_id)
        (outcome,) = (await self.firing.fire([triggered.execution_id], utc_now, 0.0)).outcomes
        return outcome.status


async def timed_out_once(schedules, firing, engine, service_settings, target: Target):
    """A reporting schedule (timeout 1 s, one retry) whose first run went out and timed out: the swept
    result, the runs, and the instant of the sweep (2 s after the publish)."""
    created = await reporting_schedule(schedules, target, completion_timeout_seconds=1, max_retries=1)
    runs = Runs(schedules, firing, created.id)
    await runs.fire_next()
    later = utc_now() + timedelta(seconds=2)
    return await sweep(engine, later, service_settings), runs, later


async def statuses(engine, ids) -> list[str]:
    found = {r.id: r.status for r in await rows(engine, "SELECT id, status FROM executions")}
    return [found[i] for i in ids]


async def test_a_reporting_run_awaits_its_report_which_ends_it_with_a_duration_and_result(
    engine, schedules, reports, firing, nats_client
):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    runs = Runs(schedules, firing, created.id)

    assert await runs.fire_next() == "awaiting"
    await wait_for(lambda: target.commands, 5, message="the command")
    (run,) = await rows(engine, "SELECT status, complete_by, finished_at, started_at FROM executions")
    assert run.status == "awaiting" and run.finished_at is None
    assert timedelta(seconds=299) < run.complete_by - run.started_at <= timedelta(seconds=301)

    done = await reports.complete_execution(runs.ids[0], OK, ACTOR, run.started_at + timedelta(seconds=3))

    assert done.status == "succeeded" and done.result == {"rows": 42} and done.reported_at is not None
    assert done.duration_ms == pytest.approx(3000, abs=1)
    assert done.attempt_log[-1]["via"] == "report"


async def test_the_same_report_twice_is_one_completion(engine, schedules, reports, firing, nats_client):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    runs = Runs(schedules, firing, created.id)
    await runs.fire_next()

    first = await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    again = await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())

    assert again.status == first.status == "succeeded" and again.reported_at == first.reported_at
    assert len(again.attempt_log) == len(first.attempt_log)
    with pytest.raises(Conflict) as refused:  # a different report for the same attempt is not a repeat
        await reports.complete_execution(runs.ids[0], CompletionReport(status="failed"), ACTOR, utc_now())
    assert refused.value.errors[0].field == "status"


async def test_a_report_after_the_timeout_is_refused_and_the_run_timed_out_is_dead_lettered(
    engine, schedules, reports, firing, service_settings, nats_client
):
    target = await Target().start(nats_client)
    letters = []
    letters_subject = f"{service_settings.DEAD_LETTER_SUBJECT}.{uuid.uuid4().hex[:8]}"

    async def keep(msg) -> None:
        letters.append(msg)

    await nats_client.subscribe(letters_subject, cb=keep)
    created = await reporting_schedule(
        schedules, target, completion_timeout_seconds=1, max_retries=0, dead_letter_subject=letters_subject
    )
    runs = Runs(schedules, firing, created.id)
    await runs.fire_next()

    swept = await sweep(engine, utc_now() + timedelta(seconds=2), service_settings)
    await FinalFailures(engine, firing.publisher, service_settings).follow_up(swept.failed_ids, utc_now())
    await wait_for(lambda: letters, 5, message="the dead letter")

    assert swept.timed_out == 1 and swept.failed_ids == runs.ids
    (run,) = await rows(engine, "SELECT status, last_error, dead_lettered_at FROM executions")
    assert run.status == "timed_out" and "no completion report within 1 s" in run.last_error
    assert run.dead_lettered_at is not None and json.loads(letters[0].data)["execution_id"] == str(runs.ids[0])
    with pytest.raises(Conflict):
        await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    assert (await rows(engine, "SELECT status FROM executions"))[0].status == "timed_out"


async def test_a_timeout_with_a_retry_left_hands_the_retry_over_and_a_late_report_is_refused(
    engine, schedules, reports, firing, service_settings, nats_client
):
    target = await Target().start(nats_client)

    swept, runs, later = await timed_out_once(schedules, firing, engine, service_settings, target)

    assert swept.timed_out_retrying == 1 and runs.ids[0] in [d.execution_id for d in swept.dispatch]
    (run,) = await rows(engine, "SELECT status, enqueued_at FROM executions")
    assert run.status == "retrying" and run.enqueued_at == later
    late = CompletionReport(status="succeeded", attempt=1)
    with pytest.raises(Conflict):
        await reports.complete_execution(runs.ids[0], late, ACTOR, utc_now())
    (second,) = (await firing.fire(runs.ids, lambda: later, 0.0)).outcomes
    assert second.status == "awaiting" and second.attempt == 2
    with pytest.raises(Conflict) as over:  # attempt 1 is over; attempt 2 awaits
        await reports.complete_execution(runs.ids[0], late, ACTOR, utc_now())
    assert over.value.errors[0].field == "attempt"
    assert (await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())).status == "succeeded"


async def test_a_failure_report_retries_then_fails_with_one_dead_letter(
    engine, schedules, reports, firing, service_settings, nats_client
):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, max_retries=1)
    runs = Runs(schedules, firing, created.id)
    await runs.fire_next()
    failed = CompletionReport(status="failed", error="disk full")

    retrying = await reports.complete_execution(runs.ids[0], failed, ACTOR, utc_now())
    swept = await sweep(engine, utc_now() + timedelta(seconds=5), service_settings)
    await firing.fire(runs.ids, utc_now, 0.0)
    final = await reports.complete_execution(runs.ids[0], failed, ACTOR, utc_now())

    assert retrying.status == "retrying" and runs.ids[0] in [d.execution_id for d in swept.dispatch]
    assert final.status == "failed" and final.attempts == 2 and final.last_error == "disk full"
    assert final.dead_lettered_at is None  # read before the dead letter went out
    (row,) = await rows(engine, "SELECT dead_lettered_at FROM executions")
    assert row.dead_lettered_at is not None


async def test_only_the_owner_or_an_admin_may_report(engine, schedules, reports, firing, nats_client):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    runs = Runs(schedules, firing, created.id)
    await runs.fire_next()

    with pytest.raises(NotFound):
        await reports.complete_execution(runs.ids[0], OK, Actor("someone-else", role=Role.WRITER), utc_now())
    with pytest.raises(Forbidden):
        await reports.complete_execution(runs.ids[0], OK, Actor(ACTOR.name, role=Role.READER), utc_now())
    assert (await statuses(engine, runs.ids)) == ["awaiting"]
    done = await reports.complete_execution(runs.ids[0], OK, Actor("ops", role=Role.ADMIN), utc_now())
    assert done.status == "succeeded"


async def test_a_schedule_without_completion_tracking_refuses_reports(engine, schedules, reports, firing, nats_client):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    await schedules.update(created.id, ScheduleUpdate(completion="none"), ACTOR, utc_now())
    runs = Runs(schedules, firing, created.id)

    assert await runs.fire_next() == "succeeded"
    with pytest.raises(Conflict) as refused:
        await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    assert refused.value.errors[0].field == "completion"


# ---- overlap policies ---------------------------------------------------------------------------


async def test_skip_records_the_slots_due_while_a_run_awaits_its_report(
    engine, schedules, reports, firing, nats_client
):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, overlap_policy="skip")
    runs = Runs(schedules, firing, created.id)

    fired = [await runs.fire_next() for _ in range(3)]
    await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    fired.append(await runs.fire_next())

    assert fired == ["awaiting", "skipped", "skipped", "awaiting"]
    reasons = [r.reason for r in await rows(engine, "SELECT reason FROM executions ORDER BY scheduled_for")]
    assert reasons[1:3] == ["overlap", "overlap"]
    await wait_for(lambda: len(target.commands) == 2, 5, message="two commands")


async def test_buffer_one_keeps_one_waiting_run_and_starts_it_when_the_earlier_one_ends(
    engine, schedules, reports, firing, service_settings, nats_client
):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, overlap_policy="buffer_one")
    runs = Runs(schedules, firing, created.id)

    fired = [await runs.fire_next() for _ in range(3)]
    assert fired == ["awaiting", "buffered", "skipped"]
    assert (await sweep(engine, utc_now(), service_settings)).woken == 0  # the first still awaits

    await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    swept = await sweep(engine, utc_now(), service_settings)
    assert swept.woken == 1 and runs.ids[1] in [d.execution_id for d in swept.dispatch]
    (second,) = (await firing.fire([runs.ids[1]], utc_now, 0.0)).outcomes

    assert second.status == "awaiting"
    assert await statuses(engine, runs.ids) == ["succeeded", "awaiting", "skipped"]


async def test_buffer_all_starts_every_waiting_run_in_slot_order(
    engine, schedules, reports, firing, service_settings, nats_client
):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, overlap_policy="buffer_all")
    runs = Runs(schedules, firing, created.id)

    assert [await runs.fire_next() for _ in range(4)] == ["awaiting", "buffered", "buffered", "buffered"]
    started = []
    for done in range(3):
        await reports.complete_execution(runs.ids[done], OK, ACTOR, utc_now())
        swept = await sweep(engine, utc_now(), service_settings)
        assert swept.woken == 1
        woken = [i for i in runs.ids if i in {d.execution_id for d in swept.dispatch}]
        (outcome,) = (await firing.fire(woken, utc_now, 0.0)).outcomes
        started.append(outcome.execution_id)
        assert (await sweep(engine, utc_now(), service_settings)).woken == 0  # one at a time

    assert started == runs.ids[1:]
    await wait_for(lambda: len(target.commands) == 4, 5, message="four commands")
    published = [m.headers["Scheduler-Execution-Id"] for m in target.commands]
    assert published == [str(i) for i in runs.ids]


async def test_cancel_other_sends_a_cancel_notice_and_cancels_the_earlier_run(
    engine, schedules, reports, firing, nats_client
):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, overlap_policy="cancel_other")
    runs = Runs(schedules, firing, created.id)

    fired = [await runs.fire_next() for _ in range(2)]
    await wait_for(lambda: target.cancels and len(target.commands) == 2, 5, message="the cancel notice")

    assert fired == ["awaiting", "awaiting"]
    assert await statuses(engine, runs.ids) == ["cancelled", "awaiting"]
    (notice,) = target.cancels
    body = json.loads(notice.data)
    assert body["execution_id"] == str(runs.ids[0]) and body["replaced_by"] == str(runs.ids[1])
    assert notice.headers["Scheduler-Execution-Id"] == str(runs.ids[0])
    with pytest.raises(Conflict):  # the cancelled run's report comes too late
        await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())


async def test_a_catch_up_batch_is_screened_in_slot_order(engine, schedules, firing, nats_client):
    """Three runs of a skip schedule claimed in one batch: the first goes, the two behind it are skipped."""
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, overlap_policy="skip")
    start = utc_now()
    ids = [(await schedules.trigger(created.id, ACTOR, start + timedelta(seconds=i))).execution_id for i in range(3)]

    result = await firing.fire(list(reversed(ids)), utc_now, 0.0)

    assert {o.execution_id: o.status for o in result.outcomes} == dict(zip(ids, ["awaiting", "skipped", "skipped"]))


async def test_max_concurrent_caps_the_runs_awaiting_their_report(engine, schedules, firing, nats_client):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    await schedules.update(created.id, ScheduleUpdate(max_concurrent=1), ACTOR, utc_now())
    runs = Runs(schedules, firing, created.id)

    assert [await runs.fire_next() for _ in range(2)] == ["awaiting", "retrying"]
    (row,) = await rows(engine, "SELECT reason FROM executions WHERE status = 'retrying'")
    assert row.reason == "lock_conflict"


async def test_allow_with_completion_none_publishes_every_run_at_once(engine, schedules, firing, nats_client):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    await schedules.update(created.id, ScheduleUpdate(completion="none"), ACTOR, utc_now())
    runs = Runs(schedules, firing, created.id)

    assert [await runs.fire_next() for _ in range(2)] == ["succeeded", "succeeded"]


async def test_a_report_before_the_worker_recorded_the_publish_completes_the_run(
    engine, schedules, reports, firing, nats_client
):
    """A fast target reports while its run is still `running`: the report ends it, and the worker's late
    record of the publish (`awaiting`) changes nothing."""
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    triggered = await schedules.trigger(created.id, ACTOR, utc_now())
    (run,) = await firing.claim([triggered.execution_id], utc_now(), "worker-a#1")

    done = await reports.complete_execution(triggered.execution_id, OK, ACTOR, utc_now())
    late = Outcome.of(run, utc_now(), Decision.awaiting("core"))
    await firing.record([late], utc_now(), "worker-a#1")

    assert done.status == "succeeded"
    assert await statuses(engine, [triggered.execution_id]) == ["succeeded"]


async def test_the_report_of_an_attempt_a_lost_worker_published_ends_the_run(
    engine, schedules, reports, firing, service_settings, nats_client
):
    """Reaped, the run goes out again at once; the target's report of the lost attempt (it had the
    command) still ends the run, recorded as that attempt's, and a repeat of it changes nothing."""
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, max_retries=3)
    triggered = await schedules.trigger(created.id, ACTOR, utc_now())
    await firing.claim([triggered.execution_id], utc_now(), "gone#1")

    swept = await sweep(engine, utc_now(), service_settings, dead_workers=["gone"])
    (second,) = (await firing.fire([triggered.execution_id], utc_now, 0.0)).outcomes
    lost_report = CompletionReport(status="succeeded", attempt=1)
    done = await reports.complete_execution(triggered.execution_id, lost_report, ACTOR, utc_now())
    again = await reports.complete_execution(triggered.execution_id, lost_report, ACTOR, utc_now())

    assert swept.reaped_retrying == 1 and triggered.execution_id in [d.execution_id for d in swept.dispatch]
    assert second.status == "awaiting" and second.attempt == 2
    assert done.status == "succeeded" and done.attempt_log[-1]["attempt"] == 1
    assert again.status == "succeeded" and len(again.attempt_log) == len(done.attempt_log)
    with pytest.raises(Conflict):  # an attempt that is over and was not lost is refused
        await reports.complete_execution(
            triggered.execution_id, CompletionReport(status="failed", attempt=2), ACTOR, utc_now()
        )


async def test_a_buffered_run_is_woken_although_a_later_run_is_pending(
    engine, schedules, reports, firing, service_settings, nats_client
):
    """Only an EARLIER run in progress holds a buffered run back: a later manual trigger waiting does not."""
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target, overlap_policy="buffer_all")
    runs = Runs(schedules, firing, created.id)
    assert [await runs.fire_next() for _ in range(2)] == ["awaiting", "buffered"]
    later = await schedules.trigger(created.id, ACTOR, runs.start + timedelta(seconds=10))  # pending, not fired

    await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    swept = await sweep(engine, utc_now(), service_settings)

    assert swept.woken == 1 and runs.ids[1] in [d.execution_id for d in swept.dispatch]
    assert await statuses(engine, [runs.ids[1], later.execution_id]) == ["pending", "pending"]


async def test_the_awaiting_cap_holds_within_one_batch(engine, schedules, firing, nats_client):
    target = await Target().start(nats_client)
    created = await reporting_schedule(schedules, target)
    await schedules.update(created.id, ScheduleUpdate(max_concurrent=1), ACTOR, utc_now())
    start = utc_now()
    ids = [(await schedules.trigger(created.id, ACTOR, start + timedelta(seconds=i))).execution_id for i in range(2)]

    result = await firing.fire(ids, utc_now, 0.0)

    assert {o.execution_id: o.status for o in result.outcomes} == {ids[0]: "awaiting", ids[1]: "retrying"}


async def test_after_a_timeout_the_next_attempt_has_its_own_message_id(
    engine, schedules, reports, firing, service_settings, nats_client
):
    """The first attempt reached the target (it timed out there): the retry must not be a JetStream repeat."""
    target = await Target().start(nats_client)
    _, runs, later = await timed_out_once(schedules, firing, engine, service_settings, target)

    await firing.fire(runs.ids, lambda: later, 0.0)
    await wait_for(lambda: len(target.commands) == 2, 5, message="the second attempt")

    assert [m.headers["Nats-Msg-Id"] for m in target.commands] == [str(runs.ids[0]), f"{runs.ids[0]}.2"]
    assert {m.headers["Scheduler-Execution-Id"] for m in target.commands} == {str(runs.ids[0])}


async def test_a_report_for_a_run_being_published_again_must_name_its_attempt(
    engine, schedules, reports, firing, service_settings, nats_client
):
    target = await Target().start(nats_client)
    _, runs, later = await timed_out_once(schedules, firing, engine, service_settings, target)
    await firing.claim(runs.ids, later, "worker-b#1")  # attempt 2, being published

    with pytest.raises(Conflict) as unnamed:  # it may be attempt 1's late report
        await reports.complete_execution(runs.ids[0], OK, ACTOR, utc_now())
    named = await reports.complete_execution(
        runs.ids[0], CompletionReport(status="succeeded", attempt=2), ACTOR, utc_now()
    )

    assert unnamed.value.errors[0].field == "attempt"
    assert named.status == "succeeded" and named.attempts == 2


async def test_a_failed_overlap_step_gives_its_runs_back_and_the_others_go(
    engine, schedules, firing, nats_client, monkeypatch
):
    target = await Target().start(nats_client)
    watched = await reporting_schedule(schedules, target, overlap_policy="skip")
    plain = await schedules.create(
        ScheduleCreate(name="plain", schedule_type="cron", cron_expression="0 9 * * *", target_command=target.subject),
        ACTOR,
        utc_now(),
    )
    ids = [(await schedules.trigger(s.id, ACTOR, utc_now())).execution_id for s in (watched, plain)]

    async def unreachable(*_):
        raise ConnectionRefusedError("PostgreSQL is restarting")

    monkeypatch.setattr("services.stores.executions.lock_schedules", unreachable)
    result = await firing.fire(ids, utc_now, 0.0)

    outcomes = {o.execution_id: o for o in result.outcomes}
    assert outcomes[ids[1]].status == "succeeded"
    assert outcomes[ids[0]].status == "retrying" and not outcomes[ids[0]].decision.counts_as_attempt
    assert await statuses(engine, ids) == ["retrying", "succeeded"]


async def test_only_runs_of_schedules_that_take_the_overlap_step_are_tracked(
    engine, schedules, service_settings, nats_client
):
    """The default schedules' runs stay out of the overlap step's index (no cost on the default path),
    whether the ticker records them or a trigger does."""
    target = await Target().start(nats_client)
    start = utc_now() - timedelta(seconds=5)
    body = {"schedule_type": "interval", "interval_seconds": 1, "start_at": start, "target_command": target.subject}
    watched = await schedules.create(ScheduleCreate(name="watched", overlap_policy="skip", **body), ACTOR, start)
    plain = await schedules.create(ScheduleCreate(name="plain", **body), ACTOR, start)
    for schedule in (watched, plain):
        await schedules.trigger(schedule.id, ACTOR, utc_now())

    await tick(engine, utc_now(), service_settings, 100)

    found = await rows(engine, "SELECT schedule_id, trigger_type, overlap_tracked FROM executions")
    assert {(r.schedule_id, r.trigger_type, r.overlap_tracked) for r in found} == {
        (watched.id, "manual", True),
        (watched.id, "scheduled", True),
        (plain.id, "manual", False),
        (plain.id, "scheduled", False),
    }
