"""The overlap step of a batch: what each claimed run does while an earlier run of its schedule is in
progress (core.overlap), and the `max_concurrent` cap over runs that await their completion report.

Only runs whose schedule has an overlap policy other than `allow`, or `completion: report`, take this
step, so the default schedules cost nothing more. For them, in one transaction: their schedules are
locked (two batches decide one schedule's overlap one after the other, so `buffer_one` keeps at most
one run waiting), the schedule's runs in progress are read, each claimed run gets its verdict in slot
order (a run skipped or buffered is no longer in progress for the runs after it), and the runs that
do not go are recorded with their claim. Only runs recorded `overlap_tracked` (their schedule took the
step when they were recorded) are read, so the runs of the default schedules cost no index entry; a
run recorded before its schedule's policy changed is not seen by the step.

Runs the verdict `cancel_others` replaces are cancelled in the same transaction: earlier runs of this
same batch are recorded `cancelled`, the others (waiting or awaiting their report) by the store's
CANCEL_OVERLAPPED. An earlier run that another worker is
publishing at that moment cannot be cancelled: the new run is then deferred (reason `overlap`).

The caller publishes a cancel notice for each cancelled run (`cancel_notice`) after the commit.
Instants are UTC.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from core.outcomes import Decision, RetryPolicy
from core.overlap import Completion, OverlapVerdict, cancel_subject, overlap_verdict
from core.overlap import takes_overlap_step as schedule_takes_overlap_step
from core.states import ExecutionStatus, Reason
from services.dead_letters import DEAD_LETTER_TIMEOUT_SECONDS
from services.publisher import MSG_ID_HEADER, Outgoing
from services.runs import Claimed, Outcome
from services.stores import executions as execution_store

S = ExecutionStatus


@dataclass
class _Run:
    """A run of a screened schedule as the overlap step sees it (from IN_PROGRESS)."""

    id: uuid.UUID
    scheduled_for: datetime
    status: ExecutionStatus
    target_command: str

    def before(self, run: Claimed) -> bool:
        return (self.scheduled_for, self.id) < (run.scheduled_for, run.execution_id)


@dataclass(frozen=True)
class Cancelled:
    """A run a newer slot of its schedule replaced (overlap cancel_other)."""

    execution_id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    target_command: str
    replaced_by: uuid.UUID


@dataclass
class Screened:
    go: list[Claimed]  # the runs to publish
    recorded: list[Outcome] = field(default_factory=list)  # the others' outcomes, recorded already
    cancelled: list[Cancelled] = field(default_factory=list)  # earlier runs replaced (cancel notices owed)


def takes_overlap_step(run: Claimed) -> bool:
    return schedule_takes_overlap_step(run.overlap_policy, run.completion)


async def screen_overlap(
    engine: AsyncEngine, policy: RetryPolicy, runs: list[Claimed], now: datetime, claim: str | None
) -> Screened:
    """Split `runs` (claimed by `claim`) into those that go and those the overlap policy or the
    awaiting cap holds back (recorded here); cancel what `cancel_other` replaces."""
    watched = sorted((run for run in runs if takes_overlap_step(run)), key=lambda r: (r.scheduled_for, r.execution_id))
    if not watched:
        return Screened(go=runs)
    async with engine.begin() as conn:
        await execution_store.lock_schedules(conn, [run.schedule_id for run in watched])
        step = _OverlapPass(conn, policy, now, {run.execution_id for run in watched})
        for row in await execution_store.in_progress(conn, [run.schedule_id for run in watched]):
            step.runs_of[row.schedule_id].append(_Run(row.id, row.scheduled_for, S(row.status), row.target_command))
        for run in watched:
            await step.decide(run)
        recorded = [
            Outcome.of(run, now, step.decided[run.execution_id]) for run in watched if run.execution_id in step.decided
        ]
        await execution_store.record(conn, recorded, now, claim)
    go = [run for run in runs if run.execution_id not in step.decided]
    return Screened(go, recorded, step.cancelled)


class _OverlapPass:
    """One batch's overlap decisions, made in slot order inside the transaction that holds the
    schedules: `runs_of` is each schedule's runs in progress, updated as runs are decided."""

    def __init__(self, conn, policy: RetryPolicy, now: datetime, batch: set[uuid.UUID]) -> None:
        self.conn = conn
        self.policy = policy
        self.now = now
        self.batch = batch  # the ids this batch claimed (its own `running` runs)
        self.runs_of: dict[uuid.UUID, list[_Run]] = defaultdict(list)
        self.decided: dict[uuid.UUID, Decision] = {}  # this batch's runs that do not go
        self.going: set[uuid.UUID] = set()  # this batch's runs that go
        self.cancelled: list[Cancelled] = []

    async def decide(self, run: Claimed) -> None:
        others = self.runs_of[run.schedule_id]
        earlier = [o for o in others if o.before(run)]
        waiting = sum(1 for o in earlier if o.status is S.BUFFERED)
        verdict = overlap_verdict(run.overlap_policy, len(earlier) - waiting, waiting)
        decision = self.policy.on_overlap(verdict)
        if verdict is OverlapVerdict.CANCEL_OTHERS:
            decision = await self._cancel(run, earlier)
        if decision is None and run.completion == Completion.REPORT and self._in_flight(run) >= run.max_concurrent:
            decision = self.policy.on_busy(run, self.now)
        if decision is None:
            self.going.add(run.execution_id)
            return
        self.decided[run.execution_id] = decision
        mine = next((o for o in others if o.id == run.execution_id), None)
        if mine is not None and decision.status is S.BUFFERED:
            mine.status = S.BUFFERED
        elif mine is not None:
            others.remove(mine)

    def _in_flight(self, run: Claimed) -> int:
        """The schedule's runs published and awaiting their report, or being published: another batch's
        `running` runs, and those of this batch that go (decided before `run`, in slot order)."""
        return sum(
            1
            for o in self.runs_of[run.schedule_id]
            if o.id != run.execution_id
            and (o.status is S.AWAITING or (o.status is S.RUNNING and (o.id not in self.batch or o.id in self.going)))
        )

    async def _cancel(self, run: Claimed, earlier: list[_Run]) -> Decision | None:
        """Cancel the runs before `run`: this batch's own by its decision, the others in the store.
        None when all are cancelled (the run goes), else the run is deferred."""
        ours = [o for o in earlier if o.id in self.batch]
        theirs = [o for o in earlier if o.id not in self.batch]
        for other in ours:
            self.decided[other.id] = Decision.cancelled(Reason.OVERLAP)
            self.going.discard(other.id)
        error = f"replaced by the run of {run.scheduled_for.isoformat()} ({run.execution_id}): overlap cancel_other"
        done = set(await execution_store.cancel_overlapped(self.conn, [o.id for o in theirs], self.now, error))
        gone = [*ours, *(o for o in theirs if o.id in done)]
        for other in gone:
            self.runs_of[run.schedule_id].remove(other)
            self.cancelled.append(
                Cancelled(other.id, run.schedule_id, other.scheduled_for, other.target_command, run.execution_id)
            )
        left = [o.id for o in theirs if o.id not in done]  # ended meanwhile, or being published elsewhere
        if await execution_store.running_among(self.conn, left):  # try again once its worker recorded it
            return self.policy.on_busy(run, self.now, Reason.OVERLAP)
        return None


def cancel_notice(cancelled: Cancelled, now: datetime) -> Outgoing:
    """The notice to `<target_command>.cancel` that a run was cancelled in favour of a newer one."""
    body = {
        "execution_id": str(cancelled.execution_id),
        "schedule_id": str(cancelled.schedule_id),
        "scheduled_for": cancelled.scheduled_for.isoformat(),
        "replaced_by": str(cancelled.replaced_by),
        "reason": Reason.OVERLAP.value,
        "cancelled_at": now.isoformat(),
    }
    headers = {
        MSG_ID_HEADER: f"cancel-{cancelled.execution_id}",
        "Scheduler-Execution-Id": str(cancelled.execution_id),
        "Scheduler-Schedule-Id": str(cancelled.schedule_id),
    }
    return Outgoing(
        execution_id=str(cancelled.execution_id),
        subject=cancel_subject(cancelled.target_command),
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers=headers,
        timeout_seconds=DEAD_LETTER_TIMEOUT_SECONDS,
    )
