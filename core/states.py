"""Execution status state machine (pure; persistence lives in services/).

    pending  -> running | skipped | cancelled | failed | missed
    running  -> succeeded | failed | retrying | skipped
    retrying -> running | failed | cancelled
    succeeded, failed, missed, skipped, cancelled: terminal (no way out)

A transition to the same status is not a transition and is rejected too, so a duplicate event
(e.g. a redelivered "finished" message) is detected by the caller.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSED = "missed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class MissReason(StrEnum):
    """Why an execution did not run (recorded with MISSED / SKIPPED / CANCELLED)."""

    MISSED = "missed"  # slot older than the grace period, not caught up
    SKIPPED_OVERLAP = "skipped_overlap"  # previous run still active and overlap is forbidden
    PAUSED = "paused"
    LOCK_CONFLICT = "lock_conflict"
    FORBIDDEN = "forbidden"
    DELETED = "deleted"


ACTIVE_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.RETRYING}
)
TERMINAL_STATUSES: frozenset[ExecutionStatus] = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.MISSED,
        ExecutionStatus.SKIPPED,
        ExecutionStatus.CANCELLED,
    }
)

_S = ExecutionStatus
ALLOWED_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.SKIPPED, _S.CANCELLED, _S.FAILED, _S.MISSED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.RETRYING, _S.SKIPPED}),
    _S.RETRYING: frozenset({_S.RUNNING, _S.FAILED, _S.CANCELLED}),
    **{s: frozenset() for s in TERMINAL_STATUSES},
}


class InvalidTransition(ValueError):
    """The requested status change is not allowed from the current status."""

    def __init__(self, current: ExecutionStatus, target: ExecutionStatus) -> None:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS.get(current, frozenset()))) or "nothing (terminal)"
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
