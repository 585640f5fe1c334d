"""The transition table of core.states, pair by pair, and the vocabulary's sets."""

import itertools

import pytest

from core.states import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    INITIAL_STATUSES,
    NOT_FIRED_STATUSES,
    ExecutionEvent,
    InvalidTransition,
    Reason,
    event_of,
    transition,
    transition_pairs,
)
from core.states import ExecutionStatus as S

# Written out by hand from the lifecycle the docstring draws: a change to the table must change this.
ALLOWED = {
    (S.PENDING, S.RUNNING),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.RETRYING),
    (S.RUNNING, S.SKIPPED),
    (S.RUNNING, S.MISSED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.AWAITING),
    (S.RUNNING, S.BUFFERED),
    (S.AWAITING, S.SUCCEEDED),
    (S.AWAITING, S.FAILED),
    (S.AWAITING, S.RETRYING),
    (S.AWAITING, S.TIMED_OUT),
    (S.AWAITING, S.CANCELLED),
    (S.BUFFERED, S.PENDING),
    (S.BUFFERED, S.CANCELLED),
    (S.PENDING, S.CANCELLED),
    (S.RETRYING, S.RUNNING),
    (S.RETRYING, S.CANCELLED),
    (S.RETRYING, S.SUCCEEDED),
    (S.RETRYING, S.FAILED),
    (S.FAILED, S.PENDING),
    (S.TIMED_OUT, S.PENDING),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair(current, target):
    if (current, target) in ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition) as info:
            transition(current, target)
        assert isinstance(info.value, ValueError)
        assert str(current) in str(info.value) and str(target) in str(info.value)


def test_pairs_listing_matches_the_table():
    assert transition_pairs() == sorted((str(a), str(b)) for a, b in ALLOWED)


def test_sets():
    assert {S.PENDING, S.RUNNING, S.RETRYING, S.AWAITING, S.BUFFERED} == ACTIVE_STATUSES
    assert {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.MISSED, S.SKIPPED, S.CANCELLED} == FINAL_STATUSES
    assert ACTIVE_STATUSES.isdisjoint(FINAL_STATUSES) and set(S) == ACTIVE_STATUSES | FINAL_STATUSES
    assert NOT_FIRED_STATUSES < FINAL_STATUSES and S.SUCCEEDED not in NOT_FIRED_STATUSES
    assert {S.PENDING} | NOT_FIRED_STATUSES == INITIAL_STATUSES


def test_strings_accepted_and_values():
    assert transition("pending", "running") is S.RUNNING  # type: ignore[arg-type]
    assert [m.value for m in Reason] == [
        "missed",
        "paused",
        "lock_conflict",
        "forbidden",
        "deleted",
        "overlap",
        "backfill_cancelled",
        "calendar",
    ]


def test_every_status_a_run_can_reach_has_an_event():
    reachable = {target for _, target in ALLOWED}
    assert {event_of(status) for status in reachable} <= set(ExecutionEvent)
    assert event_of(S.RETRYING) is ExecutionEvent.FAILED and event_of(S.CANCELLED) is ExecutionEvent.SKIPPED
