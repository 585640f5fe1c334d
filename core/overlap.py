"""Overlap policies and completion modes: what a due run does while an earlier run of its schedule is
in progress (pure).

A run is *in progress* from the moment its slot is recorded until it ends: waiting to be published
(`pending`, `retrying`), being published (`running`) or, with `completion: report`, published and
awaiting the target's report (`awaiting`); see `core.states.IN_PROGRESS_STATUSES`. Runs are ordered
by slot (then id), so of two runs claimed together only the later one sees the other.

Policies (Temporal's overlap policies, Kubernetes' `concurrencyPolicy`):
- `allow`: run anyway (`max_concurrent` still caps the runs in progress);
- `skip`: record the later run `skipped` with reason `overlap`;
- `buffer_one`: the later run waits (`buffered`) and starts when the earlier one ends; a run due while
  one already waits is skipped (at most one waits);
- `buffer_all`: every later run waits, and they start one after the other in slot order;
- `cancel_other`: the earlier runs are `cancelled` (reason `overlap`), a cancel notice naming each goes
  to `<target_command>.cancel`, and the later run starts.
"""

from __future__ import annotations

from enum import StrEnum


class OverlapPolicy(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"


class Completion(StrEnum):
    """When a run ends: at its publish (`none`), or when the target reports (`report`)."""

    NONE = "none"
    REPORT = "report"


class OverlapVerdict(StrEnum):
    GO = "go"  # publish it now
    SKIP = "skip"  # record it skipped (reason overlap)
    BUFFER = "buffer"  # let it wait for the earlier run to end
    CANCEL_OTHERS = "cancel_others"  # cancel the earlier runs, then publish it


# Subject suffix of the cancel notice sent for a run cancelled by a newer one (cancel_other).
CANCEL_SUFFIX = ".cancel"


def overlap_verdict(policy: OverlapPolicy | str, earlier_in_progress: int, earlier_buffered: int) -> OverlapVerdict:
    """What a due run does, given how many earlier runs of its schedule are in progress and how many
    earlier ones wait (`buffered`)."""
    policy = OverlapPolicy(policy)
    if policy is OverlapPolicy.ALLOW or (earlier_in_progress == 0 and earlier_buffered == 0):
        return OverlapVerdict.GO
    if policy is OverlapPolicy.SKIP:
        return OverlapVerdict.SKIP
    if policy is OverlapPolicy.CANCEL_OTHER:
        return OverlapVerdict.CANCEL_OTHERS
    if policy is OverlapPolicy.BUFFER_ONE and earlier_buffered >= 1:
        return OverlapVerdict.SKIP
    return OverlapVerdict.BUFFER


def takes_overlap_step(overlap_policy: str, completion: str) -> bool:
    """Whether a schedule's runs take the overlap step (its policy is not `allow`, or it counts the runs
    awaiting their report against `max_concurrent`); its runs are recorded `overlap_tracked` then."""
    return overlap_policy != OverlapPolicy.ALLOW or completion == Completion.REPORT


def cancel_subject(target_command: str) -> str:
    """Where the cancel notice of a run of `target_command` goes."""
    return target_command + CANCEL_SUFFIX
