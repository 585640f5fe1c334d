import itertools

import pytest

from core.states import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    InvalidTransition,
    MissReason,
    transition,
)
from core.states import (
    ExecutionStatus as S,
)

ALLOWED = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.SKIPPED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.MISSED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.RETRYING),
    (S.RUNNING, S.SKIPPED),
    (S.RETRYING, S.RUNNING),
    (S.RETRYING, S.FAILED),
    (S.RETRYING, S.CANCELLED),
}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)))
def test_every_pair(current, target):
    if (current, target) in ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition) as info:
            transition(current, target)
        assert isinstance(info.value, ValueError)
        assert str(current) in str(info.value) and str(target) in str(info.value)


def test_sets():
    assert {S.PENDING, S.RUNNING, S.RETRYING} == ACTIVE_STATUSES
    assert {S.SUCCEEDED, S.FAILED, S.MISSED, S.SKIPPED, S.CANCELLED} == TERMINAL_STATUSES
    assert ACTIVE_STATUSES.isdisjoint(TERMINAL_STATUSES) and set(S) == ACTIVE_STATUSES | TERMINAL_STATUSES


def test_strings_accepted_and_values():
    assert transition("pending", "running") is S.RUNNING  # type: ignore[arg-type]
    assert [m.value for m in MissReason] == [
        "missed",
        "skipped_overlap",
        "paused",
        "lock_conflict",
        "forbidden",
        "deleted",
    ]
