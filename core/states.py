"""The vocabulary of a run's life and the transitions production makes (pure).

Owns: schedule and execution statuses, the reasons a slot did not fire (or ended as it did), trigger
types, and the execution transition table. Every module names a status through these enums; the
stores refuse a transition the table does not list (`InvalidTransition`) and the database refuses it
too (the `executions_transition_allowed` trigger, whose table a test compares with this one).

An execution is born `pending` (a slot or a trigger to publish) or directly in a final status (a slot
recorded as not firing: `missed` while paused or past its grace, `cancelled` when its schedule is
deleted). Its life::

    pending  -> running                       (a worker claims it)
    running  -> succeeded | failed | retrying (the publish's outcome, or the reaper after a lost worker)
             |  awaiting                      (published; its schedule has `completion: report`)
             |  buffered                      (an earlier run is in progress: overlap buffer_one/all)
             |  skipped | missed | cancelled  (not published: concurrency, overlap, pause, deletion)
    awaiting -> succeeded | failed | retrying (the target's completion report)
             |  retrying | timed_out          (no report within completion_timeout_seconds)
    buffered -> pending                       (the run before it ended: its turn)
    retrying -> running                       (the next attempt is claimed)
             |  succeeded | failed            (the report of an attempt a lost worker may have published)
    failed, timed_out -> pending              (retried by hand: one more attempt, same id and slot)
    pending, buffered, retrying, awaiting -> cancelled   (overlap cancel_other: a newer slot replaces it)
    succeeded, failed, timed_out, missed, skipped, cancelled: final (failed's and timed_out's only way
    out is a retry by hand)

A transition to the same status is not a transition: a duplicate event is detected by the caller.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    AWAITING = "awaiting"  # published; awaits the target's completion report (completion: report)
    BUFFERED = "buffered"  # waits for the run before it to end (overlap_policy buffer_one / buffer_all)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"  # no completion report within completion_timeout_seconds, no retry left
    MISSED = "missed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ReportStatus(StrEnum):
    """What a target's completion report says of the attempt it reports on."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    DISABLED = "disabled"
    DELETED = "deleted"  # soft-deleted: hidden from every read, kept for its executions and audit trail


class TriggerType(StrEnum):
    SCHEDULED = "scheduled"  # a slot of the schedule's rule: at most one execution per slot
    MANUAL = "manual"  # a trigger through the API: never deduplicated
    BACKFILL = "backfill"  # a past slot recorded by a backfill: one execution per slot, like scheduled


class BackfillStatus(StrEnum):
    """Where a backfill stands (derived from its runs and its cancellation)."""

    RUNNING = "running"  # some of its runs are still in progress
    COMPLETED = "completed"  # none of its runs is in progress
    CANCELLED = "cancelled"  # cancelled: its runs not handed over then were cancelled


class Reason(StrEnum):
    """Why an execution ended without publishing, or was held back (recorded with its status)."""

    MISSED = "missed"  # the slot was older than the misfire grace and the catch-up policy dropped it
    PAUSED = "paused"  # the schedule was paused when the slot came
    LOCK_CONFLICT = "lock_conflict"  # every concurrency slot (max_concurrent) was busy
    FORBIDDEN = "forbidden"  # the target is not allowed by COMMAND_WHITELIST at fire time
    DELETED = "deleted"  # the schedule was deleted before the run was published
    OVERLAP = "overlap"  # an earlier run of the schedule was in progress (overlap_policy skip / cancel_other)
    BACKFILL_CANCELLED = "backfill_cancelled"  # its backfill was cancelled before the run was handed over
    CALENDAR = "calendar"  # a calendar the schedule lists excluded the slot (stored as `calendar:<name>`)


class ScheduleEvent(StrEnum):
    """The kinds of `evt.scheduler.schedule.<kind>` events."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    PAUSED = "paused"
    RESUMED = "resumed"
    DISABLED = "disabled"


class ExecutionEvent(StrEnum):
    """The kinds of `evt.scheduler.execution.<kind>` events."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # also sent for an attempt that will be retried (its status says `retrying`)
    SKIPPED = "skipped"  # also sent for a cancelled run
    MISSED = "missed"
    RETRIED = "retried"  # a failed run was retried by hand: `pending` again
    PUBLISHED = "published"  # published, awaiting the target's completion report
    BUFFERED = "buffered"  # waiting for the run before it (overlap buffer_one / buffer_all)
    TIMED_OUT = "timed_out"  # no completion report in time and no retry left


ACTIVE_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {
        ExecutionStatus.PENDING,
        ExecutionStatus.RUNNING,
        ExecutionStatus.RETRYING,
        ExecutionStatus.AWAITING,
        ExecutionStatus.BUFFERED,
    }
)
FINAL_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.MISSED,
        ExecutionStatus.SKIPPED,
        ExecutionStatus.CANCELLED,
    }
)
# Final statuses of a run whose target failed it (dead-lettered; counted by pause_after_failures).
FAILED_STATUSES: frozenset[ExecutionStatus] = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT})
TERMINAL_STATUSES = FINAL_STATUSES
# Final statuses of a run that was never published (counted as misfires).
NOT_FIRED_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {ExecutionStatus.SKIPPED, ExecutionStatus.MISSED, ExecutionStatus.CANCELLED}
)
# Statuses of a run a worker holds or will hold again, or that awaits its report (shown as "running").
IN_FLIGHT_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {ExecutionStatus.RUNNING, ExecutionStatus.RETRYING, ExecutionStatus.AWAITING}
)
# Statuses of a run that is in progress for the overlap policy: started and not ended, or waiting to start.
IN_PROGRESS_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.RETRYING, ExecutionStatus.AWAITING}
)
# The statuses an execution row may be created in.
INITIAL_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.MISSED, ExecutionStatus.SKIPPED, ExecutionStatus.CANCELLED}
)

_S = ExecutionStatus
ALLOWED_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.CANCELLED}),
    _S.RUNNING: frozenset(
        {_S.SUCCEEDED, _S.FAILED, _S.RETRYING, _S.AWAITING, _S.BUFFERED, _S.SKIPPED, _S.MISSED, _S.CANCELLED}
    ),
    _S.AWAITING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.RETRYING, _S.TIMED_OUT, _S.CANCELLED}),
    _S.BUFFERED: frozenset({_S.PENDING, _S.CANCELLED}),
    _S.RETRYING: frozenset({_S.RUNNING, _S.CANCELLED, _S.SUCCEEDED, _S.FAILED}),
    **{s: frozenset() for s in FINAL_STATUSES},
    _S.FAILED: frozenset({_S.PENDING}),
    _S.TIMED_OUT: frozenset({_S.PENDING}),
}
# The statuses a run may be retried by hand from (`POST /api/v1/executions/{id}/retry`).
RETRYABLE_STATUSES: frozenset[ExecutionStatus] = FAILED_STATUSES
# Schedules that the ticker plans and that the API may pause, resume or delete.
LIVE_SCHEDULE_STATUSES: frozenset[ScheduleStatus] = frozenset({ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED})


class InvalidTransition(ValueError):
    """The requested status change is not allowed from the current status."""

    def __init__(self, current: ExecutionStatus, target: ExecutionStatus) -> None:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS.get(current, frozenset()))) or "nothing (final)"
        super().__init__(f"cannot change execution status from {current} to {target}; allowed: {allowed}")
        self.current = current
        self.target = target


def can_transition(current: ExecutionStatus, target: ExecutionStatus) -> bool:
    return ExecutionStatus(target) in ALLOWED_TRANSITIONS[ExecutionStatus(current)]


def transition(current: ExecutionStatus, target: ExecutionStatus) -> ExecutionStatus:
    """Return `target` (as ExecutionStatus) if current -> target is allowed; else InvalidTransition."""
    current = ExecutionStatus(current)
    target = ExecutionStatus(target)
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target


def transition_pairs() -> list[tuple[str, str]]:
    """Every allowed (from, to) pair, sorted: the form the database's trigger is compared with."""
    return sorted((str(a), str(b)) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets)


_EVENT_OF_STATUS = {
    ExecutionStatus.PENDING: ExecutionEvent.RETRIED,
    ExecutionStatus.RUNNING: ExecutionEvent.STARTED,
    ExecutionStatus.SUCCEEDED: ExecutionEvent.SUCCEEDED,
    ExecutionStatus.FAILED: ExecutionEvent.FAILED,
    ExecutionStatus.TIMED_OUT: ExecutionEvent.TIMED_OUT,
    ExecutionStatus.AWAITING: ExecutionEvent.PUBLISHED,
    ExecutionStatus.BUFFERED: ExecutionEvent.BUFFERED,
    ExecutionStatus.RETRYING: ExecutionEvent.FAILED,
    ExecutionStatus.SKIPPED: ExecutionEvent.SKIPPED,
    ExecutionStatus.CANCELLED: ExecutionEvent.SKIPPED,
    ExecutionStatus.MISSED: ExecutionEvent.MISSED,
}


def event_of(status: ExecutionStatus) -> ExecutionEvent:
    """The event kind announcing that an attempt ended in (or a run entered) `status`."""
    return _EVENT_OF_STATUS[ExecutionStatus(status)]
