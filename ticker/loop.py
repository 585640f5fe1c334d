"""The ticker's loop: tick, then sleep until the next due instant (capped) or a NOTIFY wakes it.

The loop reports each pass to a `Pulse`, which the ticker's probes read (ticker.__main__).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from core.tuning import ERROR_BACKOFF_SECONDS, LISTEN_CONNECT_TIMEOUT_SECONDS, SWEEP_EVERY_SECONDS, TICKER_STALL_SECONDS
from services.events import EventSink
from services.failures import FinalFailures
from services.liveness import WorkerRegistry
from services.locks import ScheduleLocks
from services.outbox import next_due_at
from services.schedules import WAKEUP_CHANNEL
from services.ticking import lead_of
from ticker.tick import Enqueue, TickReport, run_tick

log = logging.getLogger("ticker")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Pulse:
    """When the loop last ended a pass, and whether that pass succeeded (monotonic seconds).

    Written by the loop, read by the probe server's threads (single attribute writes). Live: a pass
    ended within TICKER_STALL_SECONDS (the process start counts as one). Ready: besides, the last pass
    succeeded (the database answered).
    """

    def __init__(self) -> None:
        self.passed_at = time.monotonic()
        self.succeeded: bool | None = None  # None before the first pass

    def mark(self, succeeded: bool) -> None:
        self.passed_at = time.monotonic()
        self.succeeded = succeeded

    def live(self) -> tuple[bool, dict]:
        age = time.monotonic() - self.passed_at
        return age < TICKER_STALL_SECONDS, {"last_pass_age_seconds": round(age, 3), "last_pass_ok": self.succeeded}

    def ready(self) -> tuple[bool, dict]:
        alive, details = self.live()
        return alive and self.succeeded is True, details


class Wakeups:
    """LISTEN on the wake-up channel; reconnects after PostgreSQL restarts."""

    def __init__(self, database_url: str) -> None:
        self.dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.event = asyncio.Event()
        self.conn: asyncpg.Connection | None = None

    async def ensure(self) -> None:
        if self.conn is not None and not self.conn.is_closed():
            return
        try:
            self.conn = await asyncpg.connect(self.dsn, timeout=LISTEN_CONNECT_TIMEOUT_SECONDS)
            await self.conn.add_listener(WAKEUP_CHANNEL, lambda *_: self.event.set())
        except Exception as error:
            self.conn = None
            log.warning("LISTEN unavailable", extra={"action": "ticker.listen_failed", "error": str(error)})

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when a NOTIFY cut the sleep short."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass
        woken = self.event.is_set()
        self.event.clear()
        return woken

    async def close(self) -> None:
        if self.conn is not None and not self.conn.is_closed():
            await self.conn.close()


def _log_tick(report: TickReport) -> None:
    """At INFO what an operator reads about, at DEBUG a tick that only handed runs over."""
    notable = (
        report.missed
        or report.disabled
        or report.reaped
        or report.rescued
        or report.consumers_released
        or report.snoozes_ended
        or report.timed_out
        or report.enqueue_failed
    )
    if notable:
        log.info("tick", extra={"action": "ticker.tick", **report.__dict__})
    elif report.claimed or report.swept:
        log.debug("tick", extra={"action": "ticker.tick", **report.__dict__})


async def run_loop(
    engine: AsyncEngine,
    settings: Settings,
    enqueue: Enqueue,
    events: EventSink,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = utc_now,
    workers: WorkerRegistry | None = None,
    locks: ScheduleLocks | None = None,
    pulse: Pulse | None = None,
    failures: FinalFailures | None = None,
) -> None:
    pulse = pulse or Pulse()
    wakeups = Wakeups(settings.DATABASE_URL)
    last_sweep = 0.0
    woken = True
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            await wakeups.ensure()
            try:
                now = clock()
                # A NOTIFY may announce a manual trigger or a resume: its runs sit in the outbox.
                do_sweep = woken or loop.time() - last_sweep >= SWEEP_EVERY_SECONDS
                report = await run_tick(
                    engine,
                    now,
                    settings,
                    enqueue,
                    events,
                    sweep_outbox=do_sweep,
                    workers=workers,
                    locks=locks,
                    failures=failures,
                )
                if do_sweep:
                    last_sweep = loop.time()
                _log_tick(report)
                due = await next_due_at(engine)
                sleep = settings.TICKER_MAX_SLEEP_SECONDS
                if due is not None:
                    # Wake when the next slot enters the lead, plus a fifth of the lead so that one pass
                    # gathers that many slots into a few queue messages instead of one pass per slot.
                    lead = lead_of(settings).total_seconds()
                    sleep = min(sleep, (due - clock()).total_seconds() - lead + lead / 5)
                sleep = min(sleep, SWEEP_EVERY_SECONDS)
                if report.enqueue_failed:  # the queue is down: its released runs are due again at once
                    sleep = ERROR_BACKOFF_SECONDS
                pulse.mark(True)
            except Exception as error:  # database down: keep trying, never exit
                log.warning(
                    "tick failed", extra={"action": "ticker.tick_failed", "error": f"{type(error).__name__}: {error}"}
                )
                sleep = ERROR_BACKOFF_SECONDS
                pulse.mark(False)
            woken = await wakeups.wait(sleep) if sleep > 0 else False
    finally:
        await wakeups.close()
