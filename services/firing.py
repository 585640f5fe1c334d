"""The worker's work: claim executions, take concurrency slots, publish, record each outcome.

A batch goes through four set-based steps (one claim UPDATE, one Redis round trip for the locks, the
publishes concurrently, one outcome UPDATE), while every execution keeps its own attempt log, retry
schedule and final status. The caller (an actor) supplies `now` and the jitter for backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.backoff import retry_delay_seconds
from core.settings import Settings
from core.states import MissReason
from core.subjects import allowed_by
from core.templates import render
from models.db import database_unreachable
from services.locks import ScheduleLocks, lease_token
from services.publisher import MSG_ID_HEADER, CommandPublisher, Delivery, Outgoing

log = logging.getLogger("services.firing")

# A retry message may arrive a little before next_attempt_at (clocks of two hosts): allow that much.
EARLY_RETRY_SLACK = timedelta(seconds=5)
# A run that finds every concurrency slot of its schedule busy tries again once its batch has released
# the slots the batch used (FiringService._publish_in_rounds; a batch starts no new round after
# ROUNDS_SECONDS). Still busy then, it tries again LOCK_CONFLICT_DEFER_MS later, while its slot is within
# the misfire grace (a backlog after an outage hands several slots of one schedule to the workers at
# once; each publish takes milliseconds), else it is skipped.
ROUNDS_SECONDS = 2.0
LOCK_CONFLICT_DEFER_MS = 1000
# A run that failed because one of OUR dependencies was unreachable (Redis for its lock, NATS for its
# publish) tries again within this many seconds (NATS: as soon as the worker's connection is back, see
# actors.waiting_room) and keeps its attempt, while its slot is within the misfire grace. The
# schedule's retry_delay and max_retries are a budget for failures of the target, not of our own
# outages. Past the grace, the run falls back to the schedule's backoff, which bounds the work of a
# long outage.
OUTAGE_RETRY_CAP_SECONDS = 5
# A worker that cannot record its outcomes (PostgreSQL restarting or unreachable) keeps trying this long
# (at most LOCK_TIMEOUT_SECONDS, after which the sweep hands the runs out again anyway).
RECORD_RETRY_SECONDS = 90

# The rows are locked first with SKIP LOCKED: a run locked by another transaction is being claimed or
# recorded by someone else, who will publish it or send it again. Waiting for it instead deadlocked
# two batches holding copies of the same runs in different orders (after a catch-up, the waiting-room
# batches of two workers and the sweep's copies): PostgreSQL aborted one, and its 100 runs waited for
# the sweep (the chaos suite saw it tens of times per run).
_CLAIM = sa.text(
    """
    WITH free AS (
        SELECT id FROM executions
        WHERE id = ANY(CAST(:ids AS uuid[]))
          AND (status = 'pending' OR (status = 'retrying' AND coalesce(next_attempt_at, :now) <= :early))
        FOR UPDATE SKIP LOCKED)
    UPDATE executions AS e
    SET status = 'running', started_at = greatest(:now, coalesce(e.not_before, e.scheduled_for)),
        attempts = e.attempts + 1, next_attempt_at = NULL, claimed_by = :claim
    FROM free, schedules AS s
    WHERE e.id = free.id AND s.id = e.schedule_id
      AND (e.status = 'pending' OR (e.status = 'retrying' AND coalesce(e.next_attempt_at, :now) <= :early))
    RETURNING e.id, e.schedule_id, e.scheduled_for, coalesce(e.not_before, e.scheduled_for) AS due, e.attempts,
              e.trigger_type, e.payload_override,
              e.correlation_id, e.priority, s.name, s.status AS schedule_status, s.target_command,
              s.command_payload, s.delivery_mode, s.request_timeout_seconds, s.max_retries, s.retry_delay,
              s.max_concurrent, s.schedule_type, s.misfire_grace_seconds,
              EXISTS (SELECT 1 FROM jsonb_array_elements(e.attempt_log) AS a
                      WHERE a->>'status' = 'lost' OR a->>'error' LIKE 'flush failed%'
                         OR a->>'error' LIKE 'TimeoutError%') AS maybe_published
    """
)
# Rows are locked in id order first: two records (or a record and the reaper) never wait on each other
# in a cycle; claims never wait at all (SKIP LOCKED above).
_RECORD = sa.text(
    """
    WITH mine AS (
        SELECT id FROM executions WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE)
    UPDATE executions AS e
    SET status = v.status, reason = v.reason, last_error = coalesce(v.error, e.last_error),
        attempts = e.attempts - v.refund,
        finished_at = v.finished_at, next_attempt_at = v.next_attempt_at,
        published_subject = coalesce(v.subject, e.published_subject),
        message_id = coalesce(v.message_id, e.message_id),
        attempt_log = e.attempt_log || jsonb_build_array(CAST(v.entry AS jsonb))
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]),
                CAST(:errors AS text[]), CAST(:finished AS timestamptz[]), CAST(:next_attempts AS timestamptz[]),
                CAST(:subjects AS text[]), CAST(:message_ids AS text[]), CAST(:entries AS text[]),
                CAST(:refunds AS int[]))
         AS v(id, status, reason, error, finished_at, next_attempt_at, subject, message_id, entry, refund),
         mine
    WHERE e.id = v.id AND mine.id = v.id AND e.status = 'running'
      AND e.claimed_by IS NOT DISTINCT FROM CAST(:claim AS text)
    """
)


_DISABLE = sa.text(
    """
    WITH changed AS (
        UPDATE schedules SET status = 'disabled', status_reason = :reason, updated_at = :now, version = version + 1
        WHERE id = ANY(CAST(:ids AS uuid[])) AND status IN ('active', 'paused')
        RETURNING id)
    INSERT INTO audit_log (at, actor, action, schedule_id, reason)
    SELECT :now, 'scheduler', 'schedule.disabled', id, :reason FROM changed
    """
)


@dataclass(frozen=True)
class Claimed:
    """A run this worker now owns (status `running`), with what it needs from its schedule."""

    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    attempt: int
    trigger_type: str
    payload_override: dict | None
    correlation_id: str | None
    priority: int
    name: str
    schedule_status: str
    schedule_type: str
    target_command: str
    command_payload: dict
    delivery_mode: str
    request_timeout_seconds: int
    max_retries: int
    retry_delay: int
    max_concurrent: int
    misfire_grace_seconds: int = 0
    # An earlier attempt may have reached NATS: its worker was lost mid-run (reaped), or the core
    # flush / the JetStream PubAck timed out after the message was written.
    maybe_published: bool = False
    due: datetime | None = None  # when it may be published (slot + jitter, UTC); None = at once


@dataclass(frozen=True)
class Outcome:
    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    schedule_type: str
    status: str  # succeeded | failed | retrying | skipped | missed | cancelled
    attempt: int
    scheduled_for: datetime
    started_at: datetime
    reason: str | None = None
    error: str | None = None
    subject: str | None = None
    retry_in_ms: int | None = None
    via: str | None = None
    counts_as_attempt: bool = True  # a deferral for a busy concurrency slot is not an attempt
    published_at: datetime | None = None  # when its publish began (UTC); None when nothing was sent
    # Retry when NATS is reachable again rather than after retry_in_ms (actors.waiting_room): the
    # publish failed because NATS was unreachable, within the slot's misfire grace.
    waits_for_nats: bool = False


@dataclass
class FireResult:
    outcomes: list[Outcome] = field(default_factory=list)
    claimed: int = 0
    locks_acquired: int = 0
    disabled: list[uuid.UUID] = field(default_factory=list)  # schedules whose target is no longer allowed

    @property
    def retries(self) -> list[Outcome]:
        """Runs to try again after their backoff (`retry_in_ms`)."""
        return [o for o in self.outcomes if o.status == "retrying" and not o.waits_for_nats]

    @property
    def waiting_for_nats(self) -> list[Outcome]:
        """Runs to try again as soon as NATS is reachable."""
        return [o for o in self.outcomes if o.status == "retrying" and o.waits_for_nats]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _claimed(row: Any) -> Claimed:
    return Claimed(
        execution_id=row.id,
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
        attempt=row.attempts,
        trigger_type=row.trigger_type,
        payload_override=_json(row.payload_override),
        correlation_id=row.correlation_id,
        priority=row.priority,
        name=row.name,
        schedule_status=row.schedule_status,
        schedule_type=row.schedule_type,
        target_command=row.target_command,
        command_payload=_json(row.command_payload),
        delivery_mode=row.delivery_mode,
        request_timeout_seconds=row.request_timeout_seconds,
        max_retries=row.max_retries,
        retry_delay=row.retry_delay,
        max_concurrent=row.max_concurrent,
        misfire_grace_seconds=row.misfire_grace_seconds,
        maybe_published=bool(getattr(row, "maybe_published", False)),
        due=getattr(row, "due", None),
    )


def render_command(run: Claimed) -> Outgoing:
    """The NATS message of one run: templated body, metadata headers, execution id as Nats-Msg-Id."""
    values = {
        "scheduled_for": run.scheduled_for.isoformat(),
        "execution_id": str(run.execution_id),
        "attempt": str(run.attempt),
        "schedule.id": str(run.schedule_id),
        "schedule.name": run.name,
    }
    payload = render(run.payload_override if run.payload_override is not None else run.command_payload, values)
    headers = {
        MSG_ID_HEADER: str(run.execution_id),
        "Scheduler-Execution-Id": str(run.execution_id),
        "Scheduler-Schedule-Id": str(run.schedule_id),
        "Scheduler-Scheduled-For": run.scheduled_for.isoformat(),
        "Scheduler-Attempt": str(run.attempt),
        "Scheduler-Correlation-Id": run.correlation_id or str(run.execution_id),
    }
    return Outgoing(
        execution_id=str(run.execution_id),
        subject=run.target_command,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        headers=headers,
        mode=run.delivery_mode,
        timeout_seconds=float(run.request_timeout_seconds),
    )


class FiringService:
    def __init__(
        self,
        engine: AsyncEngine,
        locks: ScheduleLocks,
        publisher: CommandPublisher,
        settings: Settings,
        worker_id: str | None = None,
    ) -> None:
        """`worker_id` is this process's heartbeat name (services.liveness). Each batch's claim is
        recorded as `<worker_id>#<nonce>` (`executions.claimed_by`): the sweep reaps the runs of a dead
        worker at once, and only this batch may record their outcomes. None: no heartbeat, the runs are
        reaped after LOCK_TIMEOUT_SECONDS only."""
        self.engine = engine
        self.locks = locks
        self.publisher = publisher
        self.settings = settings
        self.worker_id = worker_id

    def new_claim(self) -> str | None:
        """A name for one batch's claim: this worker and a nonce (None without a heartbeat)."""
        return f"{self.worker_id}#{secrets.token_hex(4)}" if self.worker_id else None

    async def claim(self, execution_ids: list[uuid.UUID], now: datetime, claim: str | None = None) -> list[Claimed]:
        """Take ownership of the runs still waiting, as `claim`; a redelivered or duplicate id claims nothing."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    _CLAIM, {"ids": execution_ids, "now": now, "early": now + EARLY_RETRY_SLACK, "claim": claim}
                )
            ).all()
        claimed = [_claimed(row) for row in rows]
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
        to_publish: list[Claimed] = []
        for run in runs:
            # A slot that was queued before its schedule was paused or deleted does not go out;
            # a manual trigger is an explicit request and goes out while the schedule is paused.
            # A run already in flight before the pause/delete (an earlier attempt may have published)
            # is finished instead: recording it cancelled/missed could contradict a publish that happened
            # (JetStream drops the repeat by Nats-Msg-Id).
            if run.schedule_status == "deleted" and not run.maybe_published:
                result.outcomes.append(self._outcome(run, now, "cancelled", reason=MissReason.DELETED.value))
            elif run.schedule_status == "paused" and run.trigger_type == "scheduled" and not run.maybe_published:
                result.outcomes.append(self._outcome(run, now, "missed", reason=MissReason.PAUSED.value))
            elif not allowed_by(self.settings.command_whitelist, run.target_command):
                # The whitelist changed since the schedule was saved: never publish, stop the schedule.
                result.outcomes.append(
                    self._outcome(
                        run,
                        now,
                        "failed",
                        reason=MissReason.FORBIDDEN.value,
                        subject=run.target_command,
                        error=f"{run.target_command} is not allowed by COMMAND_WHITELIST",
                    )
                )
                if run.schedule_id not in result.disabled:
                    result.disabled.append(run.schedule_id)
            else:
                to_publish.append(run)
        await self._publish_in_rounds(to_publish, claim, now, clock, jitter, result)
        finished = clock()
        await self.record_when_possible(result.outcomes, finished, claim, clock)
        if result.disabled:
            await self.disable(result.disabled, "target_command is no longer allowed by COMMAND_WHITELIST", finished)
        return result

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

        A catch-up hands a schedule's backlog over together (the ticker records an outage's missed slots
        of one schedule in one pass), so a batch often holds several runs of one schedule whose slot
        only the batch's own earlier run holds, for the milliseconds of its publish. Deferring each of
        them by LOCK_CONFLICT_DEFER_MS (a claim, an outcome UPDATE and a queue message per step) let
        a schedule's backlog out one run per step. The same slots are taken and released as before,
        so `max_concurrent` holds. A round that publishes nothing (another batch holds the slots) ends
        the rounds at once: polling for the other batch's slots held the worker's threads idle, and a
        catch-up measured with it was no faster.
        """
        waiting = runs
        give_up_at = time.monotonic() + ROUNDS_SECONDS
        round_now = now
        while waiting:
            try:
                granted = await self.locks.acquire_many(
                    [(r.schedule_id, r.max_concurrent, lease_token(r.execution_id, claim)) for r in waiting]
                )
            except Exception as error:  # Redis unavailable: try again later, nothing was published
                lock_error = f"lock service unavailable: {type(error).__name__}: {error}"[:500]
                result.outcomes.extend(self._outage_failure(run, round_now, lock_error, jitter) for run in waiting)
                return
            leases = [lease for lease in granted if lease is not None]
            publishing = [run for run, lease in zip(waiting, granted) if lease is not None]
            waiting = [run for run, lease in zip(waiting, granted) if lease is None]
            result.locks_acquired += len(leases)
            deliveries: list[Delivery] = []
            try:
                # One reference instant for the round: equal instants get equal delays, so the publish order
                # stays the claim order (highest priority first) among commands due at the same instant.
                reference = clock()
                deliveries = await self.publisher.deliver_many(
                    [self._held(render_command(r), r, reference) for r in publishing]
                )
                for run, delivery in zip(publishing, deliveries):
                    result.outcomes.append(self._delivered(run, round_now, delivery, jitter))
            finally:
                try:
                    await self.locks.release_many(leases)
                except Exception:  # the TTL frees them
                    log.warning("lock release failed", extra={"action": "locks.release_failed"})
            unreachable = next((d for d in deliveries if d.unreachable), None)
            if unreachable is not None:  # NATS is down: the rest would fail alike; they wait for it too
                result.outcomes.extend(
                    self._outage_failure(run, round_now, unreachable.error or "NATS unreachable", jitter, nats=True)
                    for run in waiting
                )
                return
            if not publishing or time.monotonic() >= give_up_at:
                break
            round_now = clock()
        for run in waiting:
            if self._within_grace(run, round_now):
                result.outcomes.append(
                    self._outcome(
                        run,
                        round_now,
                        "retrying",
                        reason=MissReason.LOCK_CONFLICT.value,
                        subject=run.target_command,
                        error="all concurrency slots busy: deferred",
                        retry_in_ms=LOCK_CONFLICT_DEFER_MS,
                        counts_as_attempt=False,
                    )
                )
            else:
                result.outcomes.append(self._outcome(run, round_now, "skipped", reason=MissReason.LOCK_CONFLICT.value))

    async def disable(self, schedule_ids: list[uuid.UUID], reason: str, now: datetime) -> None:
        """Set schedules `disabled` with the reason, and say so in the audit trail."""
        async with self.engine.begin() as conn:
            await conn.execute(_DISABLE, {"ids": schedule_ids, "reason": reason, "now": now})

    @staticmethod
    def _held(outgoing: Outgoing, run: Claimed, reference: datetime) -> Outgoing:
        """The command, held back until the run's instant when it was claimed ahead of it (`reference`
        is the current instant, UTC)."""
        if run.due is None:
            return outgoing
        wait = (run.due - reference).total_seconds()
        return replace(outgoing, delay_seconds=wait) if wait > 0 else outgoing

    def _outcome(self, run: Claimed, now: datetime, status: str, **kw: Any) -> Outcome:
        started = max(now, run.due) if run.due is not None else now  # a run claimed ahead starts at its instant
        return Outcome(
            run.execution_id, run.schedule_id, run.schedule_type, status, run.attempt, run.scheduled_for, started, **kw
        )

    def _delivered(self, run: Claimed, now: datetime, delivery: Delivery, jitter: float) -> Outcome:
        if delivery.ok:
            outcome = self._outcome(run, now, "succeeded", subject=run.target_command, via=delivery.via)
        elif delivery.unreachable:
            outcome = self._outage_failure(run, now, delivery.error or "NATS unreachable", jitter, nats=True)
        else:
            outcome = self._failure(run, now, delivery.error or "publish failed", jitter)
        if delivery.written_at is None:
            return outcome
        return replace(outcome, published_at=datetime.fromtimestamp(delivery.written_at, timezone.utc))

    def _within_grace(self, run: Claimed, now: datetime) -> bool:
        grace = max(run.misfire_grace_seconds, self.settings.MISFIRE_ON_TIME_SECONDS)
        return (now - run.scheduled_for).total_seconds() <= grace

    def _failure(self, run: Claimed, now: datetime, error: str, jitter: float) -> Outcome:
        retries_used = run.attempt - 1
        if retries_used >= run.max_retries:
            return self._outcome(run, now, "failed", error=error, subject=run.target_command)
        delay = retry_delay_seconds(retries_used + 1, run.retry_delay, self.settings.RETRY_BACKOFF_CAP_SECONDS, jitter)
        return self._outcome(
            run, now, "retrying", error=error, subject=run.target_command, retry_in_ms=int(delay * 1000)
        )

    def _outage_failure(self, run: Claimed, now: datetime, error: str, jitter: float, nats: bool = False) -> Outcome:
        """A failure caused by our own dependency being unreachable (see OUTAGE_RETRY_CAP_SECONDS);
        `nats`: NATS was the one, so the run may wait for it to come back (Outcome.waits_for_nats)."""
        if not self._within_grace(run, now):
            return self._failure(run, now, error, jitter)
        # The first backoff step, capped: the attempt is given back, so the step never grows.
        cap = min(OUTAGE_RETRY_CAP_SECONDS, self.settings.RETRY_BACKOFF_CAP_SECONDS)
        delay = retry_delay_seconds(1, max(1, run.retry_delay), cap, jitter)
        return self._outcome(
            run,
            now,
            "retrying",
            error=error,
            subject=run.target_command,
            retry_in_ms=int(delay * 1000),
            counts_as_attempt=False,
            waits_for_nats=nats,
        )

    async def record_when_possible(
        self, outcomes: list[Outcome], now: datetime, claim: str | None, clock: Callable[[], datetime]
    ) -> None:
        """Record, retrying while PostgreSQL is unreachable, for up to RECORD_RETRY_SECONDS from `now`.

        This worker is alive and knows what happened to its runs. Giving up at the first failure left
        them `running` until LOCK_TIMEOUT_SECONDS, after which the sweep published them again: a
        duplicate on core NATS for every run in flight when PostgreSQL went away.
        """
        deadline = now + timedelta(seconds=min(RECORD_RETRY_SECONDS, self.settings.LOCK_TIMEOUT_SECONDS))
        pause = 0.25
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
            pause = min(pause * 2, 4.0)

    async def record(self, outcomes: list[Outcome], now: datetime, claim: str | None = None) -> None:
        """Write the outcomes of the runs `claim` still holds (`now`: when the batch finished, UTC)."""
        if not outcomes:
            return
        final = {"succeeded", "failed", "skipped", "missed", "cancelled"}
        columns: dict[str, list[Any]] = {
            k: []
            for k in (
                "ids",
                "statuses",
                "reasons",
                "errors",
                "finished",
                "next_attempts",
                "subjects",
                "message_ids",
                "entries",
                "refunds",
            )
        }
        for o in outcomes:
            next_attempt = now + timedelta(milliseconds=o.retry_in_ms) if o.retry_in_ms is not None else None
            entry = {
                "attempt": o.attempt,
                "started_at": o.started_at.isoformat(),
                "finished_at": now.isoformat(),
                "status": o.status,
                "error": o.error,
                "via": o.via,
                "reason": o.reason,
            }
            published = o.status == "succeeded"
            for key, value in zip(
                columns,
                (
                    o.execution_id,
                    o.status,
                    o.reason,
                    o.error,
                    now if o.status in final else None,
                    next_attempt,
                    o.subject if published else None,
                    str(o.execution_id) if published else None,
                    json.dumps({k: v for k, v in entry.items() if v is not None}),
                    0 if o.counts_as_attempt else 1,
                ),
            ):
                columns[key].append(value)
        # Only runs this worker still holds: one reaped while it was frozen may be another's by now,
        # and a late outcome must not overwrite that claim (it would also retry a published run).
        async with self.engine.begin() as conn:
            await conn.execute(_RECORD, {**columns, "claim": claim})
