"""Misfire / catch-up planning: which due slots fire now, which are recorded as missed.

All datetimes are aware (results UTC); `grace_seconds` is in seconds. Pure: `now` is a parameter.

Due slots are `next_run_at` (the stored slot, trusted as-is) plus every later rule fire <= now.
A slot is *in grace* when ``now - slot <= grace_seconds``, otherwise *old*. Decisions:

* in-grace slots always fire;
* old slots follow `catchup`: ``all`` fires them too, ``latest`` fires only the most recent old
  slot and only when no slot is in grace (an outage therefore produces exactly one run), ``none``
  fires none of them;
* safety cap: at most ``max(1, max_catchup)`` slots fire in one plan, the most recent ones (for
  ``all`` this is "the most recent max_catchup"; it also bounds a huge grace window);
* `max_runs`: at most ``max_runs - runs_so_far`` of those fire, the EARLIEST ones (the N-th run
  is the N-th slot); the plan is then `exhausted` and `next_run_at` is None;
* every due slot that does not fire is missed; the most recent `max_recorded_missed` are listed,
  the rest only counted in `missed_unrecorded`. So len(fire) + len(missed) + missed_unrecorded is
  the number of due slots.

Bounded work: only the last ``max(1, max_catchup) + max_recorded_missed`` due slots can fire or be
listed, so only those are materialized. Interval rules are counted exactly by arithmetic. For
cron, when the backlog exceeds max(2000, twice that many) slots, the planner jumps to a window just before
`now` and ESTIMATES the number of skipped slots from the observed fire rate (an approximate
`missed_unrecorded`; exact whenever no jump happens).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.rules import Rule, ScheduleType, next_fire
from core.timezones import require_aware


class Catchup(StrEnum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


@dataclass(frozen=True)
class MisfirePolicy:
    grace_seconds: int  # a slot at most this late (seconds) still fires
    catchup: Catchup
    max_catchup: int = 100
    max_recorded_missed: int = 1000
    # A slot seen at most this late is on time whatever the grace: the ticker's own wake-up latency
    # is not a misfire (otherwise grace 0 with catchup `none` would never fire at all).
    on_time_seconds: float = 0.0


@dataclass(frozen=True)
class SlotPlan:
    fire: tuple[datetime, ...]  # slots to fire now, ascending
    missed: tuple[datetime, ...]  # slots to record as missed (the most recent ones), ascending
    missed_unrecorded: int  # further missed slots, only counted
    next_run_at: datetime | None  # first slot strictly after now (None if no more)
    exhausted: bool  # max_runs reached or no future slot: the schedule completes


_MAX_WINDOW_ATTEMPTS = 30
_EXACT_BUDGET = 2000  # due slots always counted exactly up to this many


def plan_due(
    rule: Rule,
    next_run_at: datetime,
    now: datetime,
    policy: MisfirePolicy,
    runs_so_far: int = 0,
    max_runs: int | None = None,
) -> SlotPlan:
    """Plan the slots due at `now`, starting with the stored `next_run_at` (see module doc)."""
    next_run_at = require_aware(next_run_at, "next_run_at")
    now = require_aware(now, "now")
    if (
        policy.grace_seconds < 0
        or policy.max_catchup < 0
        or policy.max_recorded_missed < 0
        or policy.on_time_seconds < 0
    ):
        raise ValueError("misfire policy values must not be negative")
    catchup = Catchup(policy.catchup)
    already_capped = max_runs is not None and runs_so_far >= max_runs
    if next_run_at > now:
        return SlotPlan((), (), 0, next_run_at, exhausted=already_capped)

    fire_cap = max(1, policy.max_catchup)
    keep = fire_cap + policy.max_recorded_missed
    tail, total = _due_tail(rule, next_run_at, now, keep)

    grace = timedelta(seconds=max(policy.grace_seconds, policy.on_time_seconds))
    in_grace = [s for s in tail if now - s <= grace]
    old = [s for s in tail if now - s > grace]
    if catchup is Catchup.ALL:
        chosen = old + in_grace
    elif catchup is Catchup.LATEST:
        chosen = in_grace if in_grace else old[-1:]
    else:
        chosen = in_grace
    chosen = chosen[-fire_cap:]
    if max_runs is not None:
        chosen = chosen[: max(0, max_runs - runs_so_far)]

    fired = set(chosen)
    missed_listed = [s for s in tail if s not in fired]
    recorded = missed_listed[len(missed_listed) - policy.max_recorded_missed :] if policy.max_recorded_missed else []
    unrecorded = total - len(chosen) - len(recorded)

    capped = max_runs is not None and runs_so_far + len(chosen) >= max_runs
    following = None if capped else next_fire(rule, now)
    return SlotPlan(
        fire=tuple(chosen),
        missed=tuple(recorded),
        missed_unrecorded=unrecorded,
        next_run_at=following,
        exhausted=capped or following is None,
    )


def plan_ahead(rule: Rule, next_run_at: datetime, runs_so_far: int = 0, max_runs: int | None = None) -> SlotPlan:
    """Plan the stored slot `next_run_at` when it is not due yet but is handed over early.

    The ticker gives runs to the workers DISPATCH_LEAD_MS before their instant (the publish still
    waits for the instant). Such a slot is on time by definition: it fires, and the schedule moves
    on to the rule's next fire after it. Nothing is missed. Datetimes are aware, results UTC.
    """
    slot = require_aware(next_run_at, "next_run_at")
    if max_runs is not None and runs_so_far >= max_runs:
        return SlotPlan((), (), 0, None, exhausted=True)
    capped = max_runs is not None and runs_so_far + 1 >= max_runs
    following = None if capped else next_fire(rule, slot)
    return SlotPlan((slot,), (), 0, following, exhausted=capped or following is None)


def _due_tail(rule: Rule, first: datetime, now: datetime, keep: int) -> tuple[list[datetime], int]:
    """(the last `keep` due slots ascending, total number of due slots); see module doc."""
    if ScheduleType(rule.schedule_type) is ScheduleType.INTERVAL:
        return _interval_tail(rule, first, now, keep)
    # Enumerate exactly while it is cheap (~25 µs per cron slot); jump only for real backlogs.
    budget = max(2 * keep + 1, _EXACT_BUDGET)
    recent: deque[datetime] = deque([first], maxlen=keep)
    count = 1
    slot = first
    while True:
        nxt = next_fire(rule, slot)
        if nxt is None or nxt > now:
            return list(recent), count
        slot = nxt
        recent.append(slot)
        count += 1
        if count > budget:
            break
    return _jump_tail(rule, first, slot, count, list(recent), now, keep)


def _interval_tail(rule: Rule, first: datetime, now: datetime, keep: int) -> tuple[list[datetime], int]:
    """Exact arithmetic for fixed-rate rules: fires are start + k*step, k >= 0, up to end_at."""
    start = require_aware(rule.start_at, "start_at")  # type: ignore[arg-type]
    step = timedelta(seconds=rule.interval_seconds)  # type: ignore[arg-type]
    end = now if rule.end_at is None else min(now, require_aware(rule.end_at, "end_at"))
    k_lo = 0 if first < start else (first - start) // step + 1
    k_hi = (end - start) // step if end >= start else -1
    after_first = max(0, k_hi - k_lo + 1)
    ks = range(max(k_lo, k_hi - keep + 1), k_hi + 1)
    tail = [start + k * step for k in ks]
    if after_first < keep:
        tail.insert(0, first)
    return tail[-keep:] if keep else [], 1 + after_first


def _window(rule: Rule, start: datetime, now: datetime, cap: int) -> list[datetime] | None:
    """Fires in (start, now], or None when there are more than `cap` of them."""
    out: list[datetime] = []
    slot = start
    while True:
        nxt = next_fire(rule, slot)
        if nxt is None or nxt > now:
            return out
        out.append(nxt)
        if len(out) > cap:
            return None
        slot = nxt


def _jump_tail(
    rule: Rule,
    first: datetime,
    last_seen: datetime,
    seen: int,
    recent: list[datetime],
    now: datetime,
    keep: int,
) -> tuple[list[datetime], int]:
    """Huge cron backlog: find a window (P, now] holding about 2*keep slots, estimate the rest."""
    seen_span = max((last_seen - first).total_seconds(), 1.0)
    rate = (seen - 1) / seen_span  # slots per second: seen-1 intervals span seen_span
    width = timedelta(seconds=2 * keep / rate)
    too_few: timedelta | None = None  # widest width known to hold < keep slots
    too_many: timedelta | None = None  # narrowest width known to hold > 4*keep slots
    window: list[datetime] = []
    lower = last_seen
    for _ in range(_MAX_WINDOW_ATTEMPTS):
        lower = max(now - width, last_seen)
        found = _window(rule, lower, now, 4 * keep)
        if found is None:
            too_many = width
        else:
            window = found
            if len(found) >= keep or lower == last_seen:
                break
            too_few = width
        # Bisect between the known bounds (bursty crons), else grow/shrink geometrically.
        if too_many is not None and too_few is not None:
            width = (too_few + too_many) / 2
        elif too_many is not None:
            width = width / 2
        else:
            width = width * 2
    else:
        # Gave up refining (pathological burstiness): keep the last window that fit.
        lower = max(now - too_few, last_seen) if too_few is not None else last_seen
        if too_few is None:
            window = []
    if lower <= last_seen:
        merged = recent + window
        return merged[-keep:], seen + len(window)
    gap_seconds = (lower - last_seen).total_seconds()
    sampled = seen - 1 + len(window)
    sampled_span = seen_span + (now - lower).total_seconds()
    skipped = round(gap_seconds * sampled / sampled_span)
    return window[-keep:], seen + skipped + len(window)
