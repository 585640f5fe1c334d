"""Schedule management: create, read, list, update, delete, bulk create, preview.

Every modification runs in one transaction with its audit entry and a wake-up NOTIFY for the ticker.
All instants are UTC; `now` is supplied by the entry point.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from pydantic_core import PydanticUndefined, to_json
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.calendars import CalendarRules, exclusion_reason
from core.cronexpr import resolved_cron
from core.errors import Conflict, FieldError, NotFound, QuotaExceeded, ValidationFailed, VersionConflict
from core.misfire import Catchup, MisfirePolicy, SlotPlan, plan_due
from core.rules import Rule, ScheduleType, next_fire, preview
from core.settings import Settings
from core.states import ACTIVE_STATUSES, ExecutionStatus, Reason, ScheduleEvent, ScheduleStatus
from models import Execution, Schedule
from models.db import ReadPool
from services.access import check_visible, require_writer, schedule_scope, visible_to
from services.calendars import check_calendars_exist, load_calendars
from services.completion import ReportObserver
from services.context import Actor
from services.events import SCHEDULE_EVENT_PREFIX, EventSink, NullEvents
from services.failures import FinalFailures
from services.ics import fires_to_ics
from services.paging import KeysetPage, keyset_rows, offset_rows
from services.payload_schemas import PayloadSchemas
from services.ratelimit import WriteLimiter
from services.schemas import (
    BulkCreateOut,
    EditPreviewOut,
    ExecutionOut,
    FireTimeOut,
    Page,
    PreviewOut,
    PreviewRequest,
    ScheduleCreate,
    ScheduleFilter,
    ScheduleOut,
    ScheduleUpdate,
    SlotOut,
)
from services.slots import insert_slots
from services.stores import schedules as schedule_store
from services.validation import (
    RULE_FIELDS,
    ValidatedSchedule,
    in_utc,
    misfire_policy_of,
    rule_of,
    validate_schedule,
)
from services.views import execution_out, schedule_out, schedule_out_of_values, schedule_snapshot

WAKEUP_CHANNEL = "scheduler_wakeup"
SCHEDULE_ORDER = (col(Schedule.created_at), col(Schedule.id))  # newest first, stable
ONE_MICROSECOND = timedelta(microseconds=1)
SCHEDULES = Schedule.__table__
_COLUMNS = [c.name for c in SCHEDULES.columns]
# Defaults of the columns a new schedule may leave out (as the ORM model declares them).
_COLUMN_DEFAULTS = {
    name: field.default
    for name, field in Schedule.model_fields.items()
    if name in _COLUMNS and field.default is not PydanticUndefined and field.default_factory is None
}
_SELECT_OWNED = sa.text("SELECT live FROM schedule_counts WHERE created_by = :creator")
_SELECT_TAKEN_NAMES = sa.text(
    "SELECT name FROM schedules WHERE created_by = :creator AND "
    "deleted_at IS NULL AND name = ANY(CAST(:names AS varchar[]))"
)


async def _run(session: AsyncSession, statement: Any, params: dict[str, Any]) -> sa.CursorResult:
    """A Core statement on the session's connection (inside its transaction)."""
    return await (await session.connection()).execute(statement, params)


def _to_json(value: Any) -> str:
    """JSON text (datetimes ISO 8601, UUIDs as strings). Payloads with NaN or infinities never get
    here: validation answers 422 for them (PostgreSQL's jsonb has no such numbers)."""
    return to_json(value, inf_nan_mode="constants").decode()


def _rows_json(rows: list[dict[str, Any]]) -> str:
    return _to_json([{name: row[name] for name in _COLUMNS} for row in rows])


_SELECT_LIVE_BY_ID = f"SELECT {', '.join(_COLUMNS)} FROM schedules WHERE id = $1 AND deleted_at IS NULL"


def first_fire(rule: Rule, now: datetime, start_defaulted: bool = False) -> datetime | None:
    """The first slot of a new or re-timed schedule.

    once/immediate/cron may fire at `now` itself; an interval whose anchor defaulted to `now`
    first fires one period later (the anchor is when it was created, not a run).
    """
    if rule.schedule_type is ScheduleType.INTERVAL and start_defaulted:
        return next_fire(rule, now)
    return next_fire(rule, now - ONE_MICROSECOND)


async def notify_ticker(session: AsyncSession, schedule_id: uuid.UUID) -> None:
    """Wake the tickers when this transaction commits (PostgreSQL delivers NOTIFY on commit)."""
    await session.exec(sa.select(sa.func.pg_notify(WAKEUP_CHANNEL, str(schedule_id))))


def validation_errors_of(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic errors as FieldErrors with dotted paths (`schedules.2.priority`)."""
    result = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        result.append(FieldError(path, item["msg"]))
    return result


NULLABLE_FIELDS = (
    "description",
    "end_at",
    "start_at",
    "max_runs",
    "cron_expression",
    "interval_seconds",
    "run_at",
    "pause_after_failures",
    "dead_letter_subject",
)


def _merged(row: Schedule, changes: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The stored schedule with `changes` applied, and whether its timing rule changed."""
    merged = {name: getattr(row, name) for name in ScheduleCreate.model_fields}
    if "schedule_type" in changes and changes["schedule_type"] != row.schedule_type:
        # Switching type drops the fields of the old type rather than rejecting them.
        for name in ("cron_expression", "interval_seconds", "run_at"):
            merged[name] = None
    merged.update(changes)
    if merged["schedule_type"] == ScheduleType.IMMEDIATE:
        merged["run_at"] = None  # an immediate schedule's run_at is set by the service, never given
    return merged, any(name in changes for name in (*RULE_FIELDS, "dst_gap", "dst_repeat"))


def _changes_of(body: ScheduleUpdate) -> tuple[dict[str, Any], int | None]:
    """The fields an update sets, and the version it expects; a null where none is allowed is refused."""
    changes = body.model_dump(exclude_unset=True)
    expected_version = changes.pop("version", None)
    nulls = [name for name, value in changes.items() if value is None and name not in NULLABLE_FIELDS]
    if nulls:
        raise ValidationFailed([FieldError(n, "may not be null") for n in nulls])
    return changes, expected_version


def _upcoming(row: Schedule, now: datetime, count: int) -> list[FireTimeOut]:
    """The next `count` fires of a stored schedule from its next_run_at (none while it is not active)."""
    if row.status != ScheduleStatus.ACTIVE or row.next_run_at is None:
        return []
    fires = preview(rule_of(row), row.next_run_at - ONE_MICROSECOND, count)
    return [FireTimeOut(at=f.at_utc, local_time=f.local_time.isoformat(), note=f.note) for f in fires]


async def _unfinished_runs(session: AsyncSession, schedule_id: uuid.UUID) -> list[ExecutionOut]:
    """The schedule's recorded runs that are not over yet (an edit keeps them on their slots)."""
    rows = await session.exec(
        select(Execution)
        .where(col(Execution.schedule_id) == schedule_id, col(Execution.status).in_(sorted(ACTIVE_STATUSES)))
        .order_by(col(Execution.scheduled_for))
        .limit(100)
    )
    return [execution_out(r) for r in rows.all()]


def _checked(merged: dict[str, Any]) -> ScheduleCreate:
    try:
        return ScheduleCreate.model_validate(merged)
    except ValidationError as error:
        raise ValidationFailed(validation_errors_of(error)) from None


def schedule_conditions(filters: ScheduleFilter) -> list[Any]:
    """SQL conditions of a schedule filter (shared by the REST page and the GraphQL connection)."""
    conditions: list[Any] = [col(Schedule.deleted_at).is_(None)]
    if filters.status is not None:
        conditions.append(Schedule.status == filters.status.value)
    if filters.is_active is not None:
        active = ScheduleStatus.ACTIVE.value
        conditions.append((Schedule.status == active) if filters.is_active else (Schedule.status != active))
    if filters.schedule_type is not None:
        conditions.append(Schedule.schedule_type == filters.schedule_type.value)
    if filters.tags:
        conditions.append(col(Schedule.tags).contains(filters.tags))
    if filters.created_by is not None:
        conditions.append(Schedule.created_by == filters.created_by)
    if filters.search:
        escaped = filters.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(col(Schedule.name).ilike(f"%{escaped}%", escape="\\"))
    if filters.next_run_before is not None:
        conditions.append(col(Schedule.next_run_at) < filters.next_run_before)
    if filters.next_run_after is not None:
        conditions.append(col(Schedule.next_run_at) > filters.next_run_after)
    return conditions


class ScheduleService:
    """The one place where schedules are created and changed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        events: EventSink | None = None,
        limiter: WriteLimiter | None = None,
        payload_schemas: PayloadSchemas | None = None,
        reads: ReadPool | None = None,
        failures: FinalFailures | None = None,
        report_observer: ReportObserver | None = None,
    ) -> None:
        """`failures` sends the dead letters of runs a completion report fails (None: they stay unsent,
        as the executions list shows); `report_observer` is told of each accepted report (metrics)."""
        self.sessions = sessions
        self.settings = settings
        self.events: EventSink = events or NullEvents()
        self.limiter = limiter
        self.payload_schemas = payload_schemas
        # GET by id reads through `reads` (plain asyncpg, one round trip) when given (the API gives it).
        self._reads = reads
        self.failures = failures
        self.report_observer = report_observer

    async def _begin_write(self, actor: Actor) -> None:
        """Every write starts here: the role allows it and the principal is within its rate."""
        require_writer(actor)
        if self.limiter is not None:
            await self.limiter.hit(actor)

    def _validate(self, values: dict[str, Any], now: datetime, check_rule: bool = True) -> ValidatedSchedule:
        return validate_schedule(values, self.settings, now, check_rule, self.payload_schemas)

    async def announce(
        self, kind: ScheduleEvent, schedule: ScheduleOut | dict[str, Any], actor: Actor, now: datetime
    ) -> None:
        """Publish `evt.scheduler.schedule.<kind>` after the change committed (best effort)."""
        body = schedule.model_dump(mode="json") if isinstance(schedule, ScheduleOut) else schedule
        await self.events.emit(
            SCHEDULE_EVENT_PREFIX + kind,
            {
                "schedule_id": str(body.get("id")),
                "actor": actor.name,
                "correlation_id": actor.correlation_id,
                "at": now,
                "schedule": body,
            },
        )

    # ---- reads -------------------------------------------------------------------------

    async def _load(
        self, session: AsyncSession, schedule_id: uuid.UUID, actor: Actor, for_update: bool = False
    ) -> Schedule:
        query = select(Schedule).where(Schedule.id == schedule_id, col(Schedule.deleted_at).is_(None))
        if for_update:
            query = query.with_for_update()
        row = (await session.exec(query)).first()
        if row is None:
            raise NotFound("schedule", schedule_id, field="schedule_id")
        check_visible(actor, row)
        return row

    async def get(self, schedule_id: uuid.UUID, actor: Actor) -> ScheduleOut:
        if self._reads is None:
            async with self.sessions() as session:
                return schedule_out(await self._load(session, schedule_id, actor))
        # The hot read: one statement outside a transaction (no BEGIN/ROLLBACK or pre-ping round
        # trips, no ORM objects), the same visibility rule and the same output as `_load`.
        row = await self._reads.fetchrow(_SELECT_LIVE_BY_ID, schedule_id)
        if row is None or not visible_to(actor, row["created_by"]):
            raise NotFound("schedule", schedule_id, field="schedule_id")
        return schedule_out_of_values(row)

    async def list(self, filters: ScheduleFilter, actor: Actor, page: int = 1, limit: int = 20) -> Page[ScheduleOut]:
        """A page of schedules, newest first (created_at, id: stable under inserts of older rows)."""
        conditions = schedule_conditions(filters) + schedule_scope(actor)
        async with self.sessions() as session:
            rows, total = await offset_rows(session, Schedule, conditions, SCHEDULE_ORDER, page, limit)
        return Page[ScheduleOut].of([schedule_out(r) for r in rows], total, page, limit)

    async def connection(
        self, filters: ScheduleFilter, actor: Actor, first: int, after: str | None
    ) -> KeysetPage[ScheduleOut]:
        """A cursor page of schedules, newest first (GraphQL `schedules`)."""
        conditions = schedule_conditions(filters) + schedule_scope(actor)
        async with self.sessions() as session:
            rows, cursors, total, has_next = await keyset_rows(
                session, Schedule, conditions, SCHEDULE_ORDER, first, after
            )
        return KeysetPage[ScheduleOut](
            items=[schedule_out(r) for r in rows], cursors=cursors, total=total, has_next=has_next
        )

    async def preview(self, request: PreviewRequest, now: datetime) -> PreviewOut:
        """Fire times of an unsaved schedule at or after `request.after` (default now, the past allowed)
        and up to `request.until`; validates the schedule as create would, as of the earlier of now and
        `after`."""
        values = request.model_dump(exclude={"count", "after", "until", "hash_key", "exclude_calendars"})
        values.setdefault("target_command", "cmd.preview.only")
        zone = request.timezone or self.settings.DEFAULT_TIMEZONE
        after, until = in_utc(request.after, zone) or now, in_utc(request.until, zone)
        if until is not None and until < after:
            raise ValidationFailed.single("until", "must not be before after")
        validated = self._validate(values, min(now, after))
        rule = replace(validated.rule, hash_key=request.hash_key or "")
        fires = preview(rule, after - ONE_MICROSECOND, request.count, until=until)
        calendars = await self._calendars(request.exclude_calendars)
        return PreviewOut(
            timezone=rule.timezone,
            resolved_cron=resolved_cron(rule.cron_expression, rule.hash_key),
            fire_times=[
                FireTimeOut(
                    at=f.at_utc,
                    local_time=f.local_time.isoformat(),
                    note=f.note,
                    excluded_by=exclusion_reason(calendars, f.at_utc) if calendars else None,
                )
                for f in fires
            ],
        )

    async def calendar_ics(self, schedule_id: uuid.UUID, actor: Actor, now: datetime, count: int = 100) -> bytes:
        """The schedule's next `count` fire times as an iCalendar document (slots its calendars exclude
        are left out: they do not fire)."""
        async with self.sessions() as session:
            row = await self._load(session, schedule_id, actor)
        calendars = await self._calendars(row.exclude_calendars)
        fires = [f.at for f in _upcoming(row, now, count) if not (calendars and exclusion_reason(calendars, f.at))]
        return fires_to_ics(str(row.id), row.name, row.target_command, fires, now)

    async def _calendars(self, names: list[str]) -> list[CalendarRules]:
        """The calendars named, in order; a name that is no calendar is refused."""
        if not names:
            return []
        async with self.sessions() as session:
            await check_calendars_exist(session, names)
            found = await load_calendars(session, names)
        return [found[name] for name in names]

    # ---- create ------------------------------------------------------------------------

    def _new_row(self, validated: ValidatedSchedule, actor: Actor, now: datetime, start_defaulted: bool) -> Schedule:
        return Schedule(**self._new_values(validated, actor, now, start_defaulted))

    def _new_values(
        self, validated: ValidatedSchedule, actor: Actor, now: datetime, start_defaulted: bool
    ) -> dict[str, Any]:
        """The column values of a new schedule: every column, defaults filled (bulk create inserts
        these directly; `_new_row` wraps them in the ORM object)."""
        schedule_id = uuid.uuid4()
        next_run = first_fire(replace(validated.rule, hash_key=str(schedule_id)), now, start_defaulted)
        if next_run is None:
            raise ValidationFailed.single("schedule_type", "this schedule would never fire")
        return {
            **_COLUMN_DEFAULTS,
            "id": schedule_id,
            "command_payload": {},
            "tags": [],
            "exclude_calendars": [],
            **validated.values,
            "status": ScheduleStatus.ACTIVE.value,
            "next_run_at": next_run,
            "created_by": actor.owner,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }

    async def _check_quota(self, session: AsyncSession, creator: str, adding: int) -> None:
        # Serialize creates per creator so two concurrent requests cannot both pass the check. The
        # count of live schedules is one row of schedule_counts, kept exact by triggers (0004).
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(creator))))
        owned = (await _run(session, _SELECT_OWNED, {"creator": creator})).scalar() or 0
        limit = self.settings.MAX_SCHEDULES_PER_CREATOR
        if owned + adding > limit:
            raise QuotaExceeded(f"creator {creator!r} has {owned} schedules; the limit is {limit}")

    async def _check_names_free(self, session: AsyncSession, creator: str, names: list[str], fields: list[str]) -> None:
        taken = set((await _run(session, _SELECT_TAKEN_NAMES, {"creator": creator, "names": names})).scalars())
        clashes = [
            FieldError(f, f"a schedule named {n!r} already exists for {creator!r}")
            for n, f in zip(names, fields)
            if n in taken
        ]
        if clashes:
            raise Conflict(clashes[0].message, errors=clashes)

    async def create(self, body: ScheduleCreate, actor: Actor, now: datetime) -> ScheduleOut:
        await self._begin_write(actor)
        validated = self._validate(body.model_dump(), now)
        row = self._new_row(validated, actor, now, start_defaulted=body.start_at is None)
        async with self.sessions() as session, session.begin():
            await self._check_quota(session, actor.owner, 1)
            await self._check_names_free(session, actor.owner, [row.name], ["name"])
            await check_calendars_exist(session, row.exclude_calendars)
            session.add(row)
            await session.flush()
            schedule_store.audit(session, actor, "schedule.created", now, row.id, after=schedule_snapshot(row))
            await notify_ticker(session, row.id)
        out = schedule_out(row)
        await self.announce(ScheduleEvent.CREATED, out, actor, now)
        return out

    async def bulk_create(self, items: list[dict[str, Any]], actor: Actor, now: datetime) -> BulkCreateOut:
        """All or nothing: every invalid item is reported by index (`schedules.3.cron_expression`)."""
        await self._begin_write(actor)
        if len(items) > self.settings.MAX_BULK_ITEMS:
            raise ValidationFailed.single("schedules", f"at most {self.settings.MAX_BULK_ITEMS} items per request")
        errors: list[FieldError] = []
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            prefix = f"schedules.{index}"
            try:
                body = ScheduleCreate.model_validate(item)
                validated = self._validate(body.model_dump(), now)
                rows.append(self._new_values(validated, actor, now, start_defaulted=body.start_at is None))
            except ValidationError as error:
                errors.extend(validation_errors_of(error, prefix))
            except ValidationFailed as error:
                errors.extend(e.prefixed(prefix) for e in error.errors)
        seen: dict[str, int] = {}
        for index, row in enumerate(rows):
            if row["name"] in seen:
                errors.append(
                    FieldError(f"schedules.{index}.name", f"duplicates the name of schedules.{seen[row['name']]}")
                )
            seen.setdefault(row["name"], index)
        if errors:
            raise ValidationFailed(errors)
        # One JSON-ready snapshot per schedule serves the audit row and the event (as before: the
        # snapshot is ScheduleOut in JSON mode). Rows and audit entries go in one statement each.
        snapshots = [schedule_out_of_values(values).model_dump(mode="json") for values in rows]
        async with self.sessions() as session, session.begin():
            await self._check_quota(session, actor.owner, len(rows))
            for index, values in enumerate(rows):
                if values["exclude_calendars"]:
                    await check_calendars_exist(
                        session, values["exclude_calendars"], f"schedules.{index}.exclude_calendars"
                    )
            await self._check_names_free(
                session, actor.owner, [r["name"] for r in rows], [f"schedules.{i}.name" for i in range(len(rows))]
            )
            audit = _to_json([{"schedule_id": r["id"], "after": snap} for r, snap in zip(rows, snapshots)])
            await schedule_store.insert_many(await session.connection(), _rows_json(rows), audit, actor, now)
            await notify_ticker(session, rows[0]["id"])
        for snapshot in snapshots:
            await self.announce(ScheduleEvent.CREATED, snapshot, actor, now)
        return BulkCreateOut(created=len(rows), schedule_ids=[r["id"] for r in rows])

    # ---- update / delete ---------------------------------------------------------------

    async def update(self, schedule_id: uuid.UUID, body: ScheduleUpdate, actor: Actor, now: datetime) -> ScheduleOut:
        await self._begin_write(actor)
        changes, expected_version = _changes_of(body)
        async with self.sessions() as session, session.begin():
            row = await self._load(session, schedule_id, actor, for_update=True)
            before = schedule_snapshot(row)
            await self._edit(session, row, changes, expected_version, actor, now)
            schedule_store.audit(
                session, actor, "schedule.updated", now, row.id, before=before, after=schedule_snapshot(row)
            )
            await notify_ticker(session, row.id)
        out = schedule_out(row)
        await self.announce(ScheduleEvent.UPDATED, out, actor, now)
        return out

    async def preview_update(
        self, schedule_id: uuid.UUID, body: ScheduleUpdate, actor: Actor, now: datetime, count: int = 5
    ) -> EditPreviewOut:
        """What `update` would do, saving nothing: the edit runs in a transaction that is rolled back, so
        the answer comes from the same code and checks as the real edit (a refused edit raises alike)."""
        await self._begin_write(actor)
        changes, expected_version = _changes_of(body)
        async with self.sessions() as session:
            await session.begin()
            try:
                row = await self._load(session, schedule_id, actor, for_update=True)
                before = _upcoming(row, now, count)
                pending = await _unfinished_runs(session, row.id)
                recorded = await self._edit(session, row, changes, expected_version, actor, now)
                return EditPreviewOut(
                    schedule=schedule_out(row),
                    fire_times_before=before,
                    fire_times_after=_upcoming(row, now, count),
                    slots_recorded=recorded,
                    runs_kept=pending,
                )
            finally:
                await session.rollback()

    async def _edit(
        self,
        session: AsyncSession,
        row: Schedule,
        changes: dict[str, Any],
        expected_version: int | None,
        actor: Actor,
        now: datetime,
    ) -> list[SlotOut]:
        """Apply `changes` to the locked `row` (validated as create would); return the late slots of the
        old rule that a change of the rule records."""
        if expected_version is not None and expected_version != row.version:
            raise VersionConflict(expected_version, row.version)
        old_rule = rule_of(row)
        merged, retimed = _merged(row, changes)
        validated = self._validate(_checked(merged).model_dump(), now, check_rule=retimed)
        if merged.get("name") != row.name:
            await self._check_names_free(session, row.created_by, [merged["name"]], ["name"])
        if "exclude_calendars" in changes:
            await check_calendars_exist(session, changes["exclude_calendars"] or [])
        for name, value in validated.values.items():
            if retimed or name not in RULE_FIELDS:
                setattr(row, name, value)
        recorded: list[SlotOut] = []
        if retimed:
            new_rule = replace(validated.rule, hash_key=str(row.id))
            recorded = await self._retime(session, row, old_rule, new_rule, actor, now)
        row.updated_at, row.updated_by, row.version = now, actor.name, row.version + 1
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict("a schedule with this name already exists", field="name") from None
        return recorded

    async def _retime(
        self, session: AsyncSession, row: Schedule, old_rule: Rule, new_rule: Rule, actor: Actor, now: datetime
    ) -> list[SlotOut]:
        """A changed rule: record the old rule's late slots (returned), then plan from the new rule's first slot."""
        recorded: list[SlotOut] = []
        if row.status == ScheduleStatus.ACTIVE and row.next_run_at is not None and row.next_run_at <= now:
            # Slots of the old rule that are due and not yet recorded (no ticker has claimed them)
            # follow the misfire rules like any late slot.
            policy = misfire_policy_of(row, self.settings)
            plan = plan_due(old_rule, row.next_run_at, now, policy, row.run_count, row.max_runs)
            await insert_slots(
                session, row, plan, now, Reason.MISSED, actor.correlation_id, traceparent=actor.traceparent
            )
            row.run_count += len(plan.fire)
            recorded = [SlotOut(scheduled_for=s, status=ExecutionStatus.PENDING.value) for s in plan.fire]
            recorded += [SlotOut(scheduled_for=s, status=ExecutionStatus.MISSED.value) for s in plan.missed]
        if row.status in (ScheduleStatus.ACTIVE, ScheduleStatus.COMPLETED):
            next_run = first_fire(new_rule, now)
            if next_run is None:
                raise ValidationFailed.single("schedule_type", "this schedule would never fire again")
            row.next_run_at = next_run
            row.status = ScheduleStatus.ACTIVE.value
            row.status_reason = None
        return recorded

    async def delete(self, schedule_id: uuid.UUID, actor: Actor, now: datetime, reason: str | None = None) -> None:
        """Soft delete: the row stays (hidden) so its executions and audit trail keep their schedule."""
        await self._begin_write(actor)
        async with self.sessions() as session, session.begin():
            row = await self._load(session, schedule_id, actor, for_update=True)
            await self.delete_row(session, row, actor, now, reason)
        await self.announce(ScheduleEvent.DELETED, schedule_out(row), actor, now)

    async def delete_row(
        self, session: AsyncSession, row: Schedule, actor: Actor, now: datetime, reason: str | None
    ) -> None:
        before = schedule_snapshot(row)
        if (
            row.status in (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED)
            and row.next_run_at is not None
            and row.next_run_at <= now
        ):
            # Slots that fell due but were not recorded yet (no ticker has claimed them, or the schedule
            # is paused) never fire now; keep each as a row with its reason instead of dropping it.
            due = plan_due(
                rule_of(row),
                row.next_run_at,
                now,
                MisfirePolicy(grace_seconds=0, catchup=Catchup.NONE),
                row.run_count,
                row.max_runs,
            )
            slots = tuple(sorted(due.fire + due.missed))
            paused = row.status == ScheduleStatus.PAUSED
            await insert_slots(
                session,
                row,
                SlotPlan((), slots, 0, None, True),
                now,
                Reason.PAUSED if paused else Reason.DELETED,
                actor.correlation_id,
                ExecutionStatus.MISSED if paused else ExecutionStatus.CANCELLED,
                traceparent=actor.traceparent,
            )
        row.status = ScheduleStatus.DELETED.value
        row.deleted_at = now
        row.next_run_at = None
        row.updated_at = now
        row.updated_by = actor.name
        row.version += 1
        session.add(row)
        schedule_store.audit(session, actor, "schedule.deleted", now, row.id, before=before, reason=reason)
