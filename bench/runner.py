"""Benchmark runner: starts the service's real processes and measures fire lag, throughput and API speed.

    python -m bench.runner                       # every workload (what `make bench` runs)
    python -m bench.runner --workloads burst     # a subset: burst, steady, scale, api
    python -m bench.runner --tiny                # the tiny workload of tests/bench (seconds)

Every workload gets its own stack (private database, Dramatiq namespace, NATS subject and JetStream
stream), creates its schedules through the service's REST API, subscribes to the bench subjects on NATS
and computes, for every fire, lag = time received − Scheduler-Scheduled-For. The report (JSON) goes to
bench/results/<UTC timestamp>.json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import psutil
from nats.js.api import StorageType, StreamConfig

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.harness import VENV_BIN, Stack  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
CREATOR = "bench"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime) -> str:
    return value.isoformat()


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max/mean in milliseconds (values are seconds)."""
    if not values:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None, "count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000, 2)

    return {
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "count": len(ordered),
    }


# ---------------------------------------------------------------- processes


class BenchStack(Stack):
    """The harness's Stack with the bench's settings and a configurable worker (processes × threads)."""

    def __init__(self, worker_processes: int = 1, worker_threads: int = 8, **settings: str) -> None:
        defaults = {"MAX_BULK_ITEMS": "1000", "MAX_SCHEDULES_PER_CREATOR": "2000000", "LOG_LEVEL": "WARNING"}
        super().__init__(**{**defaults, **settings})
        self.worker_processes = worker_processes
        self.worker_threads = worker_threads

    def start_all(self) -> None:
        for name in ("api", "ticker", "worker"):
            self.start(name)


class Monitor:
    """Samples CPU and RSS of every stack process (with its children) and of the local servers."""

    SERVERS = ("postgres", "redis-server", "nats-server")

    def __init__(self, stack: BenchStack, interval: float = 0.25) -> None:
        self.stack = stack
        self.interval = interval
        self.peak_rss: dict[str, int] = {}
        self.timeline: dict[str, list[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._known: dict[int, psutil.Process] = {}

    def _proc(self, pid: int) -> psutil.Process:
        p = self._known.get(pid)
        if p is None:
            p = self._known[pid] = psutil.Process(pid)
        return p

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._proc(pid)
            return [root, *[self._proc(c.pid) for c in root.children(recursive=True)]]
        except psutil.Error:
            return []

    def _servers(self) -> dict[str, list[psutil.Process]]:
        found: dict[str, list[psutil.Process]] = {n: [] for n in self.SERVERS}
        for p in psutil.process_iter(["name"]):
            name = p.info["name"] or ""
            for server in self.SERVERS:
                if name.startswith(server):
                    try:
                        found[server].append(self._proc(p.pid))
                    except psutil.Error:  # a backend that just exited
                        pass
        return found

    def groups(self) -> dict[str, list[psutil.Process]]:
        out = {name: self._tree(proc.pid) for name, proc in self.stack.processes.items()}
        out.update(self._servers())
        return out

    def sample(self) -> dict[str, dict[str, float]]:
        snap: dict[str, dict[str, float]] = {}
        for name, procs in self.groups().items():
            cpu = rss = 0.0
            for p in procs:
                try:
                    t = p.cpu_times()
                    cpu += t.user + t.system
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            snap[name] = {"cpu": cpu, "rss": rss}
        return snap

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.time()
            try:
                snap = self.sample()
            except psutil.Error:
                continue
            for name, values in snap.items():
                if name in self.SERVERS:
                    continue
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), int(values["rss"]))
                self.timeline.setdefault(name, []).append((now, int(values["rss"])))

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def report(self, before: dict, after: dict, seconds: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, end in after.items():
            start = before.get(name, {"cpu": 0.0})
            cpu = max(0.0, end["cpu"] - start["cpu"])
            entry = {
                "cpu_seconds": round(cpu, 2),
                "cpu_percent": round(100 * cpu / seconds, 1) if seconds > 0 else None,
            }
            if name in self.SERVERS:
                entry["note"] = (
                    "sum over the server's processes alive at both samples (PostgreSQL backends come and go)"
                )
                entry["rss_mb"] = round(end["rss"] / 2**20, 1)
            else:
                entry["peak_rss_mb"] = round(self.peak_rss.get(name, end["rss"]) / 2**20, 1)
            out[name] = entry
        return out


# ---------------------------------------------------------------- NATS collector


class Collector:
    """A JetStream stream over the bench subjects (so the worker's publishes are acknowledged) and a
    core subscription on the same subjects that timestamps every command as it arrives."""

    def __init__(self, nats_url: str, prefix: str) -> None:
        self.nats_url = nats_url
        self.prefix = prefix
        self.stream = "BENCH_" + prefix.replace(".", "_").upper()
        self.records: list[tuple[float, str, str, str]] = []  # (received, execution id, schedule id, slot)

    async def start(self) -> None:
        self.nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1)
        js = self.nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[f"{self.prefix}.>"],
                storage=StorageType.MEMORY,
                duplicate_window=120,
                max_age=3600,
            )
        )
        records = self.records

        async def on_message(msg) -> None:
            h = msg.headers or {}
            records.append(
                (
                    time.time(),
                    h.get("Scheduler-Execution-Id", ""),
                    h.get("Scheduler-Schedule-Id", ""),
                    h.get("Scheduler-Scheduled-For", ""),
                )
            )

        self.sub = await self.nc.subscribe(
            f"{self.prefix}.>", cb=on_message, pending_msgs_limit=10_000_000, pending_bytes_limit=2**31
        )

    async def stored(self) -> int:
        info = await self.nc.jetstream().stream_info(self.stream)
        return int(info.state.messages)

    async def stored_times(self, timeout: float = 120.0) -> dict[str, float]:
        """When NATS stored each command (JetStream's timestamp, epoch seconds), by execution id.

        This is the "received on NATS" instant itself, free of the time this Python subscriber needs to
        parse and timestamp a burst of messages on a busy machine. Read after the run (headers only).
        """
        expected = await self.stored()
        out: dict[str, float] = {}
        done = asyncio.Event()

        async def on_message(msg) -> None:
            execution_id = (msg.headers or {}).get("Scheduler-Execution-Id", "")
            out.setdefault(execution_id, msg.metadata.timestamp.timestamp())
            if msg.metadata.num_pending == 0:
                done.set()

        if expected == 0:
            return out
        sub = await self.nc.jetstream().subscribe(
            f"{self.prefix}.>", stream=self.stream, cb=on_message, ordered_consumer=True, headers_only=True
        )
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        return out

    async def close(self) -> None:
        try:
            await self.nc.jetstream().delete_stream(self.stream)
        except Exception:
            pass
        await self.nc.close()


def analyse(
    records: list[tuple[float, str, str, str]],
    expected: dict[str, list[datetime]] | None,
    window: tuple[datetime, datetime] | None = None,
    stored: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Lag percentiles, duplicates and missed slots for the records whose slot is in `window`.

    With `stored` (JetStream store times by execution id), `lag` is measured at NATS's receipt and
    `subscriber_lag` at this process's subscription; without it, `lag` is the subscriber's."""
    seen_exec: set[str] = set()
    seen_slot: dict[tuple[str, str], str] = {}
    duplicates = duplicate_slots = 0
    lags: list[float] = []
    subscriber_lags: list[float] = []
    received: list[float] = []
    slots_seen: set[tuple[str, datetime]] = set()
    for recv, execution_id, schedule_id, slot_text in records:
        slot = datetime.fromisoformat(slot_text)
        if window and not (window[0] <= slot < window[1]):
            continue
        if execution_id in seen_exec:
            duplicates += 1
            continue
        seen_exec.add(execution_id)
        key = (schedule_id, slot_text)
        if key in seen_slot:
            duplicate_slots += 1
            continue
        seen_slot[key] = execution_id
        slots_seen.add((schedule_id, slot))
        subscriber_lags.append(recv - slot.timestamp())
        if stored is not None and execution_id in stored:
            recv = stored[execution_id]
        lags.append(recv - slot.timestamp())
        received.append(recv)
    out: dict[str, Any] = {
        "received": len(received),
        "duplicates": duplicates,
        "duplicate_slots": duplicate_slots,
        "lag": percentiles(lags),
    }
    if stored is not None:
        out["lag_measured_at"] = "JetStream store time"
        out["subscriber_lag"] = percentiles(subscriber_lags)
    if expected is not None:
        want = {(sid, s) for sid, slots in expected.items() for s in slots}
        out["expected"] = len(want)
        out["missed"] = len(want - slots_seen)
        out["unexpected"] = len(slots_seen - want)
    out["_received_times"] = received
    return out


# ---------------------------------------------------------------- API helpers


async def bulk_create(
    api: str, items: list[dict[str, Any]], chunk: int = 1000, lanes: int = 2, creator: str = CREATOR
) -> dict[str, Any]:
    """Create through POST /api/v1/schedules/bulk/create, `lanes` requests in flight (each lane its own
    creator: the per-creator quota check serializes one creator's creates). Returns ids and timing."""
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    ids: list[list[str]] = [[] for _ in chunks]
    started = time.perf_counter()
    queue = list(enumerate(chunks))

    async def lane(n: int, http: httpx.AsyncClient) -> None:
        while queue:
            index, body = queue.pop(0)
            response = await http.post(
                "/api/v1/schedules/bulk/create", json={"schedules": body}, headers={"X-Created-By": f"{creator}-{n}"}
            )
            if response.status_code != 201:
                raise RuntimeError(f"bulk create failed: {response.status_code} {response.text[:500]}")
            ids[index] = [str(i) for i in response.json()["schedule_ids"]]

    async with httpx.AsyncClient(base_url=api, timeout=600) as http:
        await asyncio.gather(*(lane(n, http) for n in range(lanes)))
    seconds = time.perf_counter() - started
    flat = [i for part in ids for i in part]
    return {"ids": flat, "seconds": round(seconds, 2), "per_second": round(len(flat) / seconds, 1) if seconds else None}


def item(name: str, subject: str, **rule: Any) -> dict[str, Any]:
    return {"name": name, "target_command": subject, "command_payload": {"n": name}, **rule}


# ---------------------------------------------------------------- workloads


class Run:
    """One workload: a stack, a monitor and a collector, torn down afterwards."""

    def __init__(self, args: argparse.Namespace, name: str, **settings: str) -> None:
        self.args = args
        self.name = name
        self.stack = BenchStack(
            worker_processes=args.worker_processes, worker_threads=args.worker_threads, **{**settings, **args.overrides}
        )
        self.prefix = f"cmd.bench.{uuid.uuid4().hex[:10]}"
        self.subject = f"{self.prefix}.{name}"

    async def __aenter__(self) -> Run:
        await asyncio.to_thread(self.stack.create_database)
        await asyncio.to_thread(self.stack.start_all)
        self.monitor = Monitor(self.stack).start()
        self.collector = Collector(self.stack.nats_url, self.prefix)
        await self.collector.start()
        return self

    async def __aexit__(self, *exc) -> None:
        self.monitor.stop()
        try:
            await self.collector.close()
        finally:
            await asyncio.to_thread(self.stack.cleanup)

    def profile(self, seconds: float) -> list[subprocess.Popen]:
        """py-spy (collapsed stacks) of the ticker and the worker for `seconds` (with --py-spy)."""
        if not self.args.py_spy:
            return []
        spy = VENV_BIN / "py-spy"
        out = []
        for name in ("ticker", "worker", "api"):
            path = RESULTS_DIR / f"profile-{self.name}-{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            out.append(
                subprocess.Popen(
                    [
                        str(spy),
                        "record",
                        "--pid",
                        str(self.stack.processes[name].pid),
                        "--subprocesses",
                        "--rate",
                        "200",
                        "--duration",
                        str(int(seconds)),
                        "--format",
                        "raw",
                        "--output",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return out

    async def wait_received(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.collector.records) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def _clean(result: dict[str, Any]) -> dict[str, Any]:
    result.pop("_received_times", None)
    return result


async def burst(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """N once-schedules due at one instant: time until the last command is received."""
    async with Run(args, f"burst{n}") as run:
        lead = args.burst_lead or max(5.0, n / args.create_rate_hint + 5)
        due = (utc_now() + timedelta(seconds=lead)).replace(microsecond=0)
        items = [item(f"burst-{i}", run.subject, schedule_type="once", run_at=iso(due)) for i in range(n)]
        created = await bulk_create(run.stack.api, items, chunk=args.chunk)
        margin = (due - utc_now()).total_seconds()
        await asyncio.sleep(max(0.0, margin - 0.5))
        run.profile(8)
        before = run.monitor.sample()
        t0 = time.time()
        await run.wait_received(n, timeout=args.burst_timeout)
        await asyncio.sleep(1.0)  # let duplicates, if any, arrive
        after = run.monitor.sample()
        elapsed = time.time() - t0
        expected = {sid: [due] for sid in created["ids"]}
        res = analyse(run.collector.records, expected, stored=await run.collector.stored_times())
        times = res.pop("_received_times")
        out = {
            "workload": "burst",
            "n": n,
            "due": iso(due),
            "create": {k: v for k, v in created.items() if k != "ids"},
            "created_before_due_s": round(margin, 2),
            "valid": margin > 0,
            "first_command_after_due_s": round(min(times) - due.timestamp(), 3) if times else None,
            "last_command_after_due_s": round(max(times) - due.timestamp(), 3) if times else None,
            "fires_per_s": round(len(times) / max(1e-9, max(times) - due.timestamp()), 1) if times else None,
            "jetstream_stored": await run.collector.stored(),
            **res,
            "processes": run.monitor.report(before, after, elapsed),
        }
        return out


def interval_slots(
    start: datetime, period: float, window: tuple[datetime, datetime], end_at: datetime
) -> list[datetime]:
    step = timedelta(seconds=period)
    k = max(0, math.ceil((window[0] - start) / step))
    out = []
    slot = start + k * step
    while slot < window[1] and slot <= end_at:
        out.append(slot)
        slot += step
    return out


def _steady_items(run, n: int, period: int, shape: str, t0: datetime, end_at: datetime) -> tuple[list, list]:
    """The N schedules' first slots (spread over the period, or on whole seconds) and their create items."""
    starts = []
    for i in range(n):
        offset = (i * period / n) if shape == "spread" else float(i % period)
        starts.append(t0 + timedelta(seconds=offset))
    items = [
        item(
            f"steady-{i}",
            run.subject,
            schedule_type="interval",
            interval_seconds=period,
            start_at=iso(s),
            end_at=iso(end_at),
        )
        for i, s in enumerate(starts)
    ]
    return starts, items


async def _drain(run, total: int, window: tuple[datetime, datetime], seconds: float) -> None:
    """Gives a backlog up to `seconds` to arrive (counted as lag, not as missed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        res = analyse(run.collector.records, None, window)
        if res["received"] >= total:
            break
        await asyncio.sleep(0.5)


async def steady(
    args: argparse.Namespace, n: int, period: int, shape: str, warmup: float, duration: float
) -> dict[str, Any]:
    """N interval schedules of period P, phases spread over the period or on whole seconds."""
    async with Run(args, f"steady{n}{shape}") as run:
        lead = args.steady_lead or max(5.0, n / args.create_rate_hint + 5)
        t0 = (utc_now() + timedelta(seconds=lead)).replace(microsecond=0)
        window = (t0 + timedelta(seconds=warmup), t0 + timedelta(seconds=warmup + duration))
        end_at = window[1] - timedelta(milliseconds=1)
        starts, items = _steady_items(run, n, period, shape, t0, end_at)
        created = await bulk_create(run.stack.api, items, chunk=args.chunk)
        margin = (t0 - utc_now()).total_seconds()
        await asyncio.sleep(max(0.0, (window[0] - utc_now()).total_seconds()))
        run.profile(min(20, duration))
        before = run.monitor.sample()
        await asyncio.sleep(max(0.0, (window[1] - utc_now()).total_seconds()))
        after = run.monitor.sample()
        expected = {sid: interval_slots(s, period, window, end_at) for sid, s in zip(created["ids"], starts)}
        await _drain(run, sum(len(v) for v in expected.values()), window, args.drain_seconds)
        res = analyse(run.collector.records, expected, window, stored=await run.collector.stored_times())
        times = res.pop("_received_times")
        ws, we = window[0].timestamp(), window[1].timestamp()
        in_window = sum(1 for t in times if ws <= t < we)
        out = {
            "workload": "steady",
            "n": n,
            "period_s": period,
            "shape": shape,
            "target_per_s": n / period,
            "warmup_s": warmup,
            "duration_s": duration,
            "window": [iso(window[0]), iso(window[1])],
            "create": {k: v for k, v in created.items() if k != "ids"},
            "created_before_first_slot_s": round(margin, 2),
            "fires_per_s": round(in_window / duration, 1),
            "last_window_slot_received_after_window_s": round(max(times) - we, 3) if times else None,
            "jetstream_stored_total": await run.collector.stored(),
            **res,
            "processes": run.monitor.report(before, after, duration),
        }
        return out


# ---------------------------------------------------------------- backfill


async def _start_backfill(
    api: str, subject: str, t0: datetime, rate: int, slots: int, max_concurrent: int | None
) -> dict[str, Any]:
    """A one-second interval schedule anchored in the past (publishing outside the collected prefix; its
    `max_concurrent`, None: the default) and a backfill of its last `slots` slots before `t0`, `rate` a second."""
    start = iso(t0 - timedelta(days=1))
    past = item("backfilled", subject, schedule_type="interval", interval_seconds=1, start_at=start)
    if max_concurrent is not None:
        past["max_concurrent"] = max_concurrent
    (schedule_id,) = (await bulk_create(api, [past], chunk=1, lanes=1))["ids"]
    body = {"start": iso(t0 - timedelta(seconds=slots)), "end": iso(t0 - timedelta(seconds=1)), "max_per_second": rate}
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        response = await http.post(f"/api/v1/schedules/{schedule_id}/backfill", json=body)
        response.raise_for_status()
        return {"schedule_id": schedule_id, **response.json()}


async def _backfill_progress(api: str, schedule_id: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        listed = (await http.get(f"/api/v1/schedules/{schedule_id}/backfills")).json()
    return listed[0]["runs"] if listed else {}


async def backfill_load(
    args: argparse.Namespace, n: int, period: int, rate: int, seconds: float, max_concurrent: int | None = None
) -> dict[str, Any]:
    """On-time fires (N interval schedules of period P, phases spread) for `seconds` without a backfill,
    then `seconds` with a backfill of `rate` runs a second alongside: the on-time lag of each window."""
    async with Run(args, f"backfill{n}") as run:
        lead = max(5.0, n / args.create_rate_hint + 5)
        t0 = (utc_now() + timedelta(seconds=lead)).replace(microsecond=0)
        quiet = (t0 + timedelta(seconds=args.warmup), t0 + timedelta(seconds=args.warmup + seconds))
        busy = (quiet[1], quiet[1] + timedelta(seconds=seconds))
        end_at = busy[1] - timedelta(milliseconds=1)
        starts, items = _steady_items(run, n, period, "spread", t0, end_at)
        created = await bulk_create(run.stack.api, items, chunk=args.chunk)
        await asyncio.sleep(max(0.0, (quiet[1] - utc_now()).total_seconds() - 1.0))
        backfill_subject = f"cmd.benchbf.{uuid.uuid4().hex[:10]}"
        slots = int(rate * seconds)
        started = await _start_backfill(run.stack.api, backfill_subject, utc_now(), rate, slots, max_concurrent)
        await asyncio.sleep(max(0.0, (busy[1] - utc_now()).total_seconds()))
        progress = await _backfill_progress(run.stack.api, started["schedule_id"])
        total = 0
        results = {}
        for label, window in (("without_backfill", quiet), ("with_backfill", busy)):
            expected = {sid: interval_slots(s, period, window, end_at) for sid, s in zip(created["ids"], starts)}
            total += sum(len(v) for v in expected.values())
            await _drain(run, total, (quiet[0], busy[1]), args.drain_seconds)
            res = analyse(run.collector.records, expected, window, stored=await run.collector.stored_times())
            res.pop("_received_times")
            results[label] = res
        p99 = [results[k]["lag"].get("p99_ms") for k in ("without_backfill", "with_backfill")]
        return {
            "workload": "backfill",
            "n": n,
            "period_s": period,
            "on_time_per_s": n / period,
            "backfill_per_s": rate,
            "backfilled_schedule_max_concurrent": max_concurrent or "default",
            "window_s": seconds,
            "backfill_slots_recorded": started["slots_to_record"],
            "backfill_runs_at_end": progress,
            **results,
            "p99_ratio_with_to_without": _ratio(p99[1], p99[0]),
        }


# ---------------------------------------------------------------- scale


async def _time_queries(dsn: str, rounds: int) -> dict[str, Any]:
    from services.outbox import _NEXT_DUE
    from services.stores.schedules import SELECT_DUE as _SELECT_DUE

    conn = await asyncpg.connect(dsn)
    try:
        select_due = str(_SELECT_DUE).replace(":horizon", "$1").replace(":limit", "$2")
        next_due = str(_NEXT_DUE)
        due_times, next_times = [], []
        for _ in range(rounds):
            now = utc_now()
            tr = conn.transaction()
            await tr.start()
            t = time.perf_counter()
            await conn.fetch(select_due, now, 500)
            due_times.append(time.perf_counter() - t)
            await tr.rollback()
            t = time.perf_counter()
            await conn.fetchval(next_due)
            next_times.append(time.perf_counter() - t)
        tr = conn.transaction()
        await tr.start()
        plan_due = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + select_due, utc_now(), 500)]
        await tr.rollback()
        plan_next = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + next_due)]
        return {
            "select_due_for_update_skip_locked": percentiles(due_times),
            "next_due": percentiles(next_times),
            "explain_select_due": plan_due,
            "explain_next_due": plan_next,
        }
    finally:
        await conn.close()


async def _clone_schedules(dsn: str, template_id: str, count: int, due: datetime) -> float:
    """Insert `count` copies of a schedule straight into PostgreSQL (INSERT … SELECT generate_series)."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = [
            r[0]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE "
                "table_name = 'schedules' ORDER BY ordinal_position"
            )
        ]
        override = {
            "id": "gen_random_uuid()",
            "name": "t.name || '-c' || g",
            "created_by": "'bench-copy'",
            "created_at": "t.created_at - make_interval(secs => g / 1000.0)",
            "next_run_at": "$2::timestamptz",
            "run_at": "$2::timestamptz",
        }
        select = ", ".join(override.get(c, f"t.{c}") for c in columns)
        started = time.perf_counter()
        await conn.execute(
            f"INSERT INTO schedules ({', '.join(columns)}) SELECT {select} "
            f"FROM schedules t, generate_series(1, {count}) g "
            "WHERE t.id = $1",
            uuid.UUID(template_id),
            due,
        )
        await conn.execute("ANALYZE schedules")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _fast_phase(run: Run, ids: list[str], starts: list[datetime], seconds: float) -> dict[str, Any]:
    start_at = utc_now() + timedelta(seconds=1)
    window = (start_at, start_at + timedelta(seconds=seconds))
    first = len(run.collector.records)
    rss_before = run.monitor.sample()
    await asyncio.sleep(max(0.0, (window[1] - utc_now()).total_seconds()) + 2)
    records = run.collector.records[first:]
    expected = {sid: interval_slots(s, 1, window, window[1]) for sid, s in zip(ids, starts)}
    res = analyse(records, expected, window)
    res.pop("_received_times")
    res["window"] = [iso(window[0]), iso(window[1])]
    res["processes"] = run.monitor.report(rss_before, run.monitor.sample(), seconds + 2)
    return res


async def _far_schedules(
    args: argparse.Namespace, run, dsn: str, via_api: int, big: int, ticker_rss: list
) -> tuple[dict[str, Any], float]:
    """`big` once schedules ~300 days ahead: `via_api` through the API, the rest cloned in SQL; the ticker's
    RSS after each step goes to `ticker_rss`. Returns the API's create result and the cloning's seconds."""
    far = utc_now() + timedelta(days=300)  # MAX_SCHEDULE_LOOKAHEAD_DAYS is 365
    items = [
        item(
            f"far-{i}",
            run.subject,
            schedule_type="once",
            run_at=iso(far + timedelta(seconds=i % 86400)),
            tags=["far", f"g{i % 10}"],
        )
        for i in range(via_api)
    ]
    created = await bulk_create(run.stack.api, items, chunk=args.chunk, lanes=args.create_lanes)
    ticker_rss.append((f"after_{via_api}_via_api", run.monitor.sample()["ticker"]["rss"]))
    copied_seconds = 0.0
    if big > via_api:
        copied_seconds = await _clone_schedules(dsn, created["ids"][0], big - via_api, far)
    ticker_rss.append((f"after_{big}", run.monitor.sample()["ticker"]["rss"]))
    return created, copied_seconds


def _scale_create_report(created: dict[str, Any], via_api: int, big: int, copied_seconds: float) -> dict[str, Any]:
    api_rate = created["per_second"]
    return {
        "via_api": via_api,
        "api_seconds": created["seconds"],
        "api_per_second": api_rate,
        "api_projected_seconds_for_1M": round(1_000_000 / api_rate, 1) if api_rate else None,
        "direct_sql_rows": max(0, big - via_api),
        "direct_sql_seconds": round(copied_seconds, 2),
        "direct_sql_method": "INSERT … SELECT generate_series cloning an API-created row (no audit rows)",
    }


async def scale(args: argparse.Namespace) -> dict[str, Any]:
    """100 one-second schedules, alone and beside a million far-future schedules; then the API load."""
    big = args.scale_total
    async with Run(args, "scale") as run:
        dsn = run.stack.database_url.replace("+asyncpg", "")
        t0 = (utc_now() + timedelta(seconds=3)).replace(microsecond=0)
        starts = [t0 + timedelta(seconds=i / 100) for i in range(100)]
        fast = [
            item(f"fast-{i}", run.subject, schedule_type="interval", interval_seconds=1, start_at=iso(s), tags=["fast"])
            for i, s in enumerate(starts)
        ]
        fast_ids = (await bulk_create(run.stack.api, fast, creator="bench-fast", lanes=1))["ids"]
        await asyncio.sleep(max(0.0, (t0 - utc_now()).total_seconds()) + 3)
        queries_empty = await _time_queries(dsn, args.query_rounds)
        baseline = await _fast_phase(run, fast_ids, starts, args.scale_seconds)
        ticker_rss = [("baseline_end", run.monitor.sample()["ticker"]["rss"])]

        via_api = min(args.scale_api_count, big)
        created, copied_seconds = await _far_schedules(args, run, dsn, via_api, big, ticker_rss)
        await asyncio.sleep(3)
        queries_big = await _time_queries(dsn, args.query_rounds)
        loaded = await _fast_phase(run, fast_ids, starts, args.scale_seconds)
        ticker_rss.append(("loaded_end", run.monitor.sample()["ticker"]["rss"]))
        conn = await asyncpg.connect(dsn)
        stored = await conn.fetchval("SELECT count(*) FROM schedules")
        await conn.close()
        out: dict[str, Any] = {
            "workload": "scale",
            "stored_schedules": stored,
            "create": _scale_create_report(created, via_api, big, copied_seconds),
            "baseline_100_fast": baseline,
            "with_million_100_fast": loaded,
            "lag_ratio_p50": _ratio(loaded["lag"]["p50_ms"], baseline["lag"]["p50_ms"]),
            "lag_ratio_p99": _ratio(loaded["lag"]["p99_ms"], baseline["lag"]["p99_ms"]),
            "due_queries_empty": queries_empty,
            "due_queries_million": queries_big,
            "ticker_rss_mb": [(k, round(v / 2**20, 1)) for k, v in ticker_rss],
        }
        if "api" in args.workloads:
            out["api"] = await api_load(args, run, fast_ids, created["ids"])
        return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# ---------------------------------------------------------------- API load


async def _http_load(port: int, make: Callable[[], bytes], seconds: float, concurrency: int) -> dict[str, Any]:
    """A minimal HTTP/1.1 keep-alive load generator (asyncio streams; far lighter than an HTTP library)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    end = time.perf_counter() + seconds

    async def lane() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < end:
                request = make()
                started = time.perf_counter()
                writer.write(request)
                status = int((await reader.readline()).split()[1])
                length, chunked = 0, False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    key, _, value = line.partition(b":")
                    key = key.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                if chunked:
                    while True:
                        size = int((await reader.readline()).strip(), 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                else:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "latency": percentiles(latencies),
    }


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def _post(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


GRAPHQL_PAGE = """query Page($after: String) {
  schedules(first: 50, after: $after, filter: {createdBy: "bench-fast"}) {
    edges { node { id name status nextRunAt lastExecution { id status scheduledFor finishedAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def api_load(args: argparse.Namespace, run: Run, fast_ids: list[str], ids: list[str]) -> dict[str, Any]:
    port = run.stack.api_port
    seconds, concurrency = args.api_seconds, args.api_concurrency
    pool = ids + fast_ids
    before = run.monitor.sample()
    out: dict[str, Any] = {"note": "one API process; load generator in the runner process on the same 2 cores"}
    started = time.time()
    out["get_by_id"] = await _http_load(
        port, lambda: _get(f"/api/v1/schedules/{random.choice(pool)}"), seconds, concurrency
    )
    out["list_filtered"] = await _http_load(
        port,
        lambda: _get(
            f"/api/v1/schedules?status=active&schedule_type=once&tags=g{random.randrange(10)}"
            f"&page={random.randint(1, 5)}&limit=50"
        ),
        seconds,
        concurrency,
    )
    out["list_filtered"]["query"] = "status=active&schedule_type=once&tags=g<0..9>&page=<1..5>&limit=50"
    out["graphql_page_50_last_execution"] = await _http_load(
        port, lambda: _post("/graphql", {"query": GRAPHQL_PAGE, "variables": {"after": None}}), seconds, concurrency
    )
    out["processes"] = run.monitor.report(before, run.monitor.sample(), time.time() - started)
    return out


# ---------------------------------------------------------------- main


def _pkg(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:
        return "unknown"


def machine() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip().splitlines()[0]
        except Exception:
            return "unknown"

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except Exception:
        pass
    import dramatiq as _dramatiq
    import sqlalchemy as _sa

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": version(["psql", "--version"]),
        "redis": version(["redis-server", "--version"]),
        "nats_server": version([str(VENV_BIN / "nats-server"), "--version"]),
        "dramatiq": _dramatiq.__version__,
        "sqlalchemy": _sa.__version__,
        "nats_py": _pkg("nats-py"),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.runner", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_workload_options(p)
    _add_stack_options(p)
    args = p.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.overrides = dict(kv.split("=", 1) for kv in args.set)  # --set NAME=VALUE, later ones win
    if args.tiny:
        args.burst_sizes, args.steady, args.shapes, args.backfill = "20", "50:2", "spread", "20:2:10"
        args.warmup, args.duration, args.drain_seconds = 1.0, 5.0, 10.0
        args.burst_lead = args.steady_lead = 4.0
        args.worker_processes, args.worker_threads = 1, 4
        args.workloads = [w for w in args.workloads if w in ("burst", "steady", "backfill")]
    return args


def _add_workload_options(p: argparse.ArgumentParser) -> None:
    """What runs, and for how long."""
    p.add_argument(
        "--workloads",
        default="burst,steady,backfill,scale,api",
        help="comma list of burst, steady, backfill, scale, api",
    )
    p.add_argument(
        "--backfill",
        default="1000:1:200,1000:1:200:1000",
        help="comma list of N:P:R[:C]: on-time N schedules of period P beside a backfill of R/s of a schedule "
        "with max_concurrent C (default: the setting's)",
    )
    p.add_argument("--tiny", action="store_true", help="a few seconds of each fire workload (for tests)")
    p.add_argument("--burst-sizes", default="1000,10000")
    p.add_argument("--steady", default="10000:10,50000:10", help="comma list of N:P")
    p.add_argument("--shapes", default="spread,aligned")
    p.add_argument("--warmup", type=float, default=10)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--drain-seconds", type=float, default=30)
    p.add_argument("--burst-timeout", type=float, default=120)
    p.add_argument(
        "--burst-lead",
        type=float,
        default=0,
        help="seconds from the first create to the due instant (0 = from --create-rate-hint)",
    )
    p.add_argument("--steady-lead", type=float, default=0)
    p.add_argument("--create-rate-hint", type=float, default=1000, help="schedules/s the API creates (sets the lead)")
    p.add_argument("--chunk", type=int, default=1000, help="items per bulk create (MAX_BULK_ITEMS is raised to 1000)")


def _add_stack_options(p: argparse.ArgumentParser) -> None:
    """How schedules are created, the stack's processes and settings, and the report."""
    p.add_argument("--create-lanes", type=int, default=2)
    p.add_argument("--scale-total", type=int, default=1_000_000)
    p.add_argument(
        "--scale-api-count", type=int, default=100_000, help="of the scale schedules, how many go through the API"
    )
    p.add_argument("--scale-seconds", type=float, default=30)
    p.add_argument("--query-rounds", type=int, default=200)
    p.add_argument("--api-seconds", type=float, default=15)
    p.add_argument("--api-concurrency", type=int, default=16)
    p.add_argument("--worker-processes", type=int, default=2)
    p.add_argument("--worker-threads", type=int, default=16)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--py-spy", action="store_true", help="record py-spy profiles (collapsed stacks) into bench/results/"
    )

    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_setting,
        help="a service setting for every process, e.g. --set DISPATCH_LEAD_MS=0 (repeatable)",
    )


def _setting(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return text


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started": iso(utc_now()),
        "machine": machine(),
        "argv": sys.argv,
        "settings": {
            "worker_processes": args.worker_processes,
            "worker_threads": args.worker_threads,
            "MAX_BULK_ITEMS": 1000,
            "LOG_LEVEL": "WARNING",
            **args.overrides,
        },
        "results": [],
    }

    async def one(label: str, make) -> None:
        try:
            report["results"].append(_clean(await make()))
        except Exception as error:  # keep the other workloads' results
            report["results"].append({"workload": label, "error": f"{type(error).__name__}: {error}"[:2000]})
        _progress(report["results"][-1])

    if "burst" in args.workloads:
        for n in [int(x) for x in args.burst_sizes.split(",") if x]:
            await one("burst", lambda n=n: burst(args, n))
    if "steady" in args.workloads:
        for spec in [s for s in args.steady.split(",") if s]:
            n, period = (int(x) for x in spec.split(":"))
            for shape in [s for s in args.shapes.split(",") if s]:
                await one(
                    "steady",
                    lambda n=n, period=period, shape=shape: steady(args, n, period, shape, args.warmup, args.duration),
                )
    if "backfill" in args.workloads:
        for spec in [s for s in args.backfill.split(",") if s]:
            n, period, rate, *cap = (int(x) for x in spec.split(":"))
            await one(
                "backfill",
                lambda n=n, period=period, rate=rate, cap=cap: backfill_load(
                    args, n, period, rate, args.duration / 2, cap[0] if cap else None
                ),
            )
    if "scale" in args.workloads or "api" in args.workloads:
        await one("scale", lambda: scale(args))
    report["finished"] = iso(utc_now())
    return report


def _progress(result: dict[str, Any]) -> None:
    brief = {
        k: result.get(k)
        for k in (
            "workload",
            "n",
            "shape",
            "received",
            "missed",
            "duplicates",
            "fires_per_s",
            "last_command_after_due_s",
            "lag",
            "lag_ratio_p99",
            "error",
        )
        if k in result
    }
    print(json.dumps(brief), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    report = asyncio.run(main_async(args))
    out = args.out or RESULTS_DIR / f"{utc_now().strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(out)
    return out


if __name__ == "__main__":
    main()
