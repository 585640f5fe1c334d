"""End-to-end tests: the real API, ticker and worker processes against PostgreSQL, Redis and NATS.

Every test talks to the running processes only through their public surfaces (REST, NATS request/reply,
the commands and events they publish, the database they write). Nothing asserts a latency goal: tests
wait on conditions with generous deadlines and then check what was recorded or received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import Stack, free_port, unique_subject, wait_for, wait_until

DEADLINE = 30  # seconds: generous upper bound for any awaited condition


# ---- fixtures and helpers ---------------------------------------------------------------------


def _stop_workers(stack: Stack) -> None:
    """Stop Dramatiq workers by signalling their main process only.

    The harness SIGTERMs the whole process group, so the worker child gets SIGTERM twice (from the
    harness and from its parent), logs "Killing worker process..." and hangs until the harness's 15 s
    SIGKILL fallback. One SIGTERM to the parent shuts it down cleanly in about a second.
    """
    for name, process in stack.processes.items():
        if name.startswith("worker") and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stack.kill(name)


@pytest.fixture
def stack():
    """Same as the conftest fixture, but workers are stopped cleanly and quickly (see _stop_workers)."""
    with Stack() as running:
        yield running
        _stop_workers(running)


@pytest.fixture
def isolated_stack():
    """A stack on a private NATS server.

    Every API process joins the same queue group on `cmd.scheduler.schedule.*`, so on the shared server
    a command may be served by another concurrently running test's API (and written to its database).
    """
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    store = tempfile.mkdtemp(prefix="e2e-nats-")  # JetStream on: the workers' auto mode looks up streams
    server = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _port_open(port), 10, message="private nats-server")
        with Stack(nats_url=f"nats://127.0.0.1:{port}") as running:
            yield running
            _stop_workers(running)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def start(stack: Stack, *names: str) -> None:
    for name in names:
        stack.start(name)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def ts(value: str) -> datetime:
    """Parse an ISO instant (API field or header) into an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    msg: object

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.msg.headers or {})

    @property
    def body(self):
        return json.loads(self.msg.data) if self.msg.data else None

    @property
    def slot(self) -> datetime:
        return ts(self.headers["Scheduler-Scheduled-For"])


class Inbox:
    """Everything published on one subject, in arrival order (optionally answering requests)."""

    def __init__(self, reply=None) -> None:
        self.items: list[Received] = []
        self.reply = reply  # callable(index, msg) -> dict to answer a request with

    async def on_message(self, msg) -> None:
        self.items.append(Received(time.monotonic(), msg))
        if self.reply is not None and msg.reply:
            await msg.respond(json.dumps(self.reply(len(self.items), msg)).encode())

    def __len__(self) -> int:
        return len(self.items)

    def slots(self) -> list[datetime]:
        return [r.slot for r in self.items]

    def bodies(self) -> list:
        return [r.body for r in self.items]


@contextlib.asynccontextmanager
async def nats_client(stack: Stack):
    nc = await nats.connect(stack.nats_url)
    try:
        yield nc
    finally:
        await nc.close()


async def listen(nc, subject: str, reply=None) -> Inbox:
    inbox = Inbox(reply)
    await nc.subscribe(subject, cb=inbox.on_message)
    await nc.flush()  # the server knows the subscription before anything is published
    return inbox


@contextlib.asynccontextmanager
async def rest(stack: Stack):
    async with httpx.AsyncClient(base_url=stack.api, timeout=15) as http:
        yield http


async def create(http: httpx.AsyncClient, body: dict, **headers: str) -> dict:
    response = await http.post("/api/v1/schedules", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def get_schedule(http: httpx.AsyncClient, schedule_id: str) -> dict:
    response = await http.get(f"/api/v1/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def executions_of(http: httpx.AsyncClient, schedule_id: str, **params) -> list[dict]:
    """Every execution of a schedule (all pages)."""
    items, page = [], 1
    while True:
        response = await http.get(
            f"/api/v1/schedules/{schedule_id}/executions", params={"limit": 100, "page": page, **params}
        )
        assert response.status_code == 200, response.text
        data = response.json()
        items.extend(data["items"])
        if page >= data["pages"]:
            return items
        page += 1


async def execution(http: httpx.AsyncClient, execution_id: str) -> dict:
    response = await http.get(f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def final_execution(http: httpx.AsyncClient, execution_id: str) -> dict:
    async def done():
        found = await execution(http, execution_id)
        return (
            found if found["status"] in ("succeeded", "failed", "timed_out", "missed", "skipped", "cancelled") else None
        )

    return await wait_for(done, DEADLINE, interval=0.2, message=f"execution {execution_id} to finish")


@contextlib.asynccontextmanager
async def database(stack: Stack):
    conn = await asyncpg.connect(stack.database_url.replace("+asyncpg", ""))
    try:
        yield conn
    finally:
        await conn.close()


async def command(nc, operation: str, body: dict, **headers: str):
    """A NATS request to the API's command listener (which subscribes shortly after /ready)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            reply = await nc.request(
                f"cmd.scheduler.schedule.{operation}", json.dumps(body).encode(), timeout=10, headers=headers or None
            )
            return int(reply.headers["Scheduler-Status"]), (json.loads(reply.data) if reply.data else None)
        except (NoRespondersError, NatsTimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def far_daily_cron() -> str:
    """A daily cron whose next fire is about twelve hours away, whenever the test runs."""
    return f"0 {(utc_now().hour + 12) % 24} * * *"


def rendered(received: Received, schedule: dict, **static) -> dict:
    """The body TEMPLATE_PAYLOAD must render to for this message, derived from its headers."""
    h = received.headers
    return {
        "slot": h["Scheduler-Scheduled-For"],
        "run": h["Scheduler-Execution-Id"],
        "attempt": h["Scheduler-Attempt"],
        "sid": schedule["id"],
        "name": schedule["name"],
        **static,
    }


TEMPLATE_PAYLOAD = {
    "slot": "{{scheduled_for}}",
    "run": "{{execution_id}}",
    "attempt": "{{attempt}}",
    "sid": "{{schedule.id}}",
    "name": "{{schedule.name}}",
    "static": 7,
}


def check_command(received: Received, schedule: dict) -> None:
    """Headers and rendered body of one published command."""
    h = received.headers
    assert h["Scheduler-Schedule-Id"] == schedule["id"]
    assert h["Nats-Msg-Id"] == h["Scheduler-Execution-Id"]
    uuid.UUID(h["Scheduler-Execution-Id"])
    assert h["Scheduler-Attempt"] == "1"
    assert h["Scheduler-Correlation-Id"]
    assert received.body == rendered(received, schedule, static=7)


# ---- 1. the four schedule types ---------------------------------------------------------------


async def create_one_of_each_type(
    http: httpx.AsyncClient, subjects: dict[str, str]
) -> tuple[dict[str, dict], datetime, datetime, datetime]:
    """A cron (every 2 s, seconds field), an interval (2 s), a once (in 4 s) and an immediate schedule,
    each on its own subject with TEMPLATE_PAYLOAD. Returns (schedules by kind, the once's run_at, the
    instants just before and just after the immediate one's creation)."""
    run_at = utc_now() + timedelta(seconds=4)
    common = {"command_payload": TEMPLATE_PAYLOAD}
    schedules = {
        "cron": await create(
            http,
            {
                "name": "e2e-cron",
                "schedule_type": "cron",
                "cron_expression": "*/2 * * * * *",
                "target_command": subjects["cron"],
                **common,
            },
        ),
        "interval": await create(
            http,
            {
                "name": "e2e-interval",
                "schedule_type": "interval",
                "interval_seconds": 2,
                "target_command": subjects["interval"],
                **common,
            },
        ),
        "once": await create(
            http,
            {
                "name": "e2e-once",
                "schedule_type": "once",
                "run_at": run_at.isoformat(),
                "target_command": subjects["once"],
                **common,
            },
        ),
    }
    before_immediate = utc_now()
    schedules["immediate"] = await create(
        http,
        {"name": "e2e-immediate", "schedule_type": "immediate", "target_command": subjects["immediate"], **common},
    )
    after_immediate = utc_now()
    return schedules, run_at, before_immediate, after_immediate


def assert_interval_slots_on_its_grid(inbox: Inbox, schedule: dict) -> None:
    """Every published slot is start_at + k*2 s (k >= 1), consecutive ones 2 s apart."""
    anchor = ts(schedule["start_at"])
    interval_slots = sorted(inbox.slots())
    for slot in interval_slots:
        steps, rest_ = divmod(slot - anchor, timedelta(seconds=2))
        assert rest_ == timedelta(0) and steps >= 1, (anchor, slot)
    assert {b - a for a, b in zip(interval_slots, interval_slots[1:])} == {timedelta(seconds=2)}


async def assert_one_shots_completed(
    http: httpx.AsyncClient, schedules: dict[str, dict], inbox: dict[str, Inbox], subjects: dict[str, str]
) -> None:
    """The once and immediate schedules are `completed` after one run, recorded `succeeded` under the id
    and subject of the command received."""
    for kind in ("once", "immediate"):
        stored = await get_schedule(http, schedules[kind]["id"])
        assert stored["status"] == "completed" and stored["run_count"] == 1, stored
        runs = await executions_of(http, schedules[kind]["id"])
        assert [r["status"] for r in runs] == ["succeeded"], runs
        assert runs[0]["id"] == inbox[kind].items[0].headers["Scheduler-Execution-Id"]
        assert runs[0]["published_subject"] == subjects[kind]


async def test_each_schedule_type_publishes_its_slots_with_rendered_body_and_headers(stack):
    # Proves: cron (with seconds), interval, once and immediate schedules created over REST each publish
    # to their own subject at exactly the slots their rule implies, with templates rendered and the
    # metadata headers set; once/immediate fire exactly once and end `completed`.
    start(stack, "api", "ticker", "worker")
    subjects = {kind: unique_subject() for kind in ("cron", "interval", "once", "immediate")}
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = {kind: await listen(nc, subject) for kind, subject in subjects.items()}
        schedules, run_at, before_immediate, after_immediate = await create_one_of_each_type(http, subjects)

        await wait_for(
            lambda: (
                len(inbox["cron"]) >= 3
                and len(inbox["interval"]) >= 3
                and len(inbox["once"]) >= 1
                and len(inbox["immediate"]) >= 1
            ),
            DEADLINE,
            message="three cron and interval runs, one once and one immediate run",
        )
        await asyncio.sleep(3)  # anything extra (a second once/immediate run) would arrive by now

        for kind, received in inbox.items():
            for item in received.items:
                check_command(item, schedules[kind])
            assert len(set(received.slots())) == len(received), f"{kind}: a slot was published twice"

        cron_slots = sorted(inbox["cron"].slots())
        assert all(s.microsecond == 0 and s.second % 2 == 0 for s in cron_slots), cron_slots
        assert {b - a for a, b in zip(cron_slots, cron_slots[1:])} == {timedelta(seconds=2)}, cron_slots

        assert_interval_slots_on_its_grid(inbox["interval"], schedules["interval"])

        assert ts(schedules["once"]["run_at"]) == run_at
        assert inbox["once"].slots() == [run_at]

        immediate_at = ts(schedules["immediate"]["run_at"])
        assert before_immediate - timedelta(seconds=1) <= immediate_at <= after_immediate + timedelta(seconds=1)
        assert inbox["immediate"].slots() == [immediate_at]

        await assert_one_shots_completed(http, schedules, inbox, subjects)


# ---- 2. pause, resume, update -----------------------------------------------------------------


def interval_slots(anchor: datetime, step: timedelta, after: datetime, until: datetime) -> list[datetime]:
    """The slots anchor + k*step (k >= 1) in (after, until]."""
    k = max(1, (after - anchor) // step + 1)
    slots = []
    while anchor + k * step <= until:
        slots.append(anchor + k * step)
        k += 1
    return slots


async def test_zero_misfire_grace_still_fires_slots_seen_on_time(stack):
    # Proves: misfire_grace_seconds=0 with catchup `none` only refuses LATE slots (an outage or a pause);
    # in normal operation, with the ticker up, every slot of a 1 s interval schedule is published.
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        schedule = await create(
            http,
            {
                "name": "e2e-grace0",
                "schedule_type": "interval",
                "interval_seconds": 1,
                "misfire_grace_seconds": 0,
                "catchup": "none",
                "target_command": subject,
            },
        )
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: len(inbox) >= 3, 10, message="three runs")
        runs = await executions_of(http, schedule["id"])
        outcomes = sorted({(r["status"], r["reason"]) for r in runs}, key=str)
        assert len(inbox) >= 3, f"{len(inbox)} published; recorded outcomes {outcomes} over {len(runs)} slots"


async def create_pause_schedule(http: httpx.AsyncClient, subject: str) -> dict:
    """An interval schedule (2 s) with a 1 s misfire grace and catchup `none`."""
    return await create(
        http,
        {
            "name": "e2e-pause",
            "schedule_type": "interval",
            "interval_seconds": 2,
            "misfire_grace_seconds": 1,
            "catchup": "none",
            "target_command": subject,
            "command_payload": {"slot": "{{scheduled_for}}"},
        },
    )


async def pause_over_rest(http: httpx.AsyncClient, sid: str) -> datetime:
    """Pauses the schedule over REST; returns its paused_at."""
    paused = await http.post(f"/api/v1/schedules/{sid}/pause", headers={"X-Paused-By": "e2e"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    return ts(paused.json()["paused_at"])


async def resume_over_rest(http: httpx.AsyncClient, sid: str) -> datetime:
    """Resumes the schedule over REST; returns its updated_at (the resume instant)."""
    resumed = await http.post(f"/api/v1/schedules/{sid}/resume", headers={"X-Resumed-By": "e2e"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    return ts(resumed.json()["updated_at"])


async def set_interval_seconds(http: httpx.AsyncClient, sid: str, seconds: int) -> datetime:
    """PUTs a new interval_seconds; returns the schedule's updated_at."""
    updated = await http.put(f"/api/v1/schedules/{sid}", json={"interval_seconds": seconds})
    assert updated.status_code == 200, updated.text
    return ts(updated.json()["updated_at"])


async def test_pause_stops_resume_records_paused_slots_and_update_retimes_at_once(stack):
    # Proves: after a pause is acknowledged no later slot is published; on resume every slot that fell
    # due during the pause is recorded `missed` with reason `paused` except the ones the misfire policy
    # fires (catchup none: only those within the 1 s grace of the resume instant), and firing restarts;
    # a PUT of interval_seconds 2 -> 1 changes the spacing of the next slots at once.
    # (Grace 1 s rather than 0: see test_zero_misfire_grace_still_fires_slots_seen_on_time.)
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    step, grace = timedelta(seconds=2), timedelta(seconds=1)
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        schedule = await create_pause_schedule(http, subject)
        sid, anchor = schedule["id"], ts(schedule["start_at"])
        await wait_for(lambda: len(inbox) >= 2, DEADLINE, message="two runs before the pause")

        paused_at = await pause_over_rest(http, sid)
        before_pause = sorted(inbox.slots())
        await asyncio.sleep(4.5)
        # Resume mid-way between two slots, so usually no slot of the window is within the grace.
        await wait_for(lambda: (utc_now() - anchor) % step >= timedelta(seconds=1.4), 3, interval=0.05)
        late = [s for s in inbox.slots() if s > paused_at + timedelta(seconds=1)]
        assert late == [], f"published while paused: {late}"

        resumed_at = await resume_over_rest(http, sid)
        await wait_for(lambda: any(s > resumed_at for s in inbox.slots()), DEADLINE, message="a run after resume")

        window = interval_slots(anchor, step, paused_at, resumed_at)
        assert len(window) >= 2
        catch_up = {s for s in window if resumed_at - s <= grace}
        await wait_for(lambda: catch_up <= set(inbox.slots()), DEADLINE, message="the catch-up runs, if any")
        by_slot = {ts(e["scheduled_for"]): e for e in await executions_of(http, sid)}
        for slot in window:
            assert slot in by_slot, f"slot {slot} of the pause window was not recorded"
            if slot not in catch_up:
                assert (by_slot[slot]["status"], by_slot[slot]["reason"]) == ("missed", "paused"), by_slot[slot]
        assert set(window) & set(inbox.slots()) == catch_up, "pause-window slots published other than the catch-up"

        updated_at = await set_interval_seconds(http, sid, 1)
        await wait_for(
            lambda: sum(s > updated_at for s in inbox.slots()) >= 4, DEADLINE, message="four runs after the update"
        )

        # Before the update every slot is on the 2 s grid; right after it the 1 s grid's odd seconds appear
        # and consecutive slots are 1 s apart (compared on the grid, so a slot the ticker saw more than
        # the 1 s grace late and recorded `missed` cannot fail this).
        before_update = sorted(s for s in inbox.slots() if s <= updated_at)
        after_update = sorted(s for s in inbox.slots() if s > updated_at)
        assert all((s - anchor) % step == timedelta(0) for s in before_update), before_update
        assert all((s - anchor) % timedelta(seconds=1) == timedelta(0) for s in after_update), after_update
        assert sum((s - anchor) % step != timedelta(0) for s in after_update) >= 2, after_update
        assert min(b - a for a, b in zip(after_update, after_update[1:])) == timedelta(seconds=1), after_update
        assert min(b - a for a, b in zip(before_pause, before_pause[1:])) == step, before_pause
        assert len(set(inbox.slots())) == len(inbox)


async def snooze_over_rest(http: httpx.AsyncClient, sid: str, until: datetime) -> datetime:
    """Pauses the schedule until `until` over REST; returns its paused_at."""
    snoozed = await http.post(f"/api/v1/schedules/{sid}/pause", json={"reason": "nap", "until": until.isoformat()})
    assert snoozed.status_code == 200 and snoozed.json()["status"] == "paused", snoozed.text
    assert ts(snoozed.json()["paused_until"]) == until
    return ts(snoozed.json()["paused_at"])


async def test_a_snooze_ends_by_itself_and_firing_restarts(stack):
    # Proves: a pause with `until` stops publishing; the ticker resumes the schedule at `until` by
    # itself (audited as the scheduler's, within its pass interval plus a margin) and its slots are
    # published again; the slots of the snooze are recorded `missed` with reason `paused`.
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        schedule = await create_pause_schedule(http, subject)
        sid = schedule["id"]
        await wait_for(lambda: len(inbox) >= 1, DEADLINE, message="a run before the snooze")

        until = (utc_now() + timedelta(seconds=5)).replace(microsecond=0)
        paused_at = await snooze_over_rest(http, sid, until)
        await wait_for(lambda: any(s > until for s in inbox.slots()), DEADLINE, message="a run after the snooze")

        during = [s for s in inbox.slots() if paused_at + timedelta(seconds=1) < s < until - timedelta(seconds=1)]
        assert during == [], f"published while snoozed: {during}"
        (resumed,) = [r for r in await audit_trail(stack, sid) if r["action"] == "schedule.resumed"]
        assert resumed["actor"] == "scheduler" and until.isoformat() in resumed["reason"]
        async with database(stack) as db:
            resumed_at = await db.fetchval(
                "SELECT at FROM audit_log WHERE schedule_id = $1 AND action = 'schedule.resumed'", uuid.UUID(sid)
            )
        assert timedelta(0) <= resumed_at - until < timedelta(seconds=5), resumed_at - until
        by_slot = {ts(e["scheduled_for"]): e for e in await executions_of(http, sid)}
        assert any((e["status"], e["reason"]) == ("missed", "paused") for e in by_slot.values()), by_slot


# ---- 3. manual trigger ------------------------------------------------------------------------


async def test_trigger_publishes_one_manual_run_with_override_payload(stack):
    # Proves: a manual trigger of a schedule whose next run is hours away publishes exactly one command,
    # identified by the returned execution id, with override_payload (rendered) replacing the body, and
    # the execution is recorded `succeeded` with trigger_type `manual` and the triggering principal.
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        schedule = await create(
            http,
            {
                "name": "e2e-trigger",
                "schedule_type": "cron",
                "cron_expression": far_daily_cron(),
                "target_command": subject,
                "command_payload": {"kind": "scheduled"},
            },
        )
        override = {"kind": "manual", "run": "{{execution_id}}", "for": "{{schedule.name}}"}
        triggered = await http.post(
            f"/api/v1/schedules/{schedule['id']}/trigger",
            json={"override_payload": override},
            headers={"X-Triggered-By": "ops-e2e"},
        )
        assert triggered.status_code == 200, triggered.text
        execution_id = triggered.json()["execution_id"]

        await wait_for(lambda: len(inbox) >= 1, DEADLINE, message="the manual run")
        await asyncio.sleep(2)
        assert len(inbox) == 1
        message = inbox.items[0]
        assert message.headers["Scheduler-Execution-Id"] == message.headers["Nats-Msg-Id"] == execution_id
        assert message.body == {"kind": "manual", "run": execution_id, "for": schedule["name"]}

        run = await final_execution(http, execution_id)
        assert run["status"] == "succeeded" and run["trigger_type"] == "manual", run
        assert run["triggered_by"] == "ops-e2e"
        assert (await get_schedule(http, schedule["id"]))["next_run_at"] == schedule["next_run_at"]


async def dead_letters_of(http: httpx.AsyncClient, schedule_id: str) -> list[str]:
    """The ids the executions API lists as dead-lettered for the schedule."""
    listed = await http.get("/api/v1/executions", params={"dead_lettered": "true", "schedule_id": schedule_id})
    assert listed.status_code == 200, listed.text
    return [e["id"] for e in listed.json()["items"]]


async def test_a_final_failure_is_dead_lettered_once_and_a_retry_publishes_the_same_run_again(stack):
    # Proves: a failing target with max_retries 1 gives exactly one dead-letter message with the last
    # error and the command; the run is listed as dead-lettered; once the target is fixed, a retry over
    # REST publishes the same execution id again, the run ends succeeded and leaves the list.
    start(stack, "api", "ticker", "worker")
    subject, letters = unique_subject(), f"evt.scheduler.execution.dead_letter.{uuid.uuid4().hex[:8]}"
    failing = {"now": True}
    async with nats_client(stack) as nc, rest(stack) as http:
        target = await listen(nc, subject, reply=lambda _, msg: {"error": "disk full"} if failing["now"] else {"ok": 1})
        dead = await listen(nc, letters)
        body = {
            "name": "e2e-dead-letter",
            "schedule_type": "cron",
            "cron_expression": far_daily_cron(),
            "target_command": subject,
            "delivery_mode": "request",
            "request_timeout_seconds": 2,
            "max_retries": 1,
            "retry_delay": 1,
            "dead_letter_subject": letters,
        }
        schedule = await create(http, body)
        triggered = await http.post(f"/api/v1/schedules/{schedule['id']}/trigger")
        execution_id = triggered.json()["execution_id"]

        failed = await final_execution(http, execution_id)
        await wait_for(lambda: len(dead) >= 1, DEADLINE, message="the dead letter")
        await asyncio.sleep(1)
        assert failed["status"] == "failed" and failed["attempts"] == 2 and len(target) == 2
        (letter,) = dead.bodies()
        assert letter["execution_id"] == execution_id and "disk full" in letter["error"] and letter["attempts"] == 2
        assert letter["command"]["subject"] == subject
        assert await dead_letters_of(http, schedule["id"]) == [execution_id]

        failing["now"] = False
        retried = await http.post(f"/api/v1/executions/{execution_id}/retry", headers={"X-Retried-By": "ops"})
        assert retried.status_code == 200 and retried.json()["status"] == "pending", retried.text
        done = await final_execution(http, execution_id)

        assert done["status"] == "succeeded" and done["attempts"] == 3, done
        assert len(target) == 3 and target.items[-1].headers["Scheduler-Execution-Id"] == execution_id
        assert len(dead) == 1 and await dead_letters_of(http, schedule["id"]) == []


async def test_a_target_reports_over_nats_and_a_silent_one_times_out_to_its_dead_letter(isolated_stack):
    # Proves: with completion report, the run awaits the target's report, which the target sends over
    # NATS (the API's command); the run ends succeeded with the report's result and a duration from
    # publish to report. A target that never reports leaves its run to time out (no retry left): the
    # ticker records it timed_out and publishes its dead letter. On a private NATS server: a report goes to
    # the API queue group, which another stack's API on the shared server could answer.
    stack = isolated_stack
    start(stack, "api", "ticker", "worker")
    subject, silent = unique_subject(), unique_subject()
    letters = f"evt.scheduler.execution.dead_letter.{uuid.uuid4().hex[:8]}"
    answers = []
    async with nats_client(stack) as nc, rest(stack) as http:

        async def report(msg) -> None:
            await asyncio.sleep(0.3)  # the work
            body = {"execution_id": msg.headers["Scheduler-Execution-Id"], "status": "succeeded", "result": {"rows": 7}}
            headers = {"X-Reported-By": "billing"}
            answers.append(
                await nc.request("cmd.scheduler.execution.complete", json.dumps(body).encode(), 10, headers=headers)
            )

        await nc.subscribe(subject, cb=report)
        dead = await listen(nc, letters)
        base = {"schedule_type": "cron", "cron_expression": far_daily_cron(), "completion": "report"}
        reported = await create(http, {**base, "name": "e2e-reported", "target_command": subject})
        quiet = {"completion_timeout_seconds": 1, "max_retries": 0, "dead_letter_subject": letters}
        timing_out = await create(http, {**base, "name": "e2e-silent", "target_command": silent, **quiet})
        ids = []
        for schedule in (reported, timing_out):
            ids.append((await http.post(f"/api/v1/schedules/{schedule['id']}/trigger")).json()["execution_id"])

        done, timed_out = [await final_execution(http, execution_id) for execution_id in ids]
        await wait_for(lambda: len(dead) >= 1, DEADLINE, message="the dead letter of the silent target's run")

    assert done["status"] == "succeeded" and done["result"] == {"rows": 7} and done["reported_at"], done
    assert done["duration_ms"] >= 300 and answers[0].headers["Scheduler-Status"] == "200"
    assert timed_out["status"] == "timed_out" and "no completion report" in timed_out["last_error"]
    (letter,) = dead.bodies()
    assert letter["execution_id"] == ids[1] and "no completion report" in letter["error"]


# ---- 4. retries in request mode ---------------------------------------------------------------


async def create_flaky_and_broken(
    http: httpx.AsyncClient, flaky_subject: str, broken_subject: str
) -> tuple[dict, dict]:
    """Two once schedules in request mode due in 2 s (retry_delay 1 s): one with 3 retries on the flaky
    subject, one with 2 on the broken subject."""
    run_at = (utc_now() + timedelta(seconds=2)).isoformat()
    base = {
        "schedule_type": "once",
        "run_at": run_at,
        "delivery_mode": "request",
        "retry_delay": 1,
        "request_timeout_seconds": 5,
        "command_payload": {"run": "{{execution_id}}"},
    }
    s_flaky = await create(http, {**base, "name": "e2e-flaky", "target_command": flaky_subject, "max_retries": 3})
    s_broken = await create(http, {**base, "name": "e2e-broken", "target_command": broken_subject, "max_retries": 2})
    return s_flaky, s_broken


def failed_events_of(events: Inbox, execution_id: str) -> list:
    """The execution events received that report the execution `failed`."""
    return [e for e in events.bodies() if e.get("execution_id") == execution_id and e.get("status") == "failed"]


async def test_request_mode_retries_with_growing_backoff_until_success_or_failure(stack):
    # Proves: in request mode an error reply is a failed attempt that is retried: a responder that fails
    # twice then succeeds yields `succeeded` after 3 attempts with a 3-entry attempt log; one that always
    # fails yields `failed` after 1 + max_retries attempts, spaced by a growing backoff, and a final
    # `failed` execution event.
    start(stack, "api", "ticker", "worker")
    flaky_subject, broken_subject = unique_subject(), unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        events = await listen(nc, "evt.scheduler.execution.>")
        flaky = await listen(nc, flaky_subject, reply=lambda n, msg: {"error": "boom"} if n <= 2 else {"ok": True})
        broken = await listen(nc, broken_subject, reply=lambda n, msg: {"error": "boom"})
        s_flaky, s_broken = await create_flaky_and_broken(http, flaky_subject, broken_subject)

        await wait_for(lambda: len(flaky) >= 3 and len(broken) >= 3, DEADLINE, message="three requests each")
        [flaky_run] = await executions_of(http, s_flaky["id"])
        [broken_run] = await executions_of(http, s_broken["id"])
        flaky_run = await final_execution(http, flaky_run["id"])
        broken_run = await final_execution(http, broken_run["id"])

        assert flaky_run["status"] == "succeeded" and flaky_run["attempts"] == 3, flaky_run
        log = flaky_run["attempt_log"]
        assert len(log) == 3, log
        assert all("boom" in (entry.get("error") or "") for entry in log[:2]), log
        assert log[2]["status"] == "succeeded" and not log[2].get("error"), log
        assert [r.headers["Scheduler-Attempt"] for r in flaky.items] == ["1", "2", "3"]
        assert {r.headers["Scheduler-Execution-Id"] for r in flaky.items} == {flaky_run["id"]}

        assert broken_run["status"] == "failed" and broken_run["attempts"] == 3, broken_run
        assert len(broken_run["attempt_log"]) == 3 and "boom" in broken_run["last_error"], broken_run
        await asyncio.sleep(1.5)  # no fourth attempt after the last one
        assert len(broken) == 3
        assert [r.headers["Scheduler-Attempt"] for r in broken.items] == ["1", "2", "3"]
        # Backoff (core/backoff.py): retry n waits base*2^(n-1)*(1 - jitter/2), jitter drawn per attempt,
        # so the first wait is in [0.5, 1] s and the second in [1, 2] s: they can be equal at 1 s.
        arrivals = [r.at for r in broken.items]
        gap1, gap2 = arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]
        assert gap1 >= 0.4 and gap2 >= 0.9, (gap1, gap2)
        # Growth is compared on the recorded waits (end of one attempt to the start of the next): arrival
        # gaps also hold the first attempt's cold-start publish time (up to ~0.15 s observed), enough to
        # make `gap2 > gap1` fail now and then when both backoffs come out near 1 s.
        log = broken_run["attempt_log"]
        wait1, wait2 = (ts(log[i + 1]["started_at"]) - ts(log[i]["finished_at"]) for i in (0, 1))
        assert wait2 > wait1 * 1.0, (wait1, wait2, gap1, gap2)

        await wait_for(
            lambda: failed_events_of(events, broken_run["id"]), DEADLINE, message="the execution.failed event"
        )
        assert any(
            r.msg.subject == "evt.scheduler.execution.failed"
            and r.body.get("execution_id") == broken_run["id"]
            and r.body.get("status") == "failed"
            for r in events.items
        )


# ---- 5. NATS request/reply commands -----------------------------------------------------------


async def assert_bad_bodies_rejected_as_over_rest(nc, http: httpx.AsyncClient, body: dict) -> None:
    """A bad priority and a bad cron expression are rejected over NATS with a 422 problem naming the
    field, and over REST with the same errors."""
    for bad, field in (
        ({**body, "name": "bad-1", "priority": 42}, "priority"),
        ({**body, "name": "bad-2", "cron_expression": "61 * * * *"}, "cron_expression"),
    ):
        status, problem = await command(nc, "create", bad, **{"X-Created-By": "svc-x"})
        assert status == 422 and problem["status"] == 422 and problem["code"] == "validation_error", problem
        assert field in [e["field"] for e in problem["errors"]], problem
        via_rest = await http.post("/api/v1/schedules", json=bad, headers={"X-Created-By": "svc-x"})
        assert via_rest.status_code == 422
        assert via_rest.json()["errors"] == problem["errors"]


async def audit_trail(stack: Stack, sid: str) -> list:
    """The schedule's audit rows (actor, action, reason), oldest first."""
    async with database(stack) as db:
        return await db.fetch(
            "SELECT actor, action, reason FROM audit_log WHERE schedule_id = $1 ORDER BY at, id", uuid.UUID(sid)
        )


async def test_nats_commands_mirror_rest_and_are_audited(isolated_stack):
    # Proves: cmd.scheduler.schedule.* over NATS answers the same JSON as REST with a Scheduler-Status
    # header, rejects bad bodies with the same problem document (422, fields named), and pause/resume/
    # trigger/delete work and are written to the audit trail under the principal from the headers.
    stack = isolated_stack
    start(stack, "api")
    subject = unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        body = {
            "name": "e2e-nats",
            "schedule_type": "cron",
            "cron_expression": far_daily_cron(),
            "target_command": subject,
            "command_payload": {"k": "v"},
            "tags": ["nats"],
        }
        status, created = await command(nc, "create", body, **{"X-Created-By": "svc-x"})
        assert status == 201, created
        fetched = await get_schedule(http, created["id"])
        assert set(created) == set(fetched)
        assert created == fetched
        assert created["created_by"] == "svc-x" and created["target_command"] == subject

        await assert_bad_bodies_rejected_as_over_rest(nc, http, body)

        sid = created["id"]
        until = (utc_now() + timedelta(days=1)).replace(microsecond=0)
        status, paused = await command(
            nc,
            "pause",
            {"schedule_id": sid, "reason": "maintenance", "until": until.isoformat()},
            **{"X-Paused-By": "svc-y"},
        )
        assert status == 200 and paused["status"] == "paused" and ts(paused["paused_until"]) == until, paused
        assert (await get_schedule(http, sid))["status"] == "paused"
        status, resumed = await command(nc, "resume", {"schedule_id": sid}, **{"X-Resumed-By": "svc-y"})
        assert status == 200 and resumed["status"] == "active", resumed
        status, triggered = await command(
            nc, "trigger", {"schedule_id": sid, "override_payload": {"manual": True}}, **{"X-Triggered-By": "svc-z"}
        )
        assert status == 200 and triggered["schedule_id"] == sid, triggered
        manual = await execution(http, triggered["execution_id"])
        assert manual["trigger_type"] == "manual" and manual["triggered_by"] == "svc-z", manual
        status, deleted = await command(nc, "delete", {"schedule_id": sid}, **{"X-Deleted-By": "svc-x"})
        assert status == 204 and deleted is None
        assert (await http.get(f"/api/v1/schedules/{sid}")).status_code == 404
        status, problem = await command(nc, "pause", {"schedule_id": sid})
        assert status == 404 and problem["code"] == "not_found", problem

        rows = await audit_trail(stack, sid)
        assert [(r["action"], r["actor"]) for r in rows] == [
            ("schedule.created", "svc-x"),
            ("schedule.paused", "svc-y"),
            ("schedule.resumed", "svc-y"),
            ("schedule.triggered", "svc-z"),
            ("schedule.deleted", "svc-x"),
        ], rows
        assert rows[1]["reason"] == "maintenance"


# ---- 6. domain events -------------------------------------------------------------------------


async def test_schedule_and_execution_events_are_published(stack):
    # Proves: creating and pausing a schedule publish evt.scheduler.schedule.created/paused with its id
    # and the acting principal, and a successful run publishes execution.started then .succeeded.
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        events = await listen(nc, "evt.scheduler.>")
        commands = await listen(nc, subject)
        schedule = await create(
            http,
            {
                "name": "e2e-events",
                "schedule_type": "cron",
                "cron_expression": "* * * * * *",
                "target_command": subject,
            },
            **{"X-Created-By": "evt-e2e"},
        )
        sid = schedule["id"]

        def of(kind: str) -> list[dict]:
            return [r.body for r in events.items if r.msg.subject == kind and r.body.get("schedule_id") == sid]

        await wait_for(
            lambda: of("evt.scheduler.execution.succeeded"), DEADLINE, message="an execution.succeeded event"
        )
        [created] = of("evt.scheduler.schedule.created")
        assert created["actor"] == "evt-e2e" and created["schedule"]["id"] == sid

        succeeded = of("evt.scheduler.execution.succeeded")[0]
        run_id = succeeded["execution_id"]
        assert succeeded["status"] == "succeeded"
        order = [r.msg.subject for r in events.items if r.body.get("execution_id") == run_id]
        assert order[:2] == ["evt.scheduler.execution.started", "evt.scheduler.execution.succeeded"], order
        assert (await execution(http, run_id))["status"] == "succeeded"
        assert run_id in {r.headers["Scheduler-Execution-Id"] for r in commands.items}

        paused = await http.post(f"/api/v1/schedules/{sid}/pause", headers={"X-Paused-By": "evt-e2e-ops"})
        assert paused.status_code == 200, paused.text
        await wait_for(lambda: of("evt.scheduler.schedule.paused"), DEADLINE, message="a schedule.paused event")
        [event] = of("evt.scheduler.schedule.paused")
        assert event["actor"] == "evt-e2e-ops" and event["schedule"]["status"] == "paused", event


# ---- 7. JetStream delivery --------------------------------------------------------------------


async def test_command_to_a_stream_subject_is_stored_with_execution_id_as_msg_id(stack):
    # Proves: when a JetStream stream covers the target subject the command is stored in the stream
    # (once) with Nats-Msg-Id = execution id, and the run records delivery via JetStream.
    start(stack, "api", "ticker", "worker")
    prefix = unique_subject("cmd.e2ejs")  # inside the default COMMAND_WHITELIST (cmd.>)
    stream = f"E2E_{uuid.uuid4().hex[:12]}"
    async with nats_client(stack) as nc, rest(stack) as http:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
        try:
            schedule = await create(
                http,
                {
                    "name": "e2e-js",
                    "schedule_type": "immediate",
                    "target_command": f"{prefix}.orders",
                    "command_payload": {"run": "{{execution_id}}"},
                },
            )

            async def stored():
                return (await js.stream_info(stream)).state.messages >= 1

            await wait_for(stored, DEADLINE, message="a message in the stream")
            [run] = await executions_of(http, schedule["id"])
            run = await final_execution(http, run["id"])
            assert run["status"] == "succeeded" and run["attempt_log"][-1].get("via") == "jetstream", run

            consumer = await js.pull_subscribe(f"{prefix}.>", stream=stream)
            [message] = await consumer.fetch(1, timeout=10)
            assert message.headers["Nats-Msg-Id"] == run["id"] == message.headers["Scheduler-Execution-Id"]
            assert json.loads(message.data) == {"run": run["id"]}
            await message.ack()
            await asyncio.sleep(1)
            assert (await js.stream_info(stream)).state.messages == 1
        finally:
            await js.delete_stream(stream)


# ---- 8. priority under a backlog --------------------------------------------------------------


async def test_higher_priority_runs_are_published_first_under_a_backlog(stack):
    # Proves: when many runs are due at once and waiting for a worker, the worker publishes the
    # priority-10 ones before the priority-0 ones (mean arrival index is lower).
    start(stack, "api", "ticker")
    subject = unique_subject()
    priorities = [10, 0] * 30
    random.shuffle(priorities)  # creation order carries no information about priority
    run_at = (utc_now() + timedelta(seconds=3)).isoformat()
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        created = await http.post(
            "/api/v1/schedules/bulk/create",
            json={
                "schedules": [
                    {
                        "name": f"e2e-prio-{i}",
                        "schedule_type": "once",
                        "run_at": run_at,
                        "priority": p,
                        "target_command": subject,
                        "command_payload": {"p": p},
                    }
                    for i, p in enumerate(priorities)
                ]
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["created"] == len(priorities)

        async def all_pending():
            response = await http.get("/api/v1/executions", params={"status": "pending", "limit": 1})
            return response.json()["total"] == len(priorities)

        await wait_for(all_pending, DEADLINE, message="every run recorded and waiting")
        assert len(inbox) == 0
        start(stack, "worker")
        await wait_for(lambda: len(inbox) >= len(priorities), DEADLINE, message="every run published")

        order = [body["p"] for body in inbox.bodies()]
        assert sorted(order) == sorted(priorities)
        mean = {p: sum(i for i, q in enumerate(order) if q == p) / order.count(p) for p in (10, 0)}
        assert mean[10] < mean[0], (mean, order)


# ---- 9. /metrics ------------------------------------------------------------------------------


async def test_metrics_report_schedule_counts_by_type_and_status(stack):
    # Proves: the API's /metrics (no shared multiprocess directory) serves Prometheus text including the
    # schedules_total gauge, whose samples match the schedules that exist by type and status.
    stack.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        crons = [
            await create(
                http,
                {
                    "name": f"e2e-metrics-cron-{i}",
                    "schedule_type": "cron",
                    "cron_expression": far_daily_cron(),
                    "target_command": subject,
                },
            )
            for i in range(3)
        ]
        paused = crons.pop()
        assert (await http.post(f"/api/v1/schedules/{paused['id']}/pause")).status_code == 200
        immediate = await create(
            http, {"name": "e2e-metrics-now", "schedule_type": "immediate", "target_command": subject}
        )

        async def immediate_done():
            return (await get_schedule(http, immediate["id"]))["status"] == "completed"

        await wait_for(immediate_done, DEADLINE, message="the immediate schedule to complete")
        await wait_for(lambda: len(inbox) >= 1, DEADLINE, message="the immediate run")

        response = await http.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        samples = {
            (s.labels["type"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(response.text)
            if family.name == "schedules_total"
            for s in family.samples
        }
        assert samples.get(("cron", "active")) == len(crons), samples
        assert samples.get(("cron", "paused")) == 1, samples
        assert samples.get(("immediate", "completed")) == 1, samples
        listed = await http.get("/api/v1/schedules", params={"status": "active", "schedule_type": "cron"})
        assert listed.json()["total"] == samples[("cron", "active")]


# ---- backfill -----------------------------------------------------------------------------------


async def test_a_backfill_publishes_each_missing_slot_once_at_its_rate(stack):
    # Proves: a backfill of a paused schedule's past range publishes every slot that had no row, each
    # once, with its slot in the headers, no faster than max_per_second (generous margin: the pace is
    # the outbox's hand-over times), and a second identical backfill publishes nothing more.
    start(stack, "api", "ticker", "worker")
    subject = unique_subject()
    rate = 5
    async with nats_client(stack) as nc, rest(stack) as http:
        inbox = await listen(nc, subject)
        anchor = utc_now().replace(microsecond=0) - timedelta(seconds=120)
        body = {
            "name": "backfilled",
            "schedule_type": "interval",
            "interval_seconds": 1,
            "start_at": anchor.isoformat(),
            "target_command": subject,
            "misfire_grace_seconds": 0,
        }
        schedule = await create(http, body)
        paused = await http.post(f"/api/v1/schedules/{schedule['id']}/pause")
        assert paused.status_code == 200, paused.text
        await asyncio.sleep(1)
        on_time = len(inbox)
        window = {
            "start": (anchor + timedelta(seconds=10)).isoformat(),
            "end": (anchor + timedelta(seconds=39)).isoformat(),
            "max_per_second": rate,
        }
        plan = (await http.post(f"/api/v1/schedules/{schedule['id']}/backfill", json=window)).json()
        assert plan["slots_total"] == 30 and plan["slots_to_record"] == 30

        await wait_for(lambda: len(inbox) >= on_time + 30, DEADLINE, message="thirty backfilled commands")
        await asyncio.sleep(1)
        backfilled = inbox.items[on_time:]
        expected = [anchor + timedelta(seconds=10 + k) for k in range(30)]
        assert sorted(r.slot for r in backfilled) == expected
        arrivals = sorted(r.at for r in backfilled)
        assert arrivals[-1] - arrivals[0] >= (30 - 1) / rate * 0.8
        assert max(sum(1 for t in arrivals if a <= t < a + 1) for a in arrivals) <= rate + 2

        again = (await http.post(f"/api/v1/schedules/{schedule['id']}/backfill", json=window)).json()
        assert again["slots_to_record"] == 0
        progress = (await http.get(f"/api/v1/schedules/{schedule['id']}/backfills")).json()
        assert [b["runs"] for b in progress] == [{}, {"succeeded": 30}]
        assert [b["status"] for b in progress] == ["completed", "completed"]
        await asyncio.sleep(1)
        assert len(inbox) == on_time + 30
