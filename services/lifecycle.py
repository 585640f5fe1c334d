"""Schedule lifecycle: pause (and snooze), resume, trigger, and the bulk pause/resume/delete operation.

A snooze is a pause with an end (`paused_until`, UTC): the ticker calls `end_snoozes` with each
outbox sweep (at least every SWEEP_EVERY_SECONDS), which resumes the schedule exactly as a resume by hand would.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from random import random

from core.errors import Conflict, DomainError, NotFound, ValidationFailed
from core.misfire import plan_due
from core.outcomes import RetryPolicy
from core.rules import next_fire
from core.states import (
    RETRYABLE_STATUSES,
    ExecutionEvent,
    ExecutionStatus,
    Reason,
    ScheduleEvent,
    ScheduleStatus,
    event_of,
)
from core.tuning import SNOOZES_PER_PASS
from models import Execution, Schedule
from services.completion import record_report
from services.context import Actor, Role
from services.events import EXECUTION_EVENT_PREFIX
from services.schedules import ScheduleService, notify_ticker
from services.schemas import (
    BulkItemResult,
    BulkOperationKind,
    BulkOperationOut,
    CompletionReport,
    ExecutionOut,
    ScheduleOut,
    TriggerOut,
)
from services.slots import insert_slots
from services.stores import executions as execution_store
from services.stores import schedules as schedule_store
from services.ticking import EXHAUSTED_REASON
from services.validation import misfire_policy_of, payload_problems, rule_of
from services.views import execution_out, schedule_out, schedule_snapshot

log = logging.getLogger("services.lifecycle")


def check_snooze(until: datetime | None, now: datetime) -> None:
    """A snooze's end must be an instant (with an offset) after `now`."""
    if until is None:
        return
    if until.tzinfo is None:
        raise ValidationFailed.single("until", "must include a UTC offset (for example 2027-01-01T09:00:00Z)")
    if until <= now:
        raise ValidationFailed.single("until", "must be in the future")
    if until.year > 9998:
        raise ValidationFailed.single("until", "must be before the year 9999")


class LifecycleService(ScheduleService):
    """State changes of existing schedules. Shares loading and audit with ScheduleService."""

    async def pause(
        self,
        schedule_id: uuid.UUID,
        actor: Actor,
        now: datetime,
        reason: str | None = None,
        until: datetime | None = None,
    ) -> ScheduleOut:
        """Stop firing, until someone resumes or, with `until` (a snooze), until that instant: the
        ticker then resumes it as `resume` does. Pausing with the same `until` (or none) again changes
        nothing; a new `until` replaces the old one. `next_run_at` is kept so resume can tell which slots
        fell due during the pause."""
        await self._begin_write(actor)
        check_snooze(until, now)
        async with self.sessions() as session, session.begin():
            row = await self._load(session, schedule_id, actor, for_update=True)
            changed = await self._pause_row(session, row, actor, now, reason, until)
        out = schedule_out(row)
        if changed:
            await self.announce(ScheduleEvent.PAUSED, out, actor, now)
        return out

    async def _pause_row(
        self, session, row: Schedule, actor: Actor, now: datetime, reason: str | None, until: datetime | None = None
    ) -> bool:
        """Pause in the caller's transaction; False when it was already paused in the same way."""
        if row.status == ScheduleStatus.PAUSED and row.paused_until == until:
            return False
        if row.status not in (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED):
            raise Conflict(f"schedule is {row.status}; only active schedules can be paused", field="status")
        before = schedule_snapshot(row)
        if row.status == ScheduleStatus.ACTIVE:
            row.status, row.status_reason, row.paused_at = ScheduleStatus.PAUSED, reason, now
        elif reason is not None:
            row.status_reason = reason
        row.paused_until = until
        row.updated_at, row.updated_by, row.version = now, actor.name, row.version + 1
        session.add(row)
        schedule_store.audit(session, actor, "schedule.paused", now, row.id, before, schedule_snapshot(row), reason)
        return True

    async def end_snoozes(self, now: datetime, limit: int = SNOOZES_PER_PASS) -> list[ScheduleOut]:
        """Resume the paused schedules whose `paused_until` has come (the ticker calls this with each outbox sweep),
        each in its own transaction and audited as the scheduler's. A schedule that cannot be resumed is
        logged and left paused; it does not hold up the others."""
        actor = Actor(name=schedule_store.SYSTEM_ACTOR, role=Role.ADMIN)
        async with self.sessions() as session:
            due = await schedule_store.snoozes_ended(await session.connection(), now, limit)
        resumed = []
        for schedule_id in due:
            try:
                async with self.sessions() as session, session.begin():
                    row = await self._load(session, schedule_id, actor, for_update=True)
                    if row.status != ScheduleStatus.PAUSED or row.paused_until is None or row.paused_until > now:
                        continue  # resumed or snoozed again since the lookup
                    reason = f"snooze ended (until {row.paused_until.isoformat()})"
                    await self._resume_row(session, row, actor, now, reason)
            except (DomainError, ValueError) as error:
                log.warning(
                    "snooze could not end",
                    extra={"action": "schedule.snooze_failed", "schedule_id": str(schedule_id), "error": str(error)},
                )
                continue
            out = schedule_out(row)
            await self.announce(ScheduleEvent.RESUMED, out, actor, now)
            resumed.append(out)
        return resumed

    async def resume(
        self, schedule_id: uuid.UUID, actor: Actor, now: datetime, reason: str | None = None
    ) -> ScheduleOut:
        """Fire again. Slots that fell due while paused follow the misfire rules: those within the
        grace fire, older ones follow `catchup`, and every one not fired is recorded with reason `paused`."""
        await self._begin_write(actor)
        async with self.sessions() as session, session.begin():
            row = await self._load(session, schedule_id, actor, for_update=True)
            changed = await self._resume_row(session, row, actor, now, reason)
        out = schedule_out(row)
        if changed:
            await self.announce(ScheduleEvent.RESUMED, out, actor, now)
        return out

    async def _resume_row(self, session, row: Schedule, actor: Actor, now: datetime, reason: str | None) -> bool:
        """Resume in the caller's transaction; False when it was already active."""
        if row.status == ScheduleStatus.ACTIVE:
            return False
        if row.status not in (ScheduleStatus.PAUSED, ScheduleStatus.DISABLED):
            raise Conflict(
                f"schedule is {row.status}; only paused or disabled schedules can be resumed", field="status"
            )
        before = schedule_snapshot(row)
        rule = rule_of(row)
        next_run = row.next_run_at or next_fire(rule, now)
        if next_run is not None and next_run <= now:
            plan = plan_due(rule, next_run, now, misfire_policy_of(row, self.settings), row.run_count, row.max_runs)
            await insert_slots(
                session, row, plan, now, Reason.PAUSED, actor.correlation_id, traceparent=actor.traceparent
            )
            row.run_count += len(plan.fire)
            next_run = None if plan.exhausted else plan.next_run_at
        if next_run is None:
            row.status, row.status_reason = ScheduleStatus.COMPLETED, EXHAUSTED_REASON
        else:
            row.status, row.status_reason = ScheduleStatus.ACTIVE, None
        row.next_run_at, row.paused_at, row.paused_until = next_run, None, None
        row.updated_at, row.updated_by, row.version = now, actor.name, row.version + 1
        session.add(row)
        schedule_store.audit(session, actor, "schedule.resumed", now, row.id, before, schedule_snapshot(row), reason)
        await notify_ticker(session, row.id)
        return True

    async def trigger(
        self, schedule_id: uuid.UUID, actor: Actor, now: datetime, override_payload: dict | None = None
    ) -> TriggerOut:
        """Record a manual run (`pending`, scheduled_for = now) for the pipeline to publish. Paused
        and completed schedules can be triggered: a manual run is an explicit request."""
        await self._begin_write(actor)
        if override_payload is not None:
            problems = payload_problems(override_payload, self.settings, "override_payload")
            if problems:
                raise ValidationFailed(problems)
        async with self.sessions() as session, session.begin():
            row = await self._load(session, schedule_id, actor)
            if row.status == ScheduleStatus.DISABLED:
                raise Conflict(f"schedule is disabled ({row.status_reason}); resume it first", field="status")
            if override_payload is not None and self.payload_schemas is not None:
                problems = self.payload_schemas.problems(row.target_command, override_payload, "override_payload")
                if problems:
                    raise ValidationFailed(problems)
            execution_id = await execution_store.insert_manual(
                await session.connection(),
                row.id,
                row.priority,
                now,
                actor.name,
                override_payload,
                actor.correlation_id,
                actor.traceparent,
            )
            schedule_store.audit(
                session,
                actor,
                "schedule.triggered",
                now,
                row.id,
                after={"execution_id": str(execution_id), "override_payload": override_payload},
            )
            await notify_ticker(session, row.id)
        return TriggerOut(execution_id=execution_id, schedule_id=row.id, status=ExecutionStatus.PENDING)

    async def retry_execution(self, execution_id: uuid.UUID, actor: Actor, now: datetime) -> ExecutionOut:
        """A failed run gets one more attempt, with its id, slot and payload (a JetStream stream still
        within its duplicate window drops the command as a repeat). It is handed over at once and goes
        out even if its slot is long past; if it fails again it is `failed` again (with a new dead
        letter). Refused while its schedule is paused (the run would be recorded `missed`) or disabled
        (its target is no longer allowed). Returns the run as it now is."""
        await self._begin_write(actor)
        async with self.sessions() as session, session.begin():
            conn = await session.connection()
            run = await execution_store.find(conn, execution_id)
            if run is None:
                raise NotFound("execution", execution_id, field="execution_id")
            try:
                row = await self._load(session, run.schedule_id, actor, for_update=True)
            except NotFound:
                raise NotFound("execution", execution_id, field="execution_id") from None
            if row.status in (ScheduleStatus.PAUSED, ScheduleStatus.DISABLED):
                raise Conflict(f"schedule is {row.status}; resume it before retrying its runs", field="status")
            run = await execution_store.lock_one(conn, execution_id)
            if run is None:  # purged since it was read
                raise NotFound("execution", execution_id, field="execution_id")
            if run.status not in RETRYABLE_STATUSES:
                raise Conflict(f"execution is {run.status}; only failed runs can be retried", field="status")
            await execution_store.retry(conn, execution_id, run.status, now, actor.correlation_id, actor.traceparent)
            after = {"execution_id": str(execution_id)}
            schedule_store.audit(session, actor, "execution.retried", now, row.id, after=after)
            await notify_ticker(session, row.id)
            retried = execution_out(await session.get(Execution, execution_id))
        body = {
            "execution_id": str(execution_id),
            "schedule_id": str(row.id),
            "status": ExecutionStatus.PENDING,
            "actor": actor.name,
            "correlation_id": actor.correlation_id,
            "at": now,
        }
        await self.events.emit(EXECUTION_EVENT_PREFIX + ExecutionEvent.RETRIED, body)
        return retried

    async def complete_execution(
        self, execution_id: uuid.UUID, report: CompletionReport, actor: Actor, now: datetime
    ) -> ExecutionOut:
        """Record a target's completion report (services.completion has the rules); a repeat changes
        nothing. A run it ends failed gets its dead letter and may pause its schedule. Returns the run."""
        await self._begin_write(actor)
        async with self.sessions() as session, session.begin():
            conn = await session.connection()
            reported = await record_report(
                conn, RetryPolicy.of(self.settings), execution_id, report, actor, now, random()
            )
            completed = execution_out(await session.get(Execution, execution_id))
        if self.report_observer is not None:
            self.report_observer(reported.decision, completed)
        if reported.decision is None:
            return completed
        if reported.decision.status is ExecutionStatus.FAILED and self.failures is not None:
            await self.failures.follow_up([execution_id], now)
        body = {
            "execution_id": str(execution_id),
            "schedule_id": str(reported.schedule_id),
            "attempt": completed.attempts,
            "status": completed.status,
            "error": completed.last_error if reported.decision.error else None,
            "actor": actor.name,
            "correlation_id": actor.correlation_id,
            "at": now,
        }
        await self.events.emit(EXECUTION_EVENT_PREFIX + event_of(reported.decision.status), body)
        return completed

    async def bulk_operation(
        self, ids: list[str], operation: BulkOperationKind, actor: Actor, now: datetime, reason: str | None = None
    ) -> BulkOperationOut:
        """Apply one operation to many schedules; each id succeeds or fails on its own."""
        await self._begin_write(actor)
        if len(ids) > self.settings.MAX_BULK_ITEMS:
            raise ValidationFailed.single("schedule_ids", f"at most {self.settings.MAX_BULK_ITEMS} ids per request")
        results = []
        for raw_id in ids:
            try:
                schedule_id = uuid.UUID(raw_id)
            except ValueError:
                results.append(
                    BulkItemResult(
                        schedule_id=raw_id, success=False, error={"code": "invalid_id", "message": "not a UUID"}
                    )
                )
                continue
            try:
                async with self.sessions() as session, session.begin():
                    row = await self._load(session, schedule_id, actor, for_update=True)
                    if operation is BulkOperationKind.PAUSE:
                        changed = await self._pause_row(session, row, actor, now, reason)
                    elif operation is BulkOperationKind.RESUME:
                        changed = await self._resume_row(session, row, actor, now, reason)
                    else:
                        await self.delete_row(session, row, actor, now, reason)
                        changed = True
                if changed:
                    kind = {
                        "pause": ScheduleEvent.PAUSED,
                        "resume": ScheduleEvent.RESUMED,
                        "delete": ScheduleEvent.DELETED,
                    }[operation.value]
                    await self.announce(kind, schedule_out(row), actor, now)
                results.append(BulkItemResult(schedule_id=raw_id, success=True, status=row.status))
            except DomainError as error:
                results.append(
                    BulkItemResult(
                        schedule_id=raw_id, success=False, error={"code": error.code, "message": error.message}
                    )
                )
        succeeded = sum(1 for r in results if r.success)
        return BulkOperationOut(
            operation=operation.value,
            total=len(results),
            succeeded=succeeded,
            failed=len(results) - succeeded,
            results=results,
        )
