"""The retry policy of core.outcomes: table cases, and random event sequences against the table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.outcomes import Decision, Delivered, RetryPolicy
from core.states import ExecutionStatus as S
from core.states import Reason, can_transition

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
POLICY = RetryPolicy(backoff_cap_seconds=60, on_time_seconds=10)


@dataclass(frozen=True)
class Run:
    attempt: int = 1
    max_retries: int = 2
    retry_delay: int = 4
    scheduled_for: datetime = T0
    misfire_grace_seconds: int = 30
    schedule_status: str = "active"
    trigger_type: str = "scheduled"
    may_have_published: bool = False
    due: datetime | None = None
    completion: str = "none"


@pytest.mark.parametrize(
    ("run", "allowed", "expected"),
    [
        (Run(), True, None),
        (Run(schedule_status="deleted"), True, Decision.cancelled(Reason.DELETED)),
        (Run(schedule_status="paused"), True, Decision.missed(Reason.PAUSED)),
        (Run(schedule_status="paused", trigger_type="manual"), True, None),
        (Run(schedule_status="paused", may_have_published=True), True, None),
        (Run(), False, Decision.failed("cmd.x is not allowed by COMMAND_WHITELIST", reason=Reason.FORBIDDEN)),
    ],
    ids=["publish", "deleted", "paused", "paused-manual", "paused-after-possible-publish", "forbidden"],
)
def test_before_publish(run, allowed, expected):
    assert POLICY.before_publish(run, allowed, "cmd.x") == expected


def test_a_target_failure_retries_with_doubling_backoff_then_fails():
    delays = [POLICY.on_failure(Run(attempt=n, max_retries=3), "boom", 0.0).retry_in_ms for n in (1, 2, 3)]

    final = POLICY.on_failure(Run(attempt=4, max_retries=3), "boom", 0.0)

    assert delays == [4000, 8000, 16000]
    assert final.status is S.FAILED and final.error == "boom"


def test_an_outage_gives_the_attempt_back_within_the_grace_and_spends_it_after():
    within = POLICY.on_outage(Run(), T0 + timedelta(seconds=20), "nats down", 0.0, nats=True)
    past = POLICY.on_outage(Run(), T0 + timedelta(seconds=31), "nats down", 0.0, nats=True)

    assert within.status is S.RETRYING and not within.counts_as_attempt and within.waits_for_nats
    assert within.retry_in_ms == 4000  # the first step, under the outage cap of 5 s
    assert past.counts_as_attempt and not past.waits_for_nats and past.retry_in_ms == 4000


def test_busy_slots_defer_within_the_grace_then_skip():
    deferred = POLICY.on_busy(Run(), T0 + timedelta(seconds=1))
    skipped = POLICY.on_busy(Run(misfire_grace_seconds=0), T0 + timedelta(seconds=11))

    assert deferred == Decision.deferred(Reason.LOCK_CONFLICT, 1000, "all concurrency slots busy: deferred")
    assert skipped == Decision.skipped(Reason.LOCK_CONFLICT)


def test_a_run_retried_by_hand_counts_its_grace_from_when_it_was_retried():
    retried = Run(scheduled_for=T0 - timedelta(days=3), due=T0, misfire_grace_seconds=0)

    busy = POLICY.on_busy(retried, T0 + timedelta(seconds=1))
    outage = POLICY.on_outage(retried, T0 + timedelta(seconds=1), "NATS down", 0.0, nats=True)

    assert busy.status is S.RETRYING and not busy.counts_as_attempt
    assert outage.status is S.RETRYING and not outage.counts_as_attempt
    assert POLICY.on_busy(Run(scheduled_for=T0 - timedelta(days=3), misfire_grace_seconds=0), T0).is_final


def test_a_lost_run_may_have_published():
    again = POLICY.on_lost(Run(attempt=1), "lost")
    out = POLICY.on_lost(Run(attempt=3, max_retries=2), "lost")

    assert again.status is S.RETRYING and again.retry_in_ms == 0 and again.may_have_published
    assert out.status is S.FAILED and out.may_have_published


def test_a_connection_lost_after_writing_gives_back_and_may_have_published():
    delivered = Delivered(False, "core", "flush failed: connection lost", unreachable=True, may_have_published=True)

    decision = POLICY.after_delivery(Run(), T0, delivered, 0)

    assert decision.status is S.RETRYING and not decision.counts_as_attempt and decision.may_have_published


def test_an_unconfirmed_publish_is_a_failure_that_may_have_published():
    decision = POLICY.after_delivery(Run(), T0, Delivered(False, "core", "flush failed", may_have_published=True), 0)

    assert decision.status is S.RETRYING and decision.counts_as_attempt and decision.may_have_published


def test_a_publish_of_a_reporting_schedule_awaits_its_report_unless_it_was_a_request():
    reporting = Run(completion="report")

    assert POLICY.after_delivery(reporting, T0, Delivered(True, "jetstream"), 0).status is S.AWAITING
    assert POLICY.after_delivery(reporting, T0, Delivered(True, "request"), 0).status is S.SUCCEEDED
    assert POLICY.after_delivery(Run(), T0, Delivered(True, "jetstream"), 0).status is S.SUCCEEDED


def test_a_report_succeeds_or_fails_like_a_target_failure():
    assert POLICY.on_report(Run(completion="report"), True, None, 0).status is S.SUCCEEDED
    retry = POLICY.on_report(Run(attempt=1, max_retries=1, completion="report"), False, "disk full", 0)
    assert retry.status is S.RETRYING and retry.error == "disk full" and retry.retry_in_ms > 0
    last = POLICY.on_report(Run(attempt=2, max_retries=1, completion="report"), False, None, 0)
    assert last.status is S.FAILED and last.error


def test_a_timeout_retries_while_retries_are_left_then_ends_timed_out():
    retry = POLICY.on_timeout(Run(attempt=1, max_retries=1), 30, 0)
    assert retry.status is S.RETRYING and "30 s" in retry.error
    last = POLICY.on_timeout(Run(attempt=2, max_retries=1), 30, 0)
    assert last.status is S.TIMED_OUT and last.is_final


EVENTS = st.sampled_from(["ok", "error", "unconfirmed", "outage", "busy", "lost"])


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.tuples(EVENTS, st.integers(0, 120), st.floats(0, 1)), min_size=1, max_size=40),
    max_retries=st.integers(0, 5),
    retry_delay=st.integers(0, 120),
    grace=st.integers(0, 60),
    completion=st.sampled_from(["none", "report"]),
)
def test_random_event_sequences_follow_the_table_and_spend_at_most_the_retries(
    events, max_retries, retry_delay, grace, completion
):
    run = Run(attempt=0, max_retries=max_retries, retry_delay=retry_delay, misfire_grace_seconds=grace)
    run = replace(run, completion=completion)
    status, spent = S.PENDING, 0
    for event, seconds_late, jitter in events:
        if status is S.AWAITING:  # the report (ok / error) or the timeout (any other event) ends the attempt
            decision = _report(run, event, jitter)
            assert can_transition(S.AWAITING, decision.status), (event, decision)
            assert decision.status is not S.TIMED_OUT or spent == max_retries + 1
            status = decision.status
            continue
        if status not in (S.PENDING, S.RETRYING):
            break  # final: no event reaches it any more
        assert can_transition(status, S.RUNNING)  # the claim
        run = replace(run, attempt=spent + 1)
        decision = _decide(run, event, T0 + timedelta(seconds=seconds_late), jitter)
        assert can_transition(S.RUNNING, decision.status), (event, decision)
        if decision.status is S.RETRYING:
            assert 0 <= decision.retry_in_ms <= max(POLICY.backoff_cap_seconds, 5) * 1000
        spent += 1 if decision.counts_as_attempt else 0
        assert spent <= max_retries + 1
        if decision.status is S.FAILED:
            assert spent == max_retries + 1
        status = decision.status


def _report(run: Run, event: str, jitter: float) -> Decision:
    if event in ("ok", "error"):
        return POLICY.on_report(run, event == "ok", "reported failure", jitter)
    return POLICY.on_timeout(run, 60, jitter)


def _decide(run: Run, event: str, now: datetime, jitter: float) -> Decision:
    if event == "busy":
        return POLICY.on_busy(run, now)
    if event == "lost":
        return POLICY.on_lost(run, "lost")
    if event == "outage":
        return POLICY.on_outage(run, now, "down", jitter, nats=True)
    delivered = {
        "ok": Delivered(True, "core"),
        "error": Delivered(False, "request", "error reply"),
        "unconfirmed": Delivered(False, "core", "flush failed", may_have_published=True),
    }[event]
    return POLICY.after_delivery(run, now, delivered, jitter)
