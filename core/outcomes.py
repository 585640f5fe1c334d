"""What happens to a run: the retry policy and the outcomes it builds (pure; `now` is an argument).

Owns every decision about a claimed run's fate: publish it or not (paused, deleted, forbidden), and
after a delivery, a lost worker or a busy concurrency slot, whether it succeeded, retries at a given
delay, is deferred, is given back (our own outage: the attempt does not count), failed, or did not
fire (missed, skipped, cancelled, with a `Reason`). The services record what it decides; the stores
check each decision against the transition table of `core.states`.

Outcomes are built only by the named constructors of `Decision` (`succeeded`, `awaiting`, `retry_at`,
`deferred`, `gave_back`, `failed`, `timed_out`, `buffered`, `missed`, `skipped`, `cancelled`), so a
reader can list every fate a run can have. Delays are in milliseconds; instants are UTC `datetime`s.

Rules:
- A publish that succeeded ends the run (`succeeded`), unless its schedule has `completion: report`
  and the publish was not a request: then the run is `awaiting` until the target reports (a request's
  reply is its report). A report of success ends it `succeeded`; a report of failure is a failure of
  the target (below), and so is no report within completion_timeout_seconds, except that it ends
  `timed_out` when no retry is left.
- A run due while an earlier run of its schedule is in progress follows the overlap policy
  (core.overlap): `skipped` or `buffered` with reason `overlap`, or it goes.
- A failure of the target (an error reply, a refused publish, no PubAck in time) spends an attempt:
  the run retries after `retry_delay * 2**(retry-1)` seconds (capped at RETRY_BACKOFF_CAP_SECONDS,
  jittered downwards) until `max_retries` retries are spent, then fails.
- A failure of one of OUR dependencies (Redis for the concurrency lock, NATS unreachable) gives the
  attempt back and tries again within OUTAGE_RETRY_CAP_SECONDS (NATS: as soon as the worker's
  connection is back), while the slot is within its misfire grace; past the grace it is a failure
  like any other, which bounds the work of a long outage.
- A run whose concurrency slots are all busy is deferred by LOCK_CONFLICT_DEFER_MS (attempt given
  back) while within its grace, else skipped with reason `lock_conflict`.
- A run whose worker was lost mid-run (reaped) may have published: it retries at once, or fails when
  out of attempts, and is marked `may_have_published`. With `completion: report` the target's report of
  that lost attempt, should it have been delivered, still ends the run (services.completion).
- A scheduled slot of a paused schedule is `missed` (reason `paused`), a run of a deleted schedule
  `cancelled` (reason `deleted`), unless an earlier attempt may have published: then it is finished,
  since recording it as not fired could contradict a publish that happened. A manual trigger goes out
  while its schedule is paused. A target no longer allowed by the whitelist fails (reason `forbidden`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.backoff import retry_delay_seconds
from core.overlap import Completion, OverlapVerdict
from core.settings import Settings
from core.states import ExecutionStatus, Reason, ScheduleStatus, TriggerType
from core.tuning import LOCK_CONFLICT_DEFER_MS, OUTAGE_RETRY_CAP_SECONDS


class RunFacts(Protocol):
    """What the policy reads about a claimed run (services.firing.Claimed provides it)."""

    attempt: int  # this attempt's number, 1 for the first
    max_retries: int
    retry_delay: int  # seconds, the first backoff step
    scheduled_for: datetime
    misfire_grace_seconds: int
    schedule_status: str
    trigger_type: str
    may_have_published: bool  # an earlier attempt of this run may have reached NATS
    due: datetime | None  # when it may be published: its slot plus jitter, or when it was retried by hand
    completion: str  # core.overlap.Completion: whether the run ends at its publish or at a report


@dataclass(frozen=True)
class Decision:
    """The fate of one attempt. Build it with the named constructors below."""

    status: ExecutionStatus
    reason: Reason | None = None
    error: str | None = None
    retry_in_ms: int | None = None  # for `retrying`: when the next attempt may be claimed
    counts_as_attempt: bool = True  # False: the attempt is given back (our outage, a busy slot)
    waits_for_nats: bool = False  # retry when the worker's NATS connection is back, not on a timer
    may_have_published: bool = False  # this attempt may have reached NATS although it did not succeed
    via: str | None = None  # how a successful publish went: jetstream | core | request

    @classmethod
    def succeeded(cls, via: str) -> Decision:
        return cls(ExecutionStatus.SUCCEEDED, via=via)

    @classmethod
    def awaiting(cls, via: str) -> Decision:
        """Published; the run ends when the target reports (or its completion timeout passes)."""
        return cls(ExecutionStatus.AWAITING, via=via, may_have_published=True)

    @classmethod
    def buffered(cls) -> Decision:
        """An earlier run is in progress: this one waits its turn (attempt given back)."""
        return cls(ExecutionStatus.BUFFERED, reason=Reason.OVERLAP, counts_as_attempt=False)

    @classmethod
    def timed_out(cls, error: str) -> Decision:
        """No completion report in time and no retry left."""
        return cls(ExecutionStatus.TIMED_OUT, error=error, may_have_published=True)

    @classmethod
    def retry_at(cls, delay_ms: int, error: str, may_have_published: bool = False) -> Decision:
        """The target failed; the next attempt (which counts) after `delay_ms`."""
        return cls(ExecutionStatus.RETRYING, error=error, retry_in_ms=delay_ms, may_have_published=may_have_published)

    @classmethod
    def deferred(cls, reason: Reason, delay_ms: int, error: str) -> Decision:
        """Not attempted (e.g. no concurrency slot): tried again after `delay_ms`, attempt given back."""
        return cls(ExecutionStatus.RETRYING, reason=reason, error=error, retry_in_ms=delay_ms, counts_as_attempt=False)

    @classmethod
    def gave_back(
        cls, delay_ms: int, error: str, waits_for_nats: bool = False, may_have_published: bool = False
    ) -> Decision:
        """Our own dependency was down: tried again soon, attempt given back."""
        return cls(
            ExecutionStatus.RETRYING,
            error=error,
            retry_in_ms=delay_ms,
            counts_as_attempt=False,
            waits_for_nats=waits_for_nats,
            may_have_published=may_have_published,
        )

    @classmethod
    def failed(cls, error: str, reason: Reason | None = None, may_have_published: bool = False) -> Decision:
        return cls(ExecutionStatus.FAILED, reason=reason, error=error, may_have_published=may_have_published)

    @classmethod
    def missed(cls, reason: Reason) -> Decision:
        return cls(ExecutionStatus.MISSED, reason=reason)

    @classmethod
    def skipped(cls, reason: Reason) -> Decision:
        return cls(ExecutionStatus.SKIPPED, reason=reason)

    @classmethod
    def cancelled(cls, reason: Reason) -> Decision:
        return cls(ExecutionStatus.CANCELLED, reason=reason)

    @property
    def is_final(self) -> bool:
        return self.status not in (ExecutionStatus.RETRYING, ExecutionStatus.AWAITING, ExecutionStatus.BUFFERED)


@dataclass(frozen=True)
class Delivered:
    """What the publisher reports about one command (services.publisher.Delivery, reduced)."""

    ok: bool
    via: str
    error: str | None = None
    unreachable: bool = False  # NATS was unreachable: our outage, not the target's failure
    may_have_published: bool = False  # written, but not confirmed: the server may have it


@dataclass(frozen=True)
class RetryPolicy:
    """The one place that decides a claimed run's fate (see the module docstring for the rules)."""

    backoff_cap_seconds: float
    on_time_seconds: float  # MISFIRE_ON_TIME_SECONDS: the least grace any run has
    outage_retry_cap_seconds: float = OUTAGE_RETRY_CAP_SECONDS
    lock_conflict_defer_ms: int = LOCK_CONFLICT_DEFER_MS

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        """The policy the settings give (RETRY_BACKOFF_CAP_SECONDS, MISFIRE_ON_TIME_SECONDS)."""
        return cls(settings.RETRY_BACKOFF_CAP_SECONDS, settings.MISFIRE_ON_TIME_SECONDS)

    def before_publish(self, run: RunFacts, target_allowed: bool, target: str) -> Decision | None:
        """Why the run must not be published, or None to publish it."""
        if not run.may_have_published:
            if run.schedule_status == ScheduleStatus.DELETED:
                return Decision.cancelled(Reason.DELETED)
            if run.schedule_status == ScheduleStatus.PAUSED and run.trigger_type == TriggerType.SCHEDULED:
                return Decision.missed(Reason.PAUSED)
        if not target_allowed:
            return Decision.failed(f"{target} is not allowed by COMMAND_WHITELIST", reason=Reason.FORBIDDEN)
        return None

    def after_delivery(self, run: RunFacts, now: datetime, delivered: Delivered, jitter: float) -> Decision:
        """The fate of a run whose command was handed to NATS (`jitter` in [0, 1) spreads retries)."""
        if delivered.ok:
            if run.completion == Completion.REPORT and delivered.via != "request":
                return Decision.awaiting(delivered.via)
            return Decision.succeeded(delivered.via)
        error = delivered.error or "publish failed"
        if delivered.unreachable:
            return self.on_outage(run, now, error, jitter, nats=True, may_have_published=delivered.may_have_published)
        return self.on_failure(run, error, jitter, may_have_published=delivered.may_have_published)

    def on_failure(self, run: RunFacts, error: str, jitter: float, may_have_published: bool = False) -> Decision:
        """The target failed this attempt: retry with backoff while retries are left, else fail."""
        retries_used = run.attempt - 1
        if retries_used >= run.max_retries:
            return Decision.failed(error, may_have_published=may_have_published)
        delay = retry_delay_seconds(retries_used + 1, run.retry_delay, self.backoff_cap_seconds, jitter)
        return Decision.retry_at(int(delay * 1000), error, may_have_published=may_have_published)

    def on_outage(
        self,
        run: RunFacts,
        now: datetime,
        error: str,
        jitter: float,
        nats: bool = False,
        may_have_published: bool = False,
    ) -> Decision:
        """Our own dependency (Redis, or NATS with `nats`) was unreachable. `may_have_published`: the
        connection broke after the command was written, so the server may have it."""
        if not self.within_grace(run, now):
            return self.on_failure(run, error, jitter, may_have_published=may_have_published)
        # The first backoff step, capped: the attempt is given back, so the step never grows.
        cap = min(self.outage_retry_cap_seconds, self.backoff_cap_seconds)
        delay = retry_delay_seconds(1, max(1, run.retry_delay), cap, jitter)
        return Decision.gave_back(int(delay * 1000), error, waits_for_nats=nats, may_have_published=may_have_published)

    def on_busy(self, run: RunFacts, now: datetime, reason: Reason = Reason.LOCK_CONFLICT) -> Decision:
        """Every concurrency slot of the schedule was taken (or, with reason `overlap`, an earlier run
        to cancel was being published): deferred while within the grace, else skipped."""
        if self.within_grace(run, now):
            busy = "all concurrency slots busy" if reason is Reason.LOCK_CONFLICT else "an earlier run is busy"
            error = f"{busy}: deferred"
            return Decision.deferred(reason, self.lock_conflict_defer_ms, error)
        return Decision.skipped(reason)

    def on_overlap(self, verdict: OverlapVerdict) -> Decision | None:
        """The fate the overlap policy gives a due run (core.overlap), or None when it goes."""
        if verdict is OverlapVerdict.SKIP:
            return Decision.skipped(Reason.OVERLAP)
        if verdict is OverlapVerdict.BUFFER:
            return Decision.buffered()
        return None

    def on_report(self, run: RunFacts, succeeded: bool, error: str | None, jitter: float) -> Decision:
        """The target reported the completion of the attempt that awaits it."""
        if succeeded:
            return Decision.succeeded("report")
        return self.on_failure(run, error or "the target reported a failure", jitter, may_have_published=True)

    def on_timeout(self, run: RunFacts, timeout_seconds: int, jitter: float) -> Decision:
        """No report within `timeout_seconds` of the publish: a failure that ends `timed_out`."""
        error = f"no completion report within {timeout_seconds} s"
        decision = self.on_failure(run, error, jitter, may_have_published=True)
        return Decision.timed_out(error) if decision.status is ExecutionStatus.FAILED else decision

    def on_lost(self, run: RunFacts, error: str) -> Decision:
        """The worker holding the run vanished mid-run (reaped): it may have published. (With
        `completion: report`, the target's report of the lost attempt still ends the run.)"""
        if run.attempt - 1 >= run.max_retries:
            return Decision.failed(error, may_have_published=True)
        return Decision.retry_at(0, error, may_have_published=True)

    def within_grace(self, run: RunFacts, now: datetime) -> bool:
        """Whether the run is still on time: its grace counts from when it was due (its slot, or the
        instant it was retried by hand)."""
        grace = max(run.misfire_grace_seconds, self.on_time_seconds)
        return (now - (run.due or run.scheduled_for)).total_seconds() <= grace
