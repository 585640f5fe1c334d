"""Fault tolerance of the firing pipeline, proven by a delivery ledger.

Every test runs the real processes (API, tickers, workers) and counts what actually reaches NATS:
for every execution row of a fired slot there must be exactly one command carrying that
`Scheduler-Execution-Id` (counted by a subscriber run here, or read back from a JetStream stream,
where a `Nats-Msg-Id` must never be stored twice), and no slot of an interval schedule may be
skipped: the slots seen for each schedule are `start_at + k*interval` for every k between the first
and the last one seen.

Faults: two tickers and two workers under load; SIGKILL of a worker and of a ticker; a private NATS
server stopped for 60 s; a private Redis killed and restarted empty. Recovery bounds from the issue
are generous `wait_for` deadlines; measured figures are printed (`pytest -s`) and kept in
test-artifacts/faults-report.txt.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections import Counter, defaultdict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from core.settings import Settings
from tests.support.harness import ROOT, Stack, unique_subject, wait_for
from tests.support.servers import PrivateNats, PrivateRedis, nats_url

pytestmark = pytest.mark.slow

ACTIVE = ("pending", "running", "retrying")
REPORT = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "faults-report.txt"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def report(test: str, **figures) -> None:
    line = f"{utcnow().isoformat()} {test}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print("\n" + line)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with open(REPORT, "a") as fh:
        fh.write(line + "\n")


# --------------------------------------------------------------------------------------------- ledger


@dataclass(frozen=True)
class Received:
    execution_id: str
    schedule_id: str
    slot: datetime
    subject: str
    msg_id: str | None
    arrived: datetime


def _received(msg) -> Received:
    headers = msg.headers or {}
    return Received(
        execution_id=headers.get("Scheduler-Execution-Id", ""),
        schedule_id=headers.get("Scheduler-Schedule-Id", ""),
        slot=datetime.fromisoformat(headers["Scheduler-Scheduled-For"]),
        subject=msg.subject,
        msg_id=headers.get("Nats-Msg-Id"),
        arrived=utcnow(),
    )


class Ledger:
    """Commands received by a core NATS subscription in this test process."""

    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def on_message(self, msg) -> None:
        self.messages.append(_received(msg))

    def __len__(self) -> int:
        return len(self.messages)

    def counts(self, subject_prefix: str = "") -> Counter:
        return Counter(m.execution_id for m in self.messages if m.subject.startswith(subject_prefix))

    def ids(self, subject_prefix: str = "") -> set[str]:
        return set(self.counts(subject_prefix))

    def first_arrival(self) -> dict[str, datetime]:
        first: dict[str, datetime] = {}
        for m in self.messages:
            first.setdefault(m.execution_id, m.arrived)
        return first


async def stored_messages(js, stream: str, subject: str) -> tuple[int, list[Received]]:
    """(stored count, every stored message) of a stream, read with an ephemeral pull consumer."""
    total = (await js.stream_info(stream)).state.messages
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
    )
    out: list[Received] = []
    try:
        while len(out) < total:
            try:
                batch = await sub.fetch(batch=min(1000, total - len(out)), timeout=5)
            except nats.errors.TimeoutError:
                break
            out.extend(_received(m) for m in batch)
    finally:
        await sub.unsubscribe()
    return total, out


# ------------------------------------------------------------------------------------------- helpers


@asynccontextmanager
async def running_stack(**kwargs):
    """A harness Stack whose blocking set-up and tear-down run off the event loop (the ledger keeps
    receiving meanwhile)."""
    kwargs.setdefault("AUTH_ENABLED", "false")  # these tests are about faults, not API keys
    stack = Stack(**kwargs)
    await asyncio.to_thread(stack.create_database)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.cleanup)


async def start(stack: Stack, *names: str) -> None:
    for name in names:
        await asyncio.to_thread(stack.start, name, name.split("-")[0])


async def kill(stack: Stack, name: str, sig: int = signal.SIGKILL) -> None:
    await asyncio.to_thread(stack.kill, name, sig)


async def connect_db(stack: Stack) -> asyncpg.Connection:
    return await asyncpg.connect(stack.database_url.replace("+asyncpg", ""))


async def create_schedules(http: httpx.AsyncClient, items: list[dict], creator: str = "fault-tests") -> list[str]:
    ids: list[str] = []
    for start in range(0, len(items), 100):
        response = await http.post(
            "/api/v1/schedules/bulk/create",
            json={"schedules": items[start : start + 100]},
            headers={"X-Created-By": creator},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        ids.extend(response.json()["schedule_ids"])
    return ids


def interval_item(name: str, subject: str, interval: int, start_at: datetime, **extra) -> dict:
    return {
        "name": name,
        "schedule_type": "interval",
        "interval_seconds": interval,
        "start_at": start_at.isoformat(),
        "target_command": subject,
        "command_payload": {"slot": "{{scheduled_for}}", "run": "{{execution_id}}"},
        **extra,
    }


async def status_counts(db: asyncpg.Connection) -> dict[str, int]:
    return dict(await db.fetch("SELECT status, count(*) FROM executions GROUP BY status"))


async def active_count(db: asyncpg.Connection) -> int:
    return await db.fetchval("SELECT count(*) FROM executions WHERE status = ANY($1::text[])", list(ACTIVE))


async def succeeded_ids(db: asyncpg.Connection, subject_prefix: str = "") -> set[str]:
    rows = await db.fetch(
        "SELECT e.id FROM executions e JOIN schedules s ON s.id = e.schedule_id "
        "WHERE e.status = 'succeeded' AND s.target_command LIKE $1",
        subject_prefix + "%",
    )
    return {str(r["id"]) for r in rows}


async def gap_problems(db: asyncpg.Connection, messages: list[Received], schedule_ids: list[str]) -> list[str]:
    """For each schedule: the received slots are start_at + k*interval for EVERY k between first and last."""
    slots: dict[str, set[datetime]] = defaultdict(set)
    for m in messages:
        slots[m.schedule_id].add(m.slot)
    rows = await db.fetch(
        "SELECT id, start_at, interval_seconds FROM schedules WHERE id = ANY($1::uuid[])", schedule_ids
    )
    problems: list[str] = []
    for row in rows:
        seen = sorted(slots.get(str(row["id"]), ()))
        if not seen:
            problems.append(f"{row['id']}: never fired")
            continue
        step = timedelta(seconds=row["interval_seconds"])
        off_grid = [s for s in seen if (s - row["start_at"]) % step]
        expected = (seen[-1] - seen[0]) // step + 1
        if off_grid or expected != len(seen):
            missing = [seen[0] + k * step for k in range(expected) if seen[0] + k * step not in set(seen)]
            problems.append(
                f"{row['id']}: {len(seen)} slots seen, {expected} expected; missing {missing[:5]}; "
                f"off-grid {off_grid[:5]}"
            )
    return problems


async def stop_tickers_and_drain(
    stack: Stack, db: asyncpg.Connection, tickers: list[str], timeout: float, received=None
) -> float:
    """SIGTERM the tickers, then wait until no run is pending/running/retrying (and, if given, until
    the ledger has caught up with the succeeded rows). Returns the drain time."""
    for name in tickers:
        await kill(stack, name, signal.SIGTERM)
    started = time.monotonic()

    async def drained():
        if await active_count(db):
            return False
        if received is None:
            return True
        return received() >= await db.fetchval("SELECT count(*) FROM executions WHERE status = 'succeeded'")

    await wait_or_explain(
        db, drained, timeout, "workers to drain every pending run", "status = ANY($1::text[])", list(ACTIVE)
    )
    await asyncio.sleep(0.5)  # a late duplicate, if any, has time to arrive and be counted
    return time.monotonic() - started


async def unfinished(db: asyncpg.Connection, condition: str, *args) -> str:
    """Why a wait failed: the runs matching `condition` that did not succeed (for the failure message)."""
    rows = await db.fetch(
        "SELECT id, status, attempts, scheduled_for, created_at, enqueued_at, started_at, next_attempt_at, last_error, "
        f"attempt_log FROM executions WHERE status <> 'succeeded' AND ({condition}) ORDER BY scheduled_for LIMIT 5",
        *args,
    )
    total = await db.fetchval(f"SELECT count(*) FROM executions WHERE status <> 'succeeded' AND ({condition})", *args)
    return f"{total} runs not succeeded at {utcnow().isoformat()}, e.g. " + "; ".join(str(dict(r)) for r in rows)


async def wait_or_explain(db, predicate, timeout: float, message: str, condition: str, *args) -> None:
    try:
        await wait_for(predicate, timeout, interval=0.5, message=message)
    except AssertionError as error:
        raise AssertionError(f"{error}: {await unfinished(db, condition, *args)}") from None


def assert_processes_alive(stack: Stack, names: list[str]) -> None:
    dead = {n: stack.processes[n].returncode for n in names if stack.processes[n].poll() is not None}
    assert not dead, f"service processes exited (they should have recovered in place): {dead}"


# ------------------------------------------------------------------------------ 1. two of everything


def load_items(prefix: str) -> list[dict]:
    """2000 interval schedules (2-5 s, seeded) on 20 subjects, first slots spread over 5 s from 4 s on."""
    rng = random.Random(20240601)
    anchor = utcnow() + timedelta(seconds=4)
    return [
        interval_item(
            f"load-{i}",
            f"{prefix}.s{i % 20}",
            rng.randint(2, 5),
            anchor + timedelta(milliseconds=rng.randrange(0, 5000)),
        )
        for i in range(2000)
    ]


async def test_two_tickers_two_workers_2000_schedules_fire_every_slot_exactly_once():
    prefix = unique_subject("cmd.test.load")
    ledger = Ledger()
    nc = await nats.connect(nats_url())
    await nc.subscribe(f"{prefix}.>", cb=ledger.on_message)
    async with running_stack(MAX_SCHEDULES_PER_CREATOR="100000", MAX_BULK_ITEMS="100") as stack:
        try:
            await start(stack, "api", "worker-1", "worker-2", "ticker-1", "ticker-2")
            db = await connect_db(stack)
            items = load_items(prefix)
            async with httpx.AsyncClient(base_url=stack.api) as http:
                created_at = time.monotonic()
                schedule_ids = await create_schedules(http, items)
                create_seconds = time.monotonic() - created_at
            assert len(schedule_ids) == 2000
            await wait_for(lambda: len(ledger) > 0, 30, message="first command")
            first = time.monotonic()
            await asyncio.sleep(60)
            load_seconds = time.monotonic() - first
            drain = await stop_tickers_and_drain(stack, db, ["ticker-1", "ticker-2"], 120, lambda: len(ledger))

            statuses = await status_counts(db)
            succeeded = await succeeded_ids(db)
            counts = ledger.counts()
            duplicates = {k: v for k, v in counts.items() if v > 1}
            lags = sorted((m.arrived - m.slot).total_seconds() for m in ledger.messages)
            report(
                "two_tickers_two_workers",
                schedules=2000,
                rows=sum(statuses.values()),
                statuses=statuses,
                messages=len(ledger),
                distinct=len(counts),
                duplicates=len(duplicates),
                create_s=round(create_seconds, 1),
                load_s=round(load_seconds, 1),
                drain_s=round(drain, 1),
                lag_p50_s=round(lags[len(lags) // 2], 3),
                lag_p99_s=round(lags[int(len(lags) * 0.99)], 3),
                lag_max_s=round(lags[-1], 3),
            )

            assert set(statuses) == {"succeeded"}, f"every run must succeed (none missed/failed/skipped): {statuses}"
            assert not duplicates, f"{len(duplicates)} commands received more than once: {list(duplicates.items())[:5]}"
            assert len(succeeded) == len(counts) == len(ledger), (len(succeeded), len(counts), len(ledger))
            assert set(counts) == succeeded
            assert len({(m.schedule_id, m.slot) for m in ledger.messages}) == len(ledger), "a slot fired twice"
            assert len(ledger) > 2000 * 60 / 5 * 0.9, f"far too few commands for 60 s of load: {len(ledger)}"
            problems = await gap_problems(db, ledger.messages, schedule_ids)
            assert not problems, f"{len(problems)} schedules skipped slots: {problems[:5]}"
            await db.close()
        finally:
            await nc.close()


# ----------------------------------------------------------------- 2. SIGKILL of a worker and a ticker


@dataclass(frozen=True)
class KillWindow:
    """The kill test's fault: runs `running` at the kill, when the processes died and when their
    replacements started."""

    running_at_kill: int
    killed_at: datetime
    restarted_at: datetime
    restart_clock: float  # time.monotonic() at the restart


@dataclass(frozen=True)
class KillLedger:
    """What the database, the stream and the core subscription hold once the kill test has drained."""

    statuses: dict[str, int]
    lost: set[str]
    reap_reasons: set[str]
    retried: int
    js_rows: set[str]
    core_rows: set[str]
    stored: int
    in_stream: list[Received]
    stream_ids: Counter
    core_counts: Counter
    core_dupes: dict[str, int]
    js_core_view_dupes: int


def kill_items(js_prefix: str, core_prefix: str) -> list[dict]:
    """300 interval schedules (1 or 2 s), half on JetStream subjects, first slots spread over 2 s from 3 s on."""
    rng = random.Random(7)
    anchor = utcnow() + timedelta(seconds=3)
    return [
        interval_item(
            f"kill-{i}",
            f"{js_prefix if i % 2 else core_prefix}.s{i % 10}",
            1 + i % 2,
            anchor + timedelta(milliseconds=rng.randrange(0, 2000)),
        )
        for i in range(300)
    ]


async def kill_worker_and_ticker_in_flight(stack: Stack, db: asyncpg.Connection) -> KillWindow:
    """kill -9 of worker-1 and ticker-1 while runs are being claimed/published and batches ticked; 5 s
    later worker-2 and ticker-3 start."""
    await wait_for(
        lambda: db.fetchval("SELECT count(*) FROM executions WHERE status IN ('running','pending')"),
        5,
        interval=0.01,
        message="runs in flight",
    )
    running_at_kill = await db.fetchval("SELECT count(*) FROM executions WHERE status = 'running'")
    await kill(stack, "worker-1")
    await kill(stack, "ticker-1")
    killed_at = utcnow()
    await asyncio.sleep(5)
    await start(stack, "worker-2", "ticker-3")
    restarted_at = utcnow()
    restart_clock = time.monotonic()
    return KillWindow(running_at_kill, killed_at, restarted_at, restart_clock)


async def await_outage_slots_published(
    db: asyncpg.Connection, ledger: Ledger, window: KillWindow
) -> tuple[float, list, float]:
    """Waits (30 s) until every slot due up to the restart is published; returns the seconds that took,
    the rows of the slots due during the outage, and the latest first arrival of one of them after the
    restart (seconds)."""

    async def outage_slots_published():
        due = await db.fetch("SELECT id FROM executions WHERE scheduled_for <= $1", window.restarted_at)
        return due and {str(r["id"]) for r in due} <= ledger.ids()

    await wait_for(
        outage_slots_published,
        30,
        interval=0.25,
        message="every slot due up to the restart to be published within 30 s of it",
    )
    recovery = time.monotonic() - window.restart_clock
    outage_rows = await db.fetch(
        "SELECT id, scheduled_for FROM executions WHERE scheduled_for > $1 AND scheduled_for <= $2",
        window.killed_at,
        window.restarted_at,
    )
    first_arrival = ledger.first_arrival()
    outage_latest = max((first_arrival[str(r["id"])] - window.restarted_at).total_seconds() for r in outage_rows)
    return recovery, outage_rows, outage_latest


async def kill_ledger(
    db: asyncpg.Connection, ledger: Ledger, js, stream: str, js_prefix: str, core_prefix: str
) -> KillLedger:
    """Reads the kill test's ledger (database rows, stream contents, core NATS counts by prefix)."""
    statuses = await status_counts(db)
    lost_rows = await db.fetch(
        'SELECT id, attempt_log FROM executions WHERE attempt_log @> \'[{"status": "lost"}]\'::jsonb'
    )
    lost = {str(r["id"]) for r in lost_rows}
    reap_reasons = {
        entry["error"] for r in lost_rows for entry in json.loads(r["attempt_log"]) if entry["status"] == "lost"
    }
    retried = await db.fetchval("SELECT count(*) FROM executions WHERE attempts > 1")
    js_rows = await succeeded_ids(db, js_prefix)
    core_rows = await succeeded_ids(db, core_prefix)
    stored, in_stream = await stored_messages(js, stream, f"{js_prefix}.>")
    stream_ids = Counter(m.msg_id for m in in_stream)
    core_counts = ledger.counts(core_prefix)
    core_dupes = {k: v for k, v in core_counts.items() if v > 1}
    js_core_view_dupes = sum(1 for v in ledger.counts(js_prefix).values() if v > 1)
    return KillLedger(
        statuses=statuses,
        lost=lost,
        reap_reasons=reap_reasons,
        retried=retried,
        js_rows=js_rows,
        core_rows=core_rows,
        stored=stored,
        in_stream=in_stream,
        stream_ids=stream_ids,
        core_counts=core_counts,
        core_dupes=core_dupes,
        js_core_view_dupes=js_core_view_dupes,
    )


def report_kill(
    found: KillLedger, window: KillWindow, recovery: float, outage_rows: list, outage_latest: float, drain: float
) -> None:
    report(
        "kill_9_worker_and_ticker",
        rows=sum(found.statuses.values()),
        statuses=found.statuses,
        running_at_kill=window.running_at_kill,
        reaped=len(found.lost),
        attempts_gt_1=found.retried,
        outage_slots=len(outage_rows),
        all_due_published_after_s=round(recovery, 1),
        last_outage_slot_published_s_after_restart=round(outage_latest, 1),
        stream_stored=found.stored,
        stream_distinct_ids=len(found.stream_ids),
        js_rows=len(found.js_rows),
        core_duplicates=len(found.core_dupes),
        js_subject_core_view_duplicates=found.js_core_view_dupes,
        drain_s=round(drain, 1),
    )


async def test_kill_9_of_worker_and_ticker_mid_load_recovers_every_slot():
    js_prefix = unique_subject("cmd.test.kjs")
    core_prefix = unique_subject("cmd.test.kcore")
    stream = f"FAULTS_{uuid.uuid4().hex[:10].upper()}"
    ledger = Ledger()
    nc = await nats.connect(nats_url())
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{js_prefix}.>"], duplicate_window=120.0)
    await nc.subscribe(f"{js_prefix}.>", cb=ledger.on_message)
    await nc.subscribe(f"{core_prefix}.>", cb=ledger.on_message)
    try:
        # The default lock timeout (300 s): only the missing heartbeat can give the killed worker's
        # runs back within the 30 s this test allows.
        async with running_stack(LOCK_TIMEOUT_SECONDS="300", REENQUEUE_AFTER_SECONDS="5") as stack:
            await start(stack, "api", "ticker-1", "ticker-2", "worker-1")
            db = await connect_db(stack)
            items = kill_items(js_prefix, core_prefix)
            async with httpx.AsyncClient(base_url=stack.api) as http:
                schedule_ids = await create_schedules(http, items)
            await wait_for(lambda: len(ledger) > 300, 30, message="load flowing")
            await asyncio.sleep(3)

            window = await kill_worker_and_ticker_in_flight(stack, db)
            recovery, outage_rows, outage_latest = await await_outage_slots_published(db, ledger, window)
            await asyncio.sleep(max(0.0, 35 - (time.monotonic() - window.restart_clock)))
            assert_processes_alive(stack, ["api", "worker-2", "ticker-2", "ticker-3"])
            drain = await stop_tickers_and_drain(stack, db, ["ticker-2", "ticker-3"], 60)

            found = await kill_ledger(db, ledger, js, stream, js_prefix, core_prefix)
            report_kill(found, window, recovery, outage_rows, outage_latest, drain)

            assert set(found.statuses) == {"succeeded"}, (
                f"every run must end succeeded (reaped runs retried): {found.statuses}"
            )
            # Reaped because the worker's heartbeat stopped, not after the (300 s) lock timeout.
            assert found.reap_reasons and all("stopped heartbeating" in reason for reason in found.reap_reasons), (
                found.reap_reasons
            )
            assert outage_rows, "no slot fell due during the outage: the test proved nothing"
            # JetStream: one stored message per execution, whatever was redelivered.
            assert all(v == 1 for v in found.stream_ids.values()), [k for k, v in found.stream_ids.items() if v > 1][:5]
            assert found.stored == len(found.in_stream) == len(found.stream_ids) == len(found.js_rows), (
                found.stored,
                len(found.in_stream),
                len(found.js_rows),
            )
            assert set(found.stream_ids) == found.js_rows
            # Core NATS: every run arrived; a repeat is only legitimate for a run whose worker was killed.
            assert set(found.core_counts) == found.core_rows
            assert set(found.core_dupes) <= found.lost, (
                f"duplicates of runs that were never lost: {set(found.core_dupes) - found.lost}"
            )
            problems = await gap_problems(db, ledger.messages, schedule_ids)
            assert not problems, f"{len(problems)} schedules skipped slots across the kills: {problems[:5]}"
            await db.close()
    finally:
        try:
            await js.delete_stream(stream)
        finally:
            await nc.close()


async def held_queue_messages(stack: Stack) -> dict[str, set[str]]:
    """The execution ids in the queue messages each Dramatiq consumer has fetched and not acked, by ack
    key (Dramatiq's Redis layout: `<ns>:__acks__.<broker id>.<queue>` holds message ids, the bodies
    sit in `<ns>:<queue>.msgs`). Test introspection only: the service never reads these keys."""
    import redis.asyncio as redis

    client = redis.from_url(stack.redis_url)
    held: dict[str, set[str]] = {}
    try:
        prefix = f"{stack.namespace}:__acks__."
        async for key in client.scan_iter(match=f"{prefix}*"):
            name = key.decode()
            _broker_id, queue = name[len(prefix) :].split(".", 1)
            ids = await client.smembers(key)
            bodies = await client.hmget(f"{stack.namespace}:{queue}.msgs", *ids) if ids else []
            held[name] = {run for body in bodies if body for run in json.loads(body)["args"][0]}
    finally:
        await client.aclose()
    return held


def prefetch_items(core_prefix: str) -> list[dict]:
    """200 interval schedules (2 s) on 10 core subjects, first slots 10 ms apart from 2 s on."""
    anchor = utcnow() + timedelta(seconds=2)
    return [
        interval_item(f"prefetch-{i}", f"{core_prefix}.s{i % 10}", 2, anchor + timedelta(milliseconds=10 * i))
        for i in range(200)
    ]


async def stranded_runs(stack: Stack, db: asyncpg.Connection) -> set[str]:
    """The pending runs among those in the queue messages the workers hold (fetched, not started)."""
    held = set().union(*(await held_queue_messages(stack)).values())
    if not held:
        return set()
    pending = await db.fetch("SELECT id FROM executions WHERE status = 'pending' AND id = ANY($1::uuid[])", list(held))
    return {str(r["id"]) for r in pending}


async def await_stranded_published(db: asyncpg.Connection, ledger: Ledger, stranded: set[str]) -> None:
    """Waits (60 s) until every stranded run has been received."""

    async def published() -> bool:
        return stranded <= ledger.ids()

    await wait_or_explain(
        db,
        published,
        60,
        "the killed worker's prefetched runs to be published",
        "id = ANY($1::uuid[])",
        list(stranded),
    )


async def test_a_killed_workers_prefetched_messages_come_back_at_once():
    """kill -9 of a worker holding queue messages it fetched but had not started: no claim names it,
    so only the heartbeat census can tell the ticker, which marks the worker's Dramatiq consumer dead
    for Dramatiq to requeue its messages. The re-enqueue threshold and Dramatiq's own timeout for a
    silent consumer are set to 10 minutes, so without that these runs would wait that long."""
    core_prefix = unique_subject("cmd.test.prefetch")
    ledger = Ledger()
    nc = await nats.connect(nats_url())
    await nc.subscribe(f"{core_prefix}.>", cb=ledger.on_message)
    try:
        # A 10 s lead: a worker claims a batch 10 s ahead and holds its thread until the instants, so
        # with one thread it fetches the next batch (prefetch = 2 x threads) and cannot start it.
        async with running_stack(
            LOCK_TIMEOUT_SECONDS="300",
            REENQUEUE_AFTER_SECONDS="600",
            BROKER_HEARTBEAT_TIMEOUT_MS="600000",
            DISPATCH_LEAD_MS="10000",
        ) as stack:
            stack.worker_threads = 1
            await start(stack, "api", "ticker-1", "worker-1")
            db = await connect_db(stack)
            items = prefetch_items(core_prefix)
            async with httpx.AsyncClient(base_url=stack.api) as http:
                await create_schedules(http, items)

            stranded = await wait_for(
                lambda: stranded_runs(stack, db),
                30,
                interval=0.1,
                message="the worker to hold a fetched message it has not started",
            )
            await kill(stack, "worker-1")
            stranded = await stranded_runs(stack, db)  # what it held when it died
            killed_at = time.monotonic()
            stack.worker_threads = 16
            await start(stack, "worker-2")

            await await_stranded_published(db, ledger, stranded)
            recovery = time.monotonic() - killed_at
            rescues = (stack.logs / "ticker-1.log").read_text().count("ticker.rescued")
            report(
                "prefetched_messages_of_a_killed_worker",
                stranded=len(stranded),
                published_s_after_kill=round(recovery, 1),
                rescues_logged=rescues,
            )
            assert stranded, "the killed worker held no unstarted run: the test proved nothing"
            assert rescues >= 1
            await db.close()
    finally:
        await nc.close()


# ----------------------------------------------------------------------------- 3. NATS down for 60 s


@dataclass(frozen=True)
class NatsDownLedger:
    """What the database, the stream and the core subscription hold once the NATS test has drained."""

    statuses: dict[str, int]
    succeeded: set[str]
    total: int
    in_stream: list[Received]
    stream_ids: Counter
    core_counts: Counter


def natsdown_items(prefix: str) -> list[dict]:
    """10 interval schedules (2 s), first slots 100 ms apart from 3 s on."""
    anchor = utcnow() + timedelta(seconds=3)
    # max_retries: enough backoff steps (2, 4, 8, 16, 20, 20, ...) to outlast a 60 s outage.
    return [
        interval_item(f"natsdown-{i}", f"{prefix}.s{i}", 2, anchor + timedelta(milliseconds=100 * i), max_retries=12)
        for i in range(10)
    ]


async def await_outage_runs_succeeded(db: asyncpg.Connection, stopped_at: datetime, restarted_at: datetime) -> None:
    """Waits (60 s) until every run created while NATS was down has succeeded."""

    async def outage_runs_succeeded():
        rows = await db.fetch(
            "SELECT status FROM executions WHERE created_at >= $1 AND created_at <= $2",
            stopped_at,
            restarted_at,
        )
        return rows and all(r["status"] == "succeeded" for r in rows)

    await wait_or_explain(
        db,
        outage_runs_succeeded,
        60,
        "every run created during the outage to succeed within 60 s of the restart",
        "created_at >= $1 AND created_at <= $2",
        stopped_at,
        restarted_at,
    )


async def outage_runs(db: asyncpg.Connection, stopped_at: datetime, restarted_at: datetime) -> list:
    """The runs created while NATS was down, with their attempts and attempt log."""
    return await db.fetch(
        "SELECT id, attempts, jsonb_array_length(attempt_log) AS tries, attempt_log FROM executions "
        "WHERE created_at >= $1 AND created_at <= $2",
        stopped_at,
        restarted_at,
    )


async def nats_down_ledger(db: asyncpg.Connection, ledger: Ledger, js, stream: str, prefix: str) -> NatsDownLedger:
    """Reads the NATS test's ledger (database rows, stream contents, core NATS counts)."""
    statuses = await status_counts(db)
    succeeded = await succeeded_ids(db)
    total, in_stream = await stored_messages(js, stream, f"{prefix}.>")
    stream_ids = Counter(m.msg_id for m in in_stream)
    core_counts = ledger.counts()
    return NatsDownLedger(statuses, succeeded, total, in_stream, stream_ids, core_counts)


def report_nats_down(
    found: NatsDownLedger, ledger: Ledger, during: dict[str, int], outage: list, recovery: float, drain: float
) -> None:
    report(
        "nats_down_60s",
        rows=sum(found.statuses.values()),
        statuses=found.statuses,
        during_outage=during,
        outage_runs=len(outage),
        max_tries=max(r["tries"] for r in outage),
        all_outage_runs_succeeded_after_s=round(recovery, 1),
        stream_stored=found.total,
        core_view_received=len(ledger),
        core_view_duplicates=sum(v > 1 for v in found.core_counts.values()),
        core_view_missed=len(found.succeeded - set(found.core_counts)),
        drain_s=round(drain, 1),
    )


def assert_outage_runs_waited_for_nats(outage: list) -> None:
    """The runs created during the outage were retried, but few times and without spending a retry."""
    assert len(outage) >= 10 * 60 / 2 * 0.8, f"too few runs recorded during the outage: {len(outage)}"
    assert any(r["tries"] > 1 for r in outage), "no run was retried during the outage"
    # A run waits in its worker for NATS to come back (actors.waiting_room); while NATS stays
    # down only the sweep's copy, after REENQUEUE_AFTER_SECONDS, tries it again: a handful of
    # attempts in 60 s, where a retry on its 1-2 s timer made dozens.
    reenqueue_after = Settings.model_fields["REENQUEUE_AFTER_SECONDS"].default
    worst = max(outage, key=lambda r: r["tries"])
    assert worst["tries"] <= 60 / reenqueue_after + 4, (
        Counter(r["tries"] for r in outage),
        [(a["started_at"][14:23], a.get("error", "")[:30]) for a in json.loads(worst["attempt_log"])],
    )
    # NATS being down is our outage, not a failure of the target: it spends no retries.
    assert {r["attempts"] for r in outage} == {1}, Counter(r["attempts"] for r in outage)


async def test_nats_down_60s_then_back_every_run_created_meanwhile_succeeds():
    prefix = unique_subject("cmd.test.natsdown")
    stream = f"FAULTS_{uuid.uuid4().hex[:10].upper()}"
    with PrivateNats() as server:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"], duplicate_window=120.0)
        ledger = Ledger()  # core view, reported only: it misses what is published before it resubscribes
        await nc.subscribe(f"{prefix}.>", cb=ledger.on_message)
        try:
            async with running_stack(
                nats_url=server.url, DEFAULT_RETRY_DELAY="2", RETRY_BACKOFF_CAP_SECONDS="20"
            ) as stack:
                names = ["api", "ticker", "worker"]
                await start(stack, *names)
                db = await connect_db(stack)
                items = natsdown_items(prefix)
                async with httpx.AsyncClient(base_url=stack.api) as http:
                    schedule_ids = await create_schedules(http, items)

                await wait_for(lambda: stored_at_least(js, stream, 10), 30, message="commands stored before the outage")
                await asyncio.to_thread(server.stop, signal.SIGTERM)
                stopped_at = utcnow()
                await asyncio.sleep(60)
                assert_processes_alive(stack, names)
                during = await status_counts(db)
                await asyncio.to_thread(server.start)
                restarted_at = utcnow()
                restart_clock = time.monotonic()

                await await_outage_runs_succeeded(db, stopped_at, restarted_at)
                recovery = time.monotonic() - restart_clock
                outage = await outage_runs(db, stopped_at, restarted_at)
                assert_processes_alive(stack, names)
                drain = await stop_tickers_and_drain(stack, db, ["ticker"], 60)
                assert_processes_alive(stack, ["api", "worker"])

                found = await nats_down_ledger(db, ledger, js, stream, prefix)
                report_nats_down(found, ledger, during, outage, recovery, drain)

                assert_outage_runs_waited_for_nats(outage)
                assert set(found.statuses) == {"succeeded"}, found.statuses
                assert all(v == 1 for v in found.stream_ids.values()), [
                    k for k, v in found.stream_ids.items() if v > 1
                ][:5]
                assert found.total == len(found.in_stream) == len(found.stream_ids) == len(found.succeeded), (
                    found.total,
                    len(found.in_stream),
                    len(found.succeeded),
                )
                assert set(found.stream_ids) == found.succeeded
                problems = await gap_problems(db, found.in_stream, schedule_ids)
                assert not problems, f"slots skipped across the NATS outage: {problems[:5]}"
                await db.close()
        finally:
            try:
                await js.delete_stream(stream)
            except Exception:
                pass
            await nc.close()


async def stored_at_least(js, stream: str, n: int) -> bool:
    return (await js.stream_info(stream)).state.messages >= n


# ------------------------------------------------------------------------- 4. Redis restarted empty


@dataclass(frozen=True)
class RedisLedger:
    """What the database and the subscription hold once the Redis test has drained."""

    statuses: dict[str, int]
    succeeded: set[str]
    counts: Counter
    duplicates: dict[str, int]
    outage_rows: int
    retried: int


def redis_items(prefix: str) -> list[dict]:
    """40 interval schedules (1 or 2 s), first slots 50 ms apart from 3 s on."""
    anchor = utcnow() + timedelta(seconds=3)
    return [
        interval_item(f"redis-{i}", f"{prefix}.s{i}", 1 + i % 2, anchor + timedelta(milliseconds=50 * i))
        for i in range(40)
    ]


async def restart_redis_empty(redis_server: PrivateRedis) -> tuple[datetime, datetime, float]:
    """Kills Redis, restarts it 5 s later with nothing in it; returns (killed at, restarted at,
    time.monotonic() at the restart)."""
    await asyncio.to_thread(redis_server.kill)
    killed_at = utcnow()
    await asyncio.sleep(5)
    await asyncio.to_thread(redis_server.start)  # no persistence: the queue, delayed retries and locks are gone
    restarted_at = utcnow()
    restart_clock = time.monotonic()
    return killed_at, restarted_at, restart_clock


async def await_new_slots_published(ledger: Ledger, schedule_ids: list[str], restarted_at: datetime) -> None:
    """Waits (60 s) until every schedule has published a slot due more than 1 s after the restart."""

    def new_slots_published():
        fresh = {m.schedule_id for m in ledger.messages if m.slot > restarted_at + timedelta(seconds=1)}
        return len(fresh) == len(schedule_ids)

    await wait_for(
        new_slots_published,
        60,
        interval=0.25,
        message="every schedule to publish a slot due after the Redis restart",
    )


async def await_earlier_runs_succeeded(db: asyncpg.Connection, restarted_at: datetime, timeout: float) -> None:
    """Waits until every run created up to the restart has succeeded."""

    async def earlier_runs_succeeded():
        rows = await db.fetch("SELECT status FROM executions WHERE created_at <= $1", restarted_at)
        return rows and all(r["status"] == "succeeded" for r in rows)

    await wait_or_explain(
        db,
        earlier_runs_succeeded,
        timeout,
        "runs pending in the lost queue to be re-enqueued and succeed within 60 s",
        "created_at <= $1",
        restarted_at,
    )


async def redis_ledger(
    db: asyncpg.Connection, ledger: Ledger, killed_at: datetime, restarted_at: datetime
) -> RedisLedger:
    """Reads the Redis test's ledger (database rows and the commands received)."""
    statuses = await status_counts(db)
    succeeded = await succeeded_ids(db)
    counts = ledger.counts()
    duplicates = {k: v for k, v in counts.items() if v > 1}
    outage_rows = await db.fetchval(
        "SELECT count(*) FROM executions WHERE scheduled_for > $1 AND scheduled_for <= $2",
        killed_at,
        restarted_at,
    )
    retried = await db.fetchval("SELECT count(*) FROM executions WHERE attempts > 1")
    return RedisLedger(statuses, succeeded, counts, duplicates, outage_rows, retried)


def report_redis(
    found: RedisLedger, ledger: Ledger, new_slots_after: float, old_runs_after: float, drain: float
) -> None:
    report(
        "redis_restarted_empty",
        rows=sum(found.statuses.values()),
        statuses=found.statuses,
        outage_slots=found.outage_rows,
        attempts_gt_1=found.retried,
        new_slots_published_after_s=round(new_slots_after, 1),
        old_runs_succeeded_after_s=round(old_runs_after, 1),
        messages=len(ledger),
        duplicates=len(found.duplicates),
        drain_s=round(drain, 1),
    )


async def test_redis_killed_and_restarted_empty_service_recovers_in_place():
    prefix = unique_subject("cmd.test.redis")
    ledger = Ledger()
    nc = await nats.connect(nats_url())
    await nc.subscribe(f"{prefix}.>", cb=ledger.on_message)
    try:
        with PrivateRedis() as redis_server:
            async with running_stack(redis_url=redis_server.url) as stack:
                names = ["api", "ticker-1", "worker-1"]
                await start(stack, *names)
                db = await connect_db(stack)
                items = redis_items(prefix)
                async with httpx.AsyncClient(base_url=stack.api) as http:
                    schedule_ids = await create_schedules(http, items)
                await wait_for(lambda: len(ledger) > 100, 30, message="load flowing")
                await asyncio.sleep(3)

                killed_at, restarted_at, restart_clock = await restart_redis_empty(redis_server)

                await await_new_slots_published(ledger, schedule_ids, restarted_at)
                new_slots_after = time.monotonic() - restart_clock
                await await_earlier_runs_succeeded(db, restarted_at, max(1.0, 60 - new_slots_after))
                old_runs_after = time.monotonic() - restart_clock
                assert_processes_alive(stack, names)
                drain = await stop_tickers_and_drain(stack, db, ["ticker-1"], 60, lambda: len(ledger))
                assert_processes_alive(stack, ["api", "worker-1"])

                found = await redis_ledger(db, ledger, killed_at, restarted_at)
                report_redis(found, ledger, new_slots_after, old_runs_after, drain)

                assert set(found.statuses) == {"succeeded"}, found.statuses
                assert not found.duplicates, f"commands received twice: {list(found.duplicates.items())[:5]}"
                assert set(found.counts) == found.succeeded and len(ledger) == len(found.succeeded)
                problems = await gap_problems(db, ledger.messages, schedule_ids)
                assert not problems, f"slots skipped across the Redis restart: {problems[:5]}"
                await db.close()
    finally:
        await nc.close()
