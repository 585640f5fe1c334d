"""Completion reports: a target says that the run it was sent ended (`completion: report`).

Owns the rules of a report, whichever door it came through (REST `POST /api/v1/executions/{id}/complete`,
GraphQL `completeExecution`, NATS `cmd.scheduler.execution.complete`):
- only the attempt that awaits a report is completed (`awaiting`, or still `running`: a fast target may
  report before its worker recorded the publish, whose late record then changes nothing), and only by
  a principal that may change the schedule (its creator, which is also the target service's own key,
  or an admin);
- a report names the attempt it reports on (`attempt`, the command's `Scheduler-Attempt` header) or,
  without one, the attempt that awaits now (a report for a run being published again must name it);
  a report for an attempt that is over (retried after a failure, timed out) is refused and changes
  nothing, except for an attempt a lost worker may have published (`lost` in the attempt log): while
  the run has not ended, that attempt's report still ends it (recorded as that attempt's);
- the same report twice is one completion: a repeat of the report that made the run's last change
  answers the execution as it is;
- its outcome comes from the retry policy (core.outcomes, `RetryPolicy.on_report`): `succeeded`, or a
  failure that retries with backoff (the ticker hands the retry over) or ends `failed`.
The run's duration is then publish to report. Instants are UTC.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.errors import Conflict, NotFound
from core.outcomes import Decision, RetryPolicy
from core.overlap import Completion
from core.states import ExecutionStatus, ReportStatus
from services.access import visible_to
from services.context import Actor
from services.runs import claimed_of
from services.schemas import CompletionReport, ExecutionOut
from services.stores import executions as execution_store

S = ExecutionStatus


# Told of each accepted report: its decision (None for a repeat) and the run as it now is (metrics).
ReportObserver = Callable[[Decision | None, ExecutionOut], None]


@dataclass(frozen=True)
class Reported:
    """What a report did: the run's schedule, the decision (None: a repeat, nothing changed)."""

    schedule_id: uuid.UUID
    decision: Decision | None


def _log(run) -> list[dict]:
    log = run.attempt_log
    return json.loads(log) if isinstance(log, str) else list(log or [])


def _is_repeat(run, attempt: int, report: CompletionReport) -> bool:
    """Whether `report` repeats the report that made the run's last change (for the same attempt)."""
    log = _log(run)
    if not log or log[-1].get("via") != "report" or log[-1].get("attempt") != attempt:
        return False
    ended_well = log[-1].get("status") == S.SUCCEEDED
    return ended_well == (report.status is ReportStatus.SUCCEEDED)


def _lost_attempt(run, attempt: int) -> bool:
    """Whether `attempt`, an earlier one, was reaped (its worker lost mid-run: it may have published) and
    the run has not ended since: that attempt's report still ends the run."""
    if attempt >= run.attempts or run.status not in (S.RETRYING, S.RUNNING, S.AWAITING):
        return False
    return any(e.get("attempt") == attempt and e.get("status") == execution_store.LOST for e in _log(run))


def _refusal(run, attempt: int) -> Conflict:
    if attempt != run.attempts:
        return Conflict(
            f"attempt {attempt} is over; the execution is {run.status} at attempt {run.attempts}", field="attempt"
        )
    return Conflict(
        f"execution is {run.status}; only a run awaiting its report can be completed "
        "(a report after the completion timeout is refused)",
        field="status",
    )


def _check_current(run, attempt: int, report: CompletionReport) -> None:
    """Refuse a report for anything but the attempt that awaits one (see the module docstring)."""
    if run.status not in (S.AWAITING, S.RUNNING) or attempt != run.attempts:
        raise _refusal(run, attempt)
    if run.status == S.RUNNING and report.attempt is None and run.attempts > 1:
        # It may be the late report of the attempt before, sent after that one timed out.
        raise Conflict("the run is being published again: name the attempt the report is for", field="attempt")


async def record_report(
    conn,
    policy: RetryPolicy,
    execution_id: uuid.UUID,
    report: CompletionReport,
    actor: Actor,
    now: datetime,
    jitter: float,
) -> Reported:
    """Apply `report` to the run inside the caller's transaction (the run is locked meanwhile)."""
    run = await execution_store.load_run(conn, execution_id)
    if run is None or not visible_to(actor, run.created_by):
        raise NotFound("execution", execution_id, field="execution_id")
    if run.completion != Completion.REPORT and run.status != S.AWAITING:
        raise Conflict("its schedule does not track completion (completion: none)", field="completion")
    attempt = report.attempt or run.attempts
    if _is_repeat(run, attempt, report):
        return Reported(run.schedule_id, None)
    if not _lost_attempt(run, attempt):
        _check_current(run, attempt, report)
    decision = policy.on_report(claimed_of(run), report.status is ReportStatus.SUCCEEDED, report.error, jitter)
    if decision.status is S.RETRYING and run.status == S.RETRYING:  # a lost attempt failed: it retries already
        return Reported(run.schedule_id, None)
    if not await execution_store.complete(conn, run, attempt, decision, report.result, now):
        raise Conflict("the execution changed meanwhile; read it again", field="status")
    return Reported(run.schedule_id, decision)
