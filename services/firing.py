"""The worker's work: claim executions, take concurrency slots, publish, record each outcome.

A batch goes through four set-based steps (one claim UPDATE, one Redis round trip for the locks, the
publishes concurrently, one outcome UPDATE), while every execution keeps its own attempt log, retry
schedule and final status. What happens to each run is decided by `core.outcomes.RetryPolicy`; the
rows are written by `services.stores.executions`. The caller (an actor) supplies the clock and the
jitter for backoff. All instants are UTC.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from core.outcomes import Delivered, RetryPolicy
from core.settings import Settings
from core.states import ExecutionStatus
from core.subjects import allowed_by
from core.traceparent import for_run as trace_for_run
from core.tuning import (
    EARLY_RETRY_SLACK,
    RECORD_RETRY_FIRST_PAUSE_SECONDS,
    RECORD_RETRY_MAX_PAUSE_SECONDS,
    RECORD_RETRY_SECONDS,
    ROUNDS_SECONDS,
)
from models.db import database_unreachable
from services.dead_letters import dead_letter, dead_letter_subject_of
from services.failures import auto_pause, recorded_failures, send_dead_letters
from services.locks import ScheduleLocks, lease_token
from services.overlap import Screened, cancel_notice, screen_overlap, takes_overlap_step
from services.publisher import CommandPublisher, Delivery, Outgoing
from services.runs import Claimed, Outcome, claimed_of, render_command
from services.stores import executions as execution_store
from services.stores import schedules as schedule_store

log = logging.getLogger("services.firing")

T = TypeVar("T")
WHITELIST_DISABLE_REASON = "target_command is no longer allowed by COMMAND_WHITELIST"


@dataclass
class FireResult:
    outcomes: list[Outcome] = field(default_factory=list)
    claimed: int = 0
    locks_acquired: int = 0
    disabled: list[uuid.UUID] = field(default_factory=list)  # schedules whose target is no longer allowed
    dead_letters: tuple[int, int] = (0, 0)  # dead letters of the batch's failed runs: (published, not)
    auto_paused: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (schedule, reason) paused

    @property
    def retries(self) -> list[Outcome]:
        """Runs to try again after their backoff (`retry_in_ms`)."""
        return [o for o in self.outcomes if o.status is ExecutionStatus.RETRYING and not o.waits_for_nats]

    @property
    def waiting_for_nats(self) -> list[Outcome]:
        """Runs to try again as soon as NATS is reachable."""
        return [o for o in self.outcomes if o.status is ExecutionStatus.RETRYING and o.waits_for_nats]


class RunTraces(Protocol):
    """Opens a span for each claimed attempt (returning its traceparent header) and closes the spans
    with their outcomes."""

    def open(self, run: Claimed) -> str: ...

    def close(self, outcomes: list[Outcome]) -> None: ...


class DerivedTraces:
    """Tracing off: each attempt's span id is derived (`core.traceparent.for_run`); nothing is exported."""

    def open(self, run: Claimed) -> str:
        return trace_for_run(run.traceparent, run.execution_id, run.attempt).header()

    def close(self, outcomes: list[Outcome]) -> None:
        return None


def _delivered(delivery: Delivery) -> Delivered:
    return Delivered(delivery.ok, delivery.via, delivery.error, delivery.unreachable, delivery.may_have_published)


async def _logged(step: Awaitable[T], what: str) -> T | None:
    """The step's result, or None after logging why it failed."""
    try:
        return await step
    except Exception as error:
        log.error(f"{what}: not done", extra={"action": "worker.after_failures_failed", "error": str(error)[:200]})
        return None


class FiringService:
    def __init__(
        self,
        engine: AsyncEngine,
        locks: ScheduleLocks,
        publisher: CommandPublisher,
        settings: Settings,
        worker_id: str | None = None,
        traces: RunTraces | None = None,
    ) -> None:
        """`worker_id` is this process's heartbeat name (services.liveness). Each batch's claim is
        recorded as `<worker_id>#<nonce>` (`executions.claimed_by`): the sweep reaps the runs of a dead
        worker at once, and only this batch may record their outcomes. None: no heartbeat, the runs are
        reaped after LOCK_TIMEOUT_SECONDS only. `traces` names each attempt's span (default: derived ids,
        nothing exported; runtime.tracing exports them)."""
        self.engine = engine
        self.locks = locks
        self.publisher = publisher
        self.settings = settings
        self.worker_id = worker_id
        self.traces: RunTraces = traces or DerivedTraces()
        self.policy = RetryPolicy.of(settings)

    def new_claim(self) -> str | None:
        """A name for one batch's claim: this worker and a nonce (None without a heartbeat)."""
        return f"{self.worker_id}#{secrets.token_hex(4)}" if self.worker_id else None

    async def claim(self, execution_ids: list[uuid.UUID], now: datetime, claim: str | None = None) -> list[Claimed]:
        """Take ownership of the runs still waiting, as `claim`; a redelivered or duplicate id claims nothing."""
        async with self.engine.begin() as conn:
            rows = await execution_store.claim(conn, execution_ids, now, now + EARLY_RETRY_SLACK, claim)
        claimed = [claimed_of(row) for row in rows]
        # Highest priority first; a schedule's runs in slot order (they take its concurrency slots in turn).
        return sorted(claimed, key=lambda c: (-c.priority, c.scheduled_for))

    async def fire(self, execution_ids: list[uuid.UUID], clock: Callable[[], datetime], jitter: float) -> FireResult:
        """Claim, lock, publish and record a batch.

        `clock()` gives the current UTC instant (read at claim and again after publishing, so the
        run's duration is real); `jitter` in [0, 1) spreads retry delays.
        """
        result = FireResult()
        now = clock()
        claim = self.new_claim()
        runs = await self.claim(execution_ids, now, claim)
        result.claimed = len(runs)
        if not runs:
            return result
        runs = [replace(run, span=self.traces.open(run)) for run in runs]
        screened = Screened(go=[])
        try:
            screened = await self._overlap(self._screen(runs, now, result), now, claim, jitter, result)
            await self._publish_in_rounds(screened.go, claim, now, clock, jitter, result)
            finished = clock()
            await self.record_when_possible(result.outcomes, finished, claim, clock)
        finally:
            result.outcomes.extend(screened.recorded)
            self.traces.close(result.outcomes)
        if result.disabled:
            await self.disable(result.disabled, WHITELIST_DISABLE_REASON, finished)
        await self._after_failures(runs, result, finished, claim)
        return result

    async def _after_failures(self, runs: list[Claimed], result: FireResult, now: datetime, claim: str | None) -> None:
        """Dead letters of the runs this batch recorded `failed`, then the auto-pause of their schedules.
        The failures are recorded already: an error in one of these steps costs a dead letter or a
        pause (logged), never an outcome, and does not stop the other step."""
        failed_ids = [o.execution_id for o in result.outcomes if o.status is ExecutionStatus.FAILED]
        if not failed_ids:
            return
        # A run reaped meanwhile is not this batch's to report: only the failures its claim recorded.
        held = await _logged(recorded_failures(self.engine, failed_ids, claim), "failures not read") or set()
        failed = [run for run in runs if run.execution_id in held]
        if not failed:
            return
        outcome_of = {o.execution_id: o for o in result.outcomes}
        letters = [self._dead_letter(run, outcome_of[run.execution_id], now) for run in failed]
        sent = await _logged(send_dead_letters(self.engine, self.publisher, letters, now, claim), "dead letters")
        result.dead_letters = sent or (0, len(letters))
        watched = [run.schedule_id for run in failed if run.pause_after_failures is not None]
        result.auto_paused = await _logged(auto_pause(self.engine, watched, now), "auto-pause") or []

    def _dead_letter(self, run: Claimed, outcome: Outcome, now: datetime) -> Outgoing:
        subject = dead_letter_subject_of(run, self.settings.DEAD_LETTER_SUBJECT, self.settings.command_whitelist)
        return dead_letter(run, render_command(run), outcome.error, outcome.reason, subject, now)

    async def _overlap(
        self, runs: list[Claimed], now: datetime, claim: str | None, jitter: float, result: FireResult
    ) -> Screened:
        """The overlap step (services.overlap): the runs that go; the others are recorded already. The
        cancel notices of the runs a newer one replaced go out before it (a failed notice is logged).
        When the step itself fails (PostgreSQL), the runs that take it are given back like an outage
        (nothing was published) and the others go."""
        try:
            screened = await screen_overlap(self.engine, self.policy, runs, now, claim)
        except Exception as error:
            log.warning("overlap step failed", extra={"action": "worker.overlap_failed", "error": str(error)[:200]})
            held = [run for run in runs if takes_overlap_step(run)]
            failure = f"overlap step failed: {type(error).__name__}: {error}"[:500]
            result.outcomes.extend(self._outage(run, now, failure, jitter) for run in held)
            return Screened(go=[run for run in runs if not takes_overlap_step(run)])
        if screened.cancelled:
            notices = [cancel_notice(cancelled, now) for cancelled in screened.cancelled]
            for notice, delivery in zip(notices, await self.publisher.deliver_many(notices)):
                if not delivery.ok:
                    log.warning(
                        "cancel notice not published",
                        extra={"action": "worker.cancel_notice_failed", "execution_id": notice.execution_id},
                    )
        return screened

    def _screen(self, runs: list[Claimed], now: datetime, result: FireResult) -> list[Claimed]:
        """The runs to publish; the others get their outcome (paused, deleted, forbidden) in `result`."""
        to_publish: list[Claimed] = []
        for run in runs:
            allowed = allowed_by(self.settings.command_whitelist, run.target_command)
            decision = self.policy.before_publish(run, allowed, run.target_command)
            if decision is None:
                to_publish.append(run)
                continue
            subject = run.target_command if not allowed else None
            result.outcomes.append(Outcome.of(run, now, decision, subject))
            if not allowed and run.schedule_id not in result.disabled:
                result.disabled.append(run.schedule_id)
        return to_publish

    async def _publish_in_rounds(
        self,
        runs: list[Claimed],
        claim: str | None,
        now: datetime,
        clock: Callable[[], datetime],
        jitter: float,
        result: FireResult,
    ) -> None:
        """Take a concurrency slot for each run, publish those that got one and give the slots back; go
        round again for the rest while a round publishes something (for up to ROUNDS_SECONDS); then
        defer or skip what is left.

        A catch-up hands a schedule's backlog over together, so a batch often holds several runs of one
        schedule whose slot only the batch's own earlier run holds, for the milliseconds of its publish:
        the next round takes it. The same slots are taken and released as in one round, so
        `max_concurrent` holds. A round that publishes nothing (another batch holds the slots) ends
        the rounds at once.
        """
        waiting = runs
        give_up_at = time.monotonic() + ROUNDS_SECONDS
        round_now = now
        while waiting:
            waiting, published = await self._one_round(waiting, claim, round_now, clock, jitter, result)
            if published is None:  # an outage ended the rounds; every run has its outcome
                return
            if not published or time.monotonic() >= give_up_at:
                break
            round_now = clock()
        result.outcomes.extend(Outcome.of(run, round_now, self.policy.on_busy(run, round_now)) for run in waiting)

    async def _one_round(
        self,
        waiting: list[Claimed],
        claim: str | None,
        now: datetime,
        clock: Callable[[], datetime],
        jitter: float,
        result: FireResult,
    ) -> tuple[list[Claimed], int | None]:
        """Lock, publish and release once; returns the runs still without a slot and how many were
        published (None when Redis or NATS is down: then every run of the round has its outcome)."""
        try:
            granted = await self.locks.acquire_many(
                [(r.schedule_id, r.max_concurrent, lease_token(r.execution_id, claim)) for r in waiting]
            )
        except Exception as error:  # Redis unavailable: try again later, nothing was published
            lock_error = f"lock service unavailable: {type(error).__name__}: {error}"[:500]
            result.outcomes.extend(self._outage(run, now, lock_error, jitter) for run in waiting)
            return [], None
        leases = [lease for lease in granted if lease is not None]
        publishing = [run for run, lease in zip(waiting, granted) if lease is not None]
        waiting = [run for run, lease in zip(waiting, granted) if lease is None]
        result.locks_acquired += len(leases)
        deliveries = await self._deliver(publishing, leases, clock)
        for run, delivery in zip(publishing, deliveries):
            result.outcomes.append(self._after(run, now, delivery, jitter))
        unreachable = next((d for d in deliveries if d.unreachable), None)
        if unreachable is not None:  # NATS is down: the rest would fail alike; they wait for it too
            error = unreachable.error or "NATS unreachable"
            result.outcomes.extend(self._outage(run, now, error, jitter, nats=True) for run in waiting)
            return [], None
        return waiting, len(publishing)

    async def _deliver(self, runs: list[Claimed], leases: list, clock: Callable[[], datetime]) -> list[Delivery]:
        """Publish the runs (each at its instant) and release their concurrency leases."""
        try:
            # One reference instant for the round: equal instants get equal delays, so the publish order
            # stays the claim order (highest priority first) among commands due at the same instant.
            reference = clock()
            return await self.publisher.deliver_many([self._held(render_command(r), r, reference) for r in runs])
        finally:
            try:
                await self.locks.release_many(leases)
            except Exception:  # the TTL frees them
                log.warning("lock release failed", extra={"action": "locks.release_failed"})

    async def disable(self, schedule_ids: list[uuid.UUID], reason: str, now: datetime) -> None:
        """Set schedules `disabled` with the reason, and say so in the audit trail."""
        async with self.engine.begin() as conn:
            await schedule_store.disable(conn, [(schedule_id, reason) for schedule_id in schedule_ids], now)

    @staticmethod
    def _held(outgoing: Outgoing, run: Claimed, reference: datetime) -> Outgoing:
        """The command, held back until the run's instant when it was claimed ahead of it (`reference`
        is the current instant, UTC)."""
        if run.due is None:
            return outgoing
        wait = (run.due - reference).total_seconds()
        return replace(outgoing, delay_seconds=wait) if wait > 0 else outgoing

    def _after(self, run: Claimed, now: datetime, delivery: Delivery, jitter: float) -> Outcome:
        decision = self.policy.after_delivery(run, now, _delivered(delivery), jitter)
        outcome = Outcome.of(run, now, decision, run.target_command)
        if delivery.written_at is None:
            return outcome
        published = datetime.fromtimestamp(delivery.written_at, timezone.utc)
        settled = datetime.fromtimestamp(delivery.settled_at, timezone.utc) if delivery.settled_at else None
        complete_by = None
        if decision.status is ExecutionStatus.AWAITING:  # the report may take its timeout from the publish
            complete_by = published + timedelta(seconds=run.completion_timeout_seconds)
        return replace(outcome, published_at=published, settled_at=settled, complete_by=complete_by)

    def _outage(self, run: Claimed, now: datetime, error: str, jitter: float, nats: bool = False) -> Outcome:
        decision = self.policy.on_outage(run, now, error, jitter, nats=nats)
        return Outcome.of(run, now, decision, run.target_command)

    async def record_when_possible(
        self, outcomes: list[Outcome], now: datetime, claim: str | None, clock: Callable[[], datetime]
    ) -> None:
        """Record, retrying while PostgreSQL is unreachable, for up to RECORD_RETRY_SECONDS from `now`.

        This worker is alive and knows what happened to its runs: it keeps them until it can say so,
        rather than leaving them `running` for the sweep to publish again after LOCK_TIMEOUT_SECONDS.
        """
        deadline = now + timedelta(seconds=min(RECORD_RETRY_SECONDS, self.settings.LOCK_TIMEOUT_SECONDS))
        pause = RECORD_RETRY_FIRST_PAUSE_SECONDS
        while True:
            try:
                await self.record(outcomes, now, claim)
                return
            except Exception as error:
                if not database_unreachable(error) or clock() + timedelta(seconds=pause) > deadline:
                    raise
                log.warning(
                    "outcomes not recorded yet: database unreachable",
                    extra={"action": "worker.record_retry", "runs": len(outcomes), "error": str(error)[:200]},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECORD_RETRY_MAX_PAUSE_SECONDS)

    async def record(self, outcomes: list[Outcome], now: datetime, claim: str | None = None) -> None:
        """Write the outcomes of the runs `claim` still holds (`now`: when the batch finished, UTC)."""
        if outcomes:
            async with self.engine.begin() as conn:
                await execution_store.record(conn, outcomes, now, claim)
