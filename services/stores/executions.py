"""The executions store: the only code that writes the `executions` table.

Every statement is named here with what it does; the services call the functions below inside the
transaction they own (`conn` is a SQLAlchemy `AsyncConnection`). Status values come from
`core.states`. A status change is checked against the transition table before it is written
(`InvalidTransition`), and the database's trigger refuses one that is not listed there either.
All instants are UTC.

Statements:
- CLAIM            take `pending` runs, and `retrying` runs whose next attempt is due, as `running`
                   (returning each run's correlation id and traceparent with its schedule's fields)
- RECORD           write the outcomes of the runs one claim still holds
- HELD_FAILURES    which runs are `failed` as one claim recorded them
- DEAD_LETTERED    mark failed runs of one claim as dead-lettered
- UNLETTERED       failed or timed-out runs (with their schedule's fields) whose dead letter is not sent
- LETTERED         mark failed or timed-out runs as dead-lettered, whoever recorded them
- SELECT_STALE     lock the `running` runs of dead or silent workers (the reaper decides their fate)
- RECORD_LOST      write the reaper's decisions for them
- HAND_OVER        mark `pending` runs due within the lead as handed to the queue
- LOST_PENDING     hand over again `pending` runs handed over long ago and never started
- LOST_RETRIES     hand over again `retrying` runs whose next attempt is long overdue
- UPCOMING_RETRIES list the retries due soon (their delayed messages may be lost)
- RELEASE          mark runs whose enqueue failed as not handed over (a retry is then an unsent one)
- INSERT_SLOTS     record a batch of slots (one row per slot; a slot recorded twice is a no-op)
- INSERT_MANUAL    record a manual trigger
- RECORDED_SLOTS   which of some slots of a schedule are recorded already (by the ticker or a backfill)
- INSERT_BACKFILL  record a backfill's slots, each handed over no earlier than its `not_before`
- CANCEL_BACKFILL  cancel a backfill's runs not handed over yet
- BACKFILL_COUNTS  a backfill's runs by status
- FIND             one run's schedule and status (not locked)
- LOCK_ONE         lock one run (its schedule and status)
- RETRY            make a failed or timed-out run `pending` again (a retry by hand), handed over at once
- LOCK_SCHEDULES   lock schedules (in id order) while their overlap is decided
- IN_PROGRESS      the runs of some schedules that are in progress or wait their turn (overlap)
- CANCEL_OVERLAPPED cancel runs a newer slot replaces (overlap cancel_other), in id order
- RUNNING_AMONG    which of some runs are being published (`running`) now
- LOAD_RUN         lock one run with its schedule's fields (a completion report)
- COMPLETE         write a completion report's outcome to the attempt it names (awaiting, or still running)
- EXPIRED          lock `awaiting` runs whose completion timeout passed
- RECORD_EXPIRED   write the policy's decisions for them (retries are left to the ticker to hand over)
- WAKE_BUFFERED    make the first `buffered` run of each schedule with no run in progress `pending`
- UNSENT_RETRIES   hand over `retrying` runs decided outside a worker (a report, a timeout)
- PURGE            delete a batch of final runs finished before a cutoff
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from core.outcomes import Decision
from core.states import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    IN_PROGRESS_STATUSES,
    INITIAL_STATUSES,
    ExecutionStatus,
    InvalidTransition,
    Reason,
    TriggerType,
    transition,
)

S = ExecutionStatus


def _listed(statuses) -> str:
    return ", ".join(f"'{s}'" for s in sorted(statuses))


_FINAL = _listed(FINAL_STATUSES)
_IN_PROGRESS = _listed(IN_PROGRESS_STATUSES)
# Whether a schedule `s` takes the overlap step (core.overlap.takes_overlap_step), in SQL.
_TRACKED = "(s.overlap_policy <> 'allow' OR s.completion = 'report')"
# What a claimed run carries with it: its own fields and its schedule's (services.firing.Claimed).
_RUN_COLUMNS = """e.id, e.schedule_id, e.scheduled_for, coalesce(e.not_before, e.scheduled_for) AS due, e.attempts,
    e.trigger_type, e.payload_override, e.may_have_published,
    e.correlation_id, e.traceparent, e.priority, s.name, s.status AS schedule_status, s.target_command,
    s.command_payload, s.delivery_mode, s.request_timeout_seconds, s.max_retries, s.retry_delay,
    s.max_concurrent, s.schedule_type, s.misfire_grace_seconds, s.pause_after_failures,
    s.dead_letter_subject, s.completion, s.completion_timeout_seconds, s.overlap_policy,
    (s.completion = 'report' AND (e.reported_at IS NOT NULL OR e.attempt_log @> '[{"status": "timed_out"}]'))
        AS delivered_before"""
# The label of a reaped attempt in the attempt log (an attempt's fate, not an execution status).
LOST = "lost"

CLAIM = sa.text(
    f"""
    WITH free AS (
        SELECT id FROM executions
        WHERE id = ANY(CAST(:ids AS uuid[]))
          AND (status = '{S.PENDING}' OR (status = '{S.RETRYING}' AND coalesce(next_attempt_at, :now) <= :early))
        FOR UPDATE SKIP LOCKED)
    UPDATE executions AS e
    SET status = '{S.RUNNING}', started_at = greatest(:now, coalesce(e.not_before, e.scheduled_for)),
        attempts = e.attempts + 1, next_attempt_at = NULL, claimed_by = :claim
    FROM free, schedules AS s
    WHERE e.id = free.id AND s.id = e.schedule_id
      AND (e.status = '{S.PENDING}' OR (e.status = '{S.RETRYING}' AND coalesce(e.next_attempt_at, :now) <= :early))
    RETURNING {_RUN_COLUMNS}
    """
)
# Claims skip rows another transaction holds (SKIP LOCKED above): such a run is being claimed or
# recorded by someone who will publish it or send it again. Records lock their rows in id order, so
# two records (or a record and the reaper) never wait on each other in a cycle.
RECORD = sa.text(
    f"""
    WITH mine AS (
        SELECT id FROM executions WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE)
    UPDATE executions AS e
    SET status = v.status, reason = v.reason, last_error = coalesce(v.error, e.last_error),
        attempts = e.attempts - v.refund,
        finished_at = v.finished_at, next_attempt_at = v.next_attempt_at,
        published_subject = coalesce(v.subject, e.published_subject),
        message_id = coalesce(v.message_id, e.message_id),
        may_have_published = e.may_have_published OR v.may_have_published, complete_by = v.complete_by,
        attempt_log = e.attempt_log || jsonb_build_array(CAST(v.entry AS jsonb))
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]),
                CAST(:errors AS text[]), CAST(:finished AS timestamptz[]), CAST(:next_attempts AS timestamptz[]),
                CAST(:subjects AS text[]), CAST(:message_ids AS text[]), CAST(:entries AS text[]),
                CAST(:refunds AS int[]), CAST(:published AS boolean[]), CAST(:complete_by AS timestamptz[]))
         AS v(id, status, reason, error, finished_at, next_attempt_at, subject, message_id, entry, refund,
              may_have_published, complete_by),
         mine
    WHERE e.id = v.id AND mine.id = v.id AND e.status = '{S.RUNNING}'
      AND e.claimed_by IS NOT DISTINCT FROM CAST(:claim AS text)
    """
)
# The runs among :ids that are `failed` as the claim :claim recorded them.
_FAILED_BY_CLAIM = (
    f"id = ANY(CAST(:ids AS uuid[])) AND status = '{S.FAILED}' AND claimed_by IS NOT DISTINCT FROM CAST(:claim AS text)"
)
HELD_FAILURES = sa.text(f"SELECT id FROM executions WHERE {_FAILED_BY_CLAIM}")
DEAD_LETTERED = sa.text(f"UPDATE executions SET dead_lettered_at = :now WHERE {_FAILED_BY_CLAIM}")
UNLETTERED = sa.text(
    f"""
    SELECT {_RUN_COLUMNS}, e.last_error, e.reason
    FROM executions AS e JOIN schedules AS s ON s.id = e.schedule_id
    WHERE e.id = ANY(CAST(:ids AS uuid[])) AND e.status IN ({_listed(FAILED_STATUSES)}) AND e.dead_lettered_at IS NULL
    """
)
LETTERED = sa.text(
    f"""
    UPDATE executions SET dead_lettered_at = :now
    WHERE id = ANY(CAST(:ids AS uuid[])) AND status IN ({_listed(FAILED_STATUSES)}) AND dead_lettered_at IS NULL
    """
)
SELECT_STALE = sa.text(
    f"""
    SELECT e.id, e.priority, e.schedule_id, e.attempts, e.started_at, e.claimed_by, e.scheduled_for,
           s.max_retries, s.max_concurrent
    FROM executions AS e JOIN schedules AS s ON s.id = e.schedule_id
    WHERE e.id IN (
        SELECT id FROM executions
        WHERE status = '{S.RUNNING}'
          AND (started_at < :stale OR split_part(claimed_by, '#', 1) = ANY(CAST(:dead AS text[])))
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)
RECORD_LOST = sa.text(
    f"""
    UPDATE executions AS e
    SET status = v.status, next_attempt_at = v.next_attempt_at, finished_at = v.finished_at,
        last_error = v.error, may_have_published = true,
        attempt_log = e.attempt_log || jsonb_build_array(jsonb_build_object(
            'attempt', e.attempts, 'started_at', e.started_at, 'finished_at', CAST(:now_text AS text),
            'status', '{LOST}', 'error', v.error))
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:next_attempts AS timestamptz[]),
                CAST(:finished AS timestamptz[]), CAST(:errors AS text[]))
         AS v(id, status, next_attempt_at, finished_at, error)
    WHERE e.id = v.id AND e.status = '{S.RUNNING}'
    """
)
HAND_OVER = sa.text(
    f"""
    UPDATE executions SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = '{S.PENDING}' AND enqueued_at IS NULL AND coalesce(not_before, scheduled_for) <= :horizon
        ORDER BY priority DESC, coalesce(not_before, scheduled_for)
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority, coalesce(not_before, scheduled_for) AS due
    """
)
LOST_PENDING = sa.text(
    f"""
    UPDATE executions SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = '{S.PENDING}' AND enqueued_at < :stale
        ORDER BY priority DESC, scheduled_for
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority
    """
)
LOST_RETRIES = sa.text(
    f"""
    UPDATE executions SET next_attempt_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = '{S.RETRYING}' AND next_attempt_at < :stale
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority
    """
)
UPCOMING_RETRIES = sa.text(
    f"""
    SELECT id, priority, next_attempt_at FROM executions
    WHERE status = '{S.RETRYING}' AND next_attempt_at >= :now AND next_attempt_at < :horizon
    ORDER BY next_attempt_at LIMIT :limit
    """
)
RELEASE = sa.text(
    "UPDATE executions SET enqueued_at = NULL "
    f"WHERE id = ANY(CAST(:ids AS uuid[])) AND status IN ('{S.PENDING}', '{S.RETRYING}')"
)
INSERT_SLOTS = sa.text(
    f"""
    INSERT INTO executions (id, schedule_id, scheduled_for, trigger_type, status, reason, priority,
                            attempts, attempt_log, not_before, enqueued_at, finished_at, created_at,
                            correlation_id, traceparent, overlap_tracked)
    SELECT v.id, v.schedule_id, v.scheduled_for, '{TriggerType.SCHEDULED}', v.status, v.reason, v.priority,
           0, '[]'::jsonb, v.not_before, v.enqueued_at, v.finished_at, :now, :correlation_id, :traceparent,
           v.tracked
    FROM unnest(CAST(:ids AS uuid[]), CAST(:schedule_ids AS uuid[]), CAST(:slots AS timestamptz[]),
                CAST(:statuses AS text[]), CAST(:reasons AS text[]), CAST(:priorities AS int[]),
                CAST(:not_befores AS timestamptz[]), CAST(:enqueued AS timestamptz[]),
                CAST(:finished AS timestamptz[]), CAST(:tracked AS boolean[]))
         AS v(id, schedule_id, scheduled_for, status, reason, priority, not_before, enqueued_at, finished_at,
              tracked)
    ON CONFLICT (schedule_id, scheduled_for) WHERE trigger_type = '{TriggerType.SCHEDULED}' DO NOTHING
    RETURNING id, status, priority, enqueued_at, not_before
    """
)
RECORDED_SLOTS = sa.text(
    f"""
    SELECT scheduled_for FROM executions
    WHERE schedule_id = :schedule_id AND scheduled_for = ANY(CAST(:slots AS timestamptz[]))
      AND trigger_type IN ('{TriggerType.SCHEDULED}', '{TriggerType.BACKFILL}')
    """
)
INSERT_BACKFILL = sa.text(
    f"""
    INSERT INTO executions (id, schedule_id, scheduled_for, trigger_type, triggered_by, status, priority,
                            attempts, attempt_log, not_before, created_at, correlation_id, traceparent,
                            overlap_tracked, backfill_id)
    SELECT gen_random_uuid(), :schedule_id, v.slot, '{TriggerType.BACKFILL}', :triggered_by, '{S.PENDING}',
           :priority, 0, '[]'::jsonb, v.not_before, :now, :correlation_id, :traceparent, :tracked, :backfill_id
    FROM unnest(CAST(:slots AS timestamptz[]), CAST(:not_befores AS timestamptz[])) AS v(slot, not_before)
    ON CONFLICT (schedule_id, scheduled_for) WHERE trigger_type = '{TriggerType.BACKFILL}' DO NOTHING
    """
)
CANCEL_BACKFILL = sa.text(
    f"""
    UPDATE executions SET status = '{S.CANCELLED}', reason = '{Reason.BACKFILL_CANCELLED}', finished_at = :now
    WHERE backfill_id = :backfill_id AND status = '{S.PENDING}' AND enqueued_at IS NULL
    """
)
BACKFILL_COUNTS = sa.text(
    "SELECT status, count(*) AS n FROM executions WHERE backfill_id = :backfill_id GROUP BY status"
)
INSERT_MANUAL = sa.text(
    f"""
    INSERT INTO executions (id, schedule_id, scheduled_for, trigger_type, triggered_by, status, priority,
                            attempts, attempt_log, payload_override, correlation_id, traceparent, created_at,
                            overlap_tracked)
    SELECT :id, s.id, :now, '{TriggerType.MANUAL}', :triggered_by, '{S.PENDING}', :priority,
           0, '[]'::jsonb, CAST(:payload_override AS jsonb), :correlation_id, :traceparent, :now,
           {_TRACKED}
    FROM schedules AS s WHERE s.id = :schedule_id
    """
)
_ONE = "SELECT id, schedule_id, status FROM executions WHERE id = :id"
FIND = sa.text(_ONE)
LOCK_ONE = sa.text(f"{_ONE} FOR UPDATE")
RETRY = sa.text(
    f"""
    UPDATE executions
    SET status = '{S.PENDING}', reason = NULL, finished_at = NULL, next_attempt_at = NULL, enqueued_at = NULL,
        claimed_by = NULL, dead_lettered_at = NULL, not_before = :now,
        correlation_id = :correlation_id, traceparent = coalesce(:traceparent, traceparent)
    WHERE id = :id AND status IN ({_listed(FAILED_STATUSES)})
    """
)
# FOR NO KEY UPDATE: overlap steps of one schedule take turns, while inserts of its runs (whose foreign
# key takes a KEY SHARE lock) go on.
LOCK_SCHEDULES = sa.text("SELECT id FROM schedules WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR NO KEY UPDATE")
RUNNING_AMONG = sa.text(f"SELECT id FROM executions WHERE id = ANY(CAST(:ids AS uuid[])) AND status = '{S.RUNNING}'")
IN_PROGRESS = sa.text(
    f"""
    SELECT e.id, e.schedule_id, e.scheduled_for, e.status, s.target_command
    FROM executions AS e JOIN schedules AS s ON s.id = e.schedule_id
    WHERE e.schedule_id = ANY(CAST(:ids AS uuid[])) AND e.overlap_tracked
      AND e.status IN ({_IN_PROGRESS}, '{S.BUFFERED}')
    ORDER BY e.schedule_id, e.scheduled_for, e.id
    """
)
# A run being published (`running`) is its worker's to record: only waiting or awaiting runs are cancelled.
CANCEL_OVERLAPPED = sa.text(
    f"""
    WITH doomed AS (
        SELECT id FROM executions
        WHERE id = ANY(CAST(:ids AS uuid[]))
          AND status IN ('{S.PENDING}', '{S.RETRYING}', '{S.AWAITING}', '{S.BUFFERED}')
        ORDER BY id FOR UPDATE)
    UPDATE executions AS e
    SET status = '{S.CANCELLED}', reason = '{Reason.OVERLAP}', finished_at = :now, next_attempt_at = NULL,
        complete_by = NULL, last_error = :error
    FROM doomed WHERE e.id = doomed.id
    RETURNING e.id
    """
)
LOAD_RUN = sa.text(
    f"""
    SELECT {_RUN_COLUMNS}, e.status, e.started_at, e.reported_at, e.attempt_log, s.created_by
    FROM executions AS e JOIN schedules AS s ON s.id = e.schedule_id
    WHERE e.id = :id
    FOR UPDATE OF e
    """
)
COMPLETE = sa.text(
    """
    UPDATE executions
    SET status = :status, finished_at = :finished, next_attempt_at = :next_attempt_at, enqueued_at = NULL,
        last_error = coalesce(:error, last_error), result = CAST(:result AS jsonb), reported_at = :now,
        complete_by = NULL, attempt_log = attempt_log || jsonb_build_array(CAST(:entry AS jsonb))
    WHERE id = :id AND status = :current AND attempts = :attempts
    """
)
EXPIRED = sa.text(
    f"""
    SELECT e.id, e.schedule_id, e.attempts, e.priority, e.started_at, s.max_retries, s.retry_delay,
           s.completion_timeout_seconds, s.pause_after_failures
    FROM executions AS e JOIN schedules AS s ON s.id = e.schedule_id
    WHERE e.id IN (
        SELECT id FROM executions WHERE status = '{S.AWAITING}' AND complete_by < :now
        ORDER BY complete_by LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)
RECORD_EXPIRED = sa.text(
    f"""
    UPDATE executions AS e
    SET status = v.status, next_attempt_at = v.next_attempt_at, finished_at = v.finished_at, enqueued_at = NULL,
        last_error = v.error, complete_by = NULL,
        attempt_log = e.attempt_log || jsonb_build_array(jsonb_build_object(
            'attempt', e.attempts, 'started_at', e.started_at, 'finished_at', CAST(:now_text AS text),
            'status', '{S.TIMED_OUT}', 'error', v.error))
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:next_attempts AS timestamptz[]),
                CAST(:finished AS timestamptz[]), CAST(:errors AS text[]))
         AS v(id, status, next_attempt_at, finished_at, error)
    WHERE e.id = v.id AND e.status = '{S.AWAITING}'
    """
)
# One run per schedule per pass: the first buffered run of a schedule with no EARLIER run in progress (a
# later one, a jittered slot or a manual trigger, does not hold it back; its own claim re-checks). The
# candidates are locked in id order, skipping rows another transaction holds.
WAKE_BUFFERED = sa.text(
    f"""
    WITH turn AS (
        SELECT DISTINCT ON (b.schedule_id) b.id FROM executions AS b
        WHERE b.status = '{S.BUFFERED}'
          AND NOT EXISTS (SELECT 1 FROM executions AS p
                          WHERE p.schedule_id = b.schedule_id AND p.overlap_tracked
                            AND p.status IN ({_IN_PROGRESS})
                            AND (p.scheduled_for, p.id) < (b.scheduled_for, b.id))
        ORDER BY b.schedule_id, b.scheduled_for, b.id
        LIMIT :limit),
    locked AS (
        SELECT e.id FROM executions AS e JOIN turn ON turn.id = e.id
        WHERE e.status = '{S.BUFFERED}' ORDER BY e.id FOR UPDATE OF e SKIP LOCKED)
    UPDATE executions AS e SET status = '{S.PENDING}', reason = NULL, enqueued_at = NULL, not_before = :now
    FROM locked WHERE e.id = locked.id
    RETURNING e.id
    """
)
UNSENT_RETRIES = sa.text(
    f"""
    UPDATE executions SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM executions
        WHERE status = '{S.RETRYING}' AND enqueued_at IS NULL AND next_attempt_at <= :horizon
        ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, priority, next_attempt_at
    """
)
PURGE = sa.text(
    f"""
    DELETE FROM executions WHERE id IN (
        SELECT id FROM executions
        WHERE status IN ({_FINAL}) AND finished_at < :cutoff
        LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)


class Recordable(Protocol):
    """One attempt's outcome as the worker records it (services.firing.Outcome)."""

    execution_id: uuid.UUID
    attempt: int
    started_at: datetime
    decision: Decision
    subject: str | None
    published_at: datetime | None
    complete_by: datetime | None  # for an `awaiting` outcome: when its completion times out


async def claim(conn: AsyncConnection, ids: Sequence[uuid.UUID], now: datetime, early: datetime, claim: str | None):
    """CLAIM: the claimed rows (with their schedule's fields); a duplicate or finished id claims nothing.
    `early`: a retry due before this instant may be claimed now (clock slack between hosts)."""
    params = {"ids": list(ids), "now": now, "early": early, "claim": claim}
    return (await conn.execute(CLAIM, params)).all()


def _entry(o: Recordable, finished_at: datetime) -> str:
    d = o.decision
    entry = {
        "attempt": o.attempt,
        "started_at": o.started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "status": d.status.value,
        "error": d.error,
        "via": d.via,
        "reason": d.reason.value if d.reason else None,
    }
    return json.dumps({k: v for k, v in entry.items() if v is not None})


def _record_columns(outcomes: Sequence[Recordable], now: datetime) -> dict[str, list[Any]]:
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
            "published",
            "complete_by",
        )
    }
    for o in outcomes:
        d = o.decision
        transition(S.RUNNING, d.status)  # InvalidTransition: never written
        published = d.status in (S.SUCCEEDED, S.AWAITING)
        values = (
            o.execution_id,
            d.status.value,
            d.reason.value if d.reason else None,
            d.error,
            now if d.status in FINAL_STATUSES else None,
            now + timedelta(milliseconds=d.retry_in_ms) if d.retry_in_ms is not None else None,
            o.subject if published else None,
            str(o.execution_id) if published else None,
            _entry(o, now),
            0 if d.counts_as_attempt else 1,
            d.may_have_published,
            o.complete_by if d.status is S.AWAITING else None,
        )
        for key, value in zip(columns, values):
            columns[key].append(value)
    return columns


async def record(conn: AsyncConnection, outcomes: Sequence[Recordable], now: datetime, claim: str | None) -> None:
    """RECORD: the outcomes of the runs `claim` still holds (`now`: when the batch finished).

    A run reaped while its worker was frozen may be another's by now: its late outcome is not written
    (it would overwrite that claim, or retry a published run)."""
    if outcomes:
        await conn.execute(RECORD, {**_record_columns(outcomes, now), "claim": claim})


async def held_failures(conn: AsyncConnection, ids: Sequence[uuid.UUID], claim: str | None) -> set[uuid.UUID]:
    """HELD_FAILURES: those of `ids` that are `failed` and still claimed by `claim`."""
    return {row.id for row in await conn.execute(HELD_FAILURES, {"ids": list(ids), "claim": claim})}


async def mark_dead_lettered(conn: AsyncConnection, ids: Sequence[uuid.UUID], now: datetime, claim: str | None) -> None:
    """DEAD_LETTERED: the dead letters of these failed runs (still held by `claim`) were published at `now`."""
    if ids:
        await conn.execute(DEAD_LETTERED, {"ids": list(ids), "now": now, "claim": claim})


async def unlettered(conn: AsyncConnection, ids: Sequence[uuid.UUID]):
    """UNLETTERED: those of `ids` that ended failed or timed out and have no dead letter yet (with their
    schedule's fields, last_error and reason)."""
    return (await conn.execute(UNLETTERED, {"ids": list(ids)})).all()


async def mark_lettered(conn: AsyncConnection, ids: Sequence[uuid.UUID], now: datetime) -> None:
    """LETTERED: the dead letters of these runs were published at `now`."""
    if ids:
        await conn.execute(LETTERED, {"ids": list(ids), "now": now})


async def find(conn: AsyncConnection, execution_id: uuid.UUID):
    """FIND: (id, schedule_id, status) of the run, or None."""
    return (await conn.execute(FIND, {"id": execution_id})).first()


async def lock_one(conn: AsyncConnection, execution_id: uuid.UUID):
    """LOCK_ONE: (id, schedule_id, status) of the run, locked until the transaction ends; None if unknown."""
    return (await conn.execute(LOCK_ONE, {"id": execution_id})).first()


async def retry(
    conn: AsyncConnection,
    execution_id: uuid.UUID,
    status: str,
    now: datetime,
    correlation_id: str,
    traceparent: str | None,
) -> None:
    """RETRY: the run (locked, in `status`) becomes `pending`, due at `now`, for one more attempt
    (InvalidTransition unless `status` allows it)."""
    transition(S(status), S.PENDING)
    params = {"id": execution_id, "now": now, "correlation_id": correlation_id, "traceparent": traceparent}
    await conn.execute(RETRY, params)


async def select_stale(conn: AsyncConnection, stale: datetime, dead: Sequence[str], limit: int):
    """SELECT_STALE: lock `running` runs started before `stale`, or claimed by a worker in `dead`."""
    return (await conn.execute(SELECT_STALE, {"stale": stale, "dead": list(dead), "limit": limit})).all()


async def record_lost(conn: AsyncConnection, lost: Sequence[tuple[uuid.UUID, Decision]], now: datetime) -> None:
    """RECORD_LOST: the reaper's decision for each run whose worker was lost (attempt log: `lost`)."""
    if not lost:
        return
    for _, decision in lost:
        transition(S.RUNNING, decision.status)
    await conn.execute(
        RECORD_LOST,
        {
            "now_text": now.isoformat(),
            "ids": [execution_id for execution_id, _ in lost],
            "statuses": [d.status.value for _, d in lost],
            "next_attempts": [_retry_instant(d, now) for _, d in lost],
            "finished": [now if d.is_final else None for _, d in lost],
            "errors": [d.error for _, d in lost],
        },
    )


async def hand_over(conn: AsyncConnection, now: datetime, horizon: datetime, limit: int):
    """HAND_OVER: (id, priority, due) of the `pending` runs due by `horizon`, now marked handed over."""
    return (await conn.execute(HAND_OVER, {"now": now, "horizon": horizon, "limit": limit})).all()


async def lost_pending(conn: AsyncConnection, now: datetime, stale: datetime, limit: int):
    """LOST_PENDING: (id, priority) of `pending` runs handed over before `stale`, handed over again."""
    return (await conn.execute(LOST_PENDING, {"now": now, "stale": stale, "limit": limit})).all()


async def lost_retries(conn: AsyncConnection, now: datetime, stale: datetime, limit: int):
    """LOST_RETRIES: (id, priority) of `retrying` runs due before `stale`, now due at `now`."""
    return (await conn.execute(LOST_RETRIES, {"now": now, "stale": stale, "limit": limit})).all()


async def upcoming_retries(conn: AsyncConnection, now: datetime, horizon: datetime, limit: int):
    """UPCOMING_RETRIES: (id, priority, next_attempt_at) of the retries due in [now, horizon)."""
    return (await conn.execute(UPCOMING_RETRIES, {"now": now, "horizon": horizon, "limit": limit})).all()


async def release(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> None:
    """RELEASE: runs whose enqueue failed are not handed over (the next sweep tries again at once)."""
    if ids:
        await conn.execute(RELEASE, {"ids": list(ids)})


async def insert_slots(
    conn: AsyncConnection,
    columns: dict[str, list[Any]],
    now: datetime,
    correlation_id: str | None = None,
    traceparent: str | None = None,
):
    """INSERT_SLOTS: record slots given as column arrays (`ids`, `schedule_ids`, `slots`, `statuses`,
    `reasons`, `priorities`, `not_befores`, `enqueued`, `finished`); returns the new rows' (id, status,
    priority, enqueued_at, not_before). A slot already recorded is skipped. `correlation_id` and
    `traceparent` name the request that recorded the slots (None for the ticker's slots)."""
    for status in columns["statuses"]:
        if ExecutionStatus(status) not in INITIAL_STATUSES:
            raise InvalidTransition(ExecutionStatus.PENDING, ExecutionStatus(status))
    params = {**columns, "now": now, "correlation_id": correlation_id, "traceparent": traceparent}
    return (await conn.execute(INSERT_SLOTS, params)).all()


async def insert_manual(
    conn: AsyncConnection,
    schedule_id: uuid.UUID,
    priority: int,
    now: datetime,
    triggered_by: str,
    payload_override: dict | None,
    correlation_id: str | None,
    traceparent: str | None = None,
) -> uuid.UUID:
    """INSERT_MANUAL: a `pending` manual run at `now`, with the request's correlation id and W3C
    traceparent; returns its id."""
    execution_id = uuid.uuid4()
    params = {
        "id": execution_id,
        "schedule_id": schedule_id,
        "now": now,
        "triggered_by": triggered_by,
        "priority": priority,
        "payload_override": json.dumps(payload_override) if payload_override is not None else None,
        "correlation_id": correlation_id,
        "traceparent": traceparent,
    }
    await conn.execute(INSERT_MANUAL, params)
    return execution_id


async def recorded_slots(conn: AsyncConnection, schedule_id: uuid.UUID, slots: Sequence[datetime]) -> set[datetime]:
    """RECORDED_SLOTS: the slots among `slots` that have a row already."""
    rows = await conn.execute(RECORDED_SLOTS, {"schedule_id": schedule_id, "slots": list(slots)})
    return {row.scheduled_for for row in rows}


async def insert_backfill(
    conn: AsyncConnection,
    backfill_id: uuid.UUID,
    schedule: Any,
    slots: Sequence[datetime],
    not_befores: Sequence[datetime],
    now: datetime,
    triggered_by: str,
    overlap_tracked: bool,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> int:
    """INSERT_BACKFILL: `pending` backfill runs, at the lowest priority so on-time runs go first; a
    slot recorded meanwhile is skipped. Returns how many were recorded."""
    params = {
        "backfill_id": backfill_id,
        "schedule_id": schedule.id,
        "slots": list(slots),
        "not_befores": list(not_befores),
        "now": now,
        "triggered_by": triggered_by,
        "priority": 0,
        "tracked": overlap_tracked,
        "correlation_id": correlation_id,
        "traceparent": traceparent,
    }
    return (await conn.execute(INSERT_BACKFILL, params)).rowcount


async def cancel_backfill(conn: AsyncConnection, backfill_id: uuid.UUID, now: datetime) -> int:
    """CANCEL_BACKFILL: cancel the backfill's runs not handed over yet; returns how many."""
    return (await conn.execute(CANCEL_BACKFILL, {"backfill_id": backfill_id, "now": now})).rowcount


async def backfill_counts(conn: AsyncConnection, backfill_id: uuid.UUID) -> dict[str, int]:
    """BACKFILL_COUNTS: the backfill's runs by status."""
    rows = await conn.execute(BACKFILL_COUNTS, {"backfill_id": backfill_id})
    return {row.status: row.n for row in rows}


async def purge(conn: AsyncConnection, cutoff: datetime, batch: int) -> int:
    """PURGE: delete up to `batch` final runs finished before `cutoff`; returns how many went."""
    return (await conn.execute(PURGE, {"cutoff": cutoff, "batch": batch})).rowcount


async def lock_schedules(conn: AsyncConnection, schedule_ids: Sequence[uuid.UUID]) -> None:
    """LOCK_SCHEDULES: hold these schedules until the transaction ends (their overlap is decided once)."""
    await conn.execute(LOCK_SCHEDULES, {"ids": sorted(set(schedule_ids))})


async def in_progress(conn: AsyncConnection, schedule_ids: Sequence[uuid.UUID]):
    """IN_PROGRESS: (id, schedule_id, scheduled_for, status, target_command) of the runs of these
    schedules that are in progress or `buffered`, in slot order."""
    return (await conn.execute(IN_PROGRESS, {"ids": sorted(set(schedule_ids))})).all()


async def cancel_overlapped(conn: AsyncConnection, ids: Sequence[uuid.UUID], now: datetime, error: str) -> list:
    """CANCEL_OVERLAPPED: the waiting or awaiting runs among `ids` become `cancelled` (reason overlap);
    returns the ids cancelled."""
    if not ids:
        return []
    return [row.id for row in await conn.execute(CANCEL_OVERLAPPED, {"ids": list(ids), "now": now, "error": error})]


async def running_among(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """RUNNING_AMONG: those of `ids` that are `running`."""
    if not ids:
        return set()
    return {row.id for row in await conn.execute(RUNNING_AMONG, {"ids": list(ids)})}


async def load_run(conn: AsyncConnection, execution_id: uuid.UUID):
    """LOAD_RUN: the run (locked) with its schedule's fields, its status, started_at, reported_at and
    the schedule's creator; None if unknown."""
    return (await conn.execute(LOAD_RUN, {"id": execution_id})).first()


async def complete(
    conn: AsyncConnection,
    run: Any,
    attempt: int,
    decision: Decision,
    result: dict | None,
    now: datetime,
) -> bool:
    """COMPLETE: the report's outcome for `attempt` of `run` (as LOAD_RUN read it: its status and attempt
    count must still be those); False if the run changed meanwhile."""
    transition(S(run.status), decision.status)
    started_at = run.started_at or now
    entry = {"attempt": attempt, "started_at": started_at.isoformat(), "finished_at": now.isoformat()}
    entry |= {"status": decision.status.value, "via": "report"}
    if decision.error:
        entry["error"] = decision.error
    params = {
        "id": run.id,
        "current": run.status,
        "attempts": run.attempts,
        "status": decision.status.value,
        "finished": now if decision.is_final else None,
        "next_attempt_at": _retry_instant(decision, now),
        "error": decision.error,
        "result": json.dumps(result) if result is not None else None,
        "now": now,
        "entry": json.dumps(entry),
    }
    return (await conn.execute(COMPLETE, params)).rowcount == 1


def _retry_instant(decision: Decision, now: datetime) -> datetime | None:
    return now + timedelta(milliseconds=decision.retry_in_ms) if decision.retry_in_ms is not None else None


async def expired(conn: AsyncConnection, now: datetime, limit: int):
    """EXPIRED: lock up to `limit` `awaiting` runs whose completion timeout passed before `now`."""
    return (await conn.execute(EXPIRED, {"now": now, "limit": limit})).all()


async def record_expired(conn: AsyncConnection, expired: Sequence[tuple[uuid.UUID, Decision]], now: datetime) -> None:
    """RECORD_EXPIRED: each timed-out run's decision (`retrying`, handed over by UNSENT_RETRIES, or `timed_out`)."""
    if not expired:
        return
    for _, decision in expired:
        transition(S.AWAITING, decision.status)
    params = {
        "ids": [execution_id for execution_id, _ in expired],
        "statuses": [d.status.value for _, d in expired],
        "next_attempts": [_retry_instant(d, now) for _, d in expired],
        "finished": [now if d.is_final else None for _, d in expired],
        "errors": [d.error for _, d in expired],
        "now_text": now.isoformat(),
    }
    await conn.execute(RECORD_EXPIRED, params)


async def wake_buffered(conn: AsyncConnection, now: datetime, limit: int) -> list[uuid.UUID]:
    """WAKE_BUFFERED: the runs whose turn came (`pending`, due at `now`, for HAND_OVER)."""
    return [row.id for row in await conn.execute(WAKE_BUFFERED, {"now": now, "limit": limit})]


async def unsent_retries(conn: AsyncConnection, now: datetime, horizon: datetime, limit: int):
    """UNSENT_RETRIES: (id, priority, next_attempt_at) of the retries decided outside a worker that
    are due before `horizon`, now marked handed over."""
    return (await conn.execute(UNSENT_RETRIES, {"now": now, "horizon": horizon, "limit": limit})).all()
