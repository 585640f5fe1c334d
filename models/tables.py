"""The three tables: schedules, executions, audit_log.

All timestamps are `timestamptz` and hold UTC instants. Enumerated values are stored as text and
constrained by CHECKs; their vocabularies live in `core`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from core.states import ExecutionStatus, ScheduleStatus, TriggerType


def _tz(nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=nullable, **kw))


class Schedule(SQLModel, table=True):
    """A schedule: what to publish (target_command + payload) and when (the rule columns).

    Deleting is soft (`deleted_at`), so execution history and audit trail keep their schedule.
    `next_run_at` is the next nominal slot (UTC) the ticker will claim; NULL when nothing is due.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        sa.CheckConstraint("schedule_type IN ('cron','interval','once','immediate')", name="ck_schedules_type"),
        sa.CheckConstraint(
            "status IN ('active','paused','completed','disabled','deleted')", name="ck_schedules_status"
        ),
        sa.CheckConstraint("priority BETWEEN 0 AND 10", name="ck_schedules_priority"),
        sa.CheckConstraint("pause_after_failures >= 1", name="ck_schedules_pause_after_failures"),
        sa.CheckConstraint("completion IN ('none','report')", name="ck_schedules_completion"),
        sa.CheckConstraint("completion_timeout_seconds BETWEEN 1 AND 604800", name="ck_schedules_completion_timeout"),
        sa.CheckConstraint(
            "overlap_policy IN ('allow','skip','buffer_one','buffer_all','cancel_other')",
            name="ck_schedules_overlap_policy",
        ),
        sa.Index(
            "ix_schedules_due",
            "next_run_at",
            postgresql_where=sa.text("status = 'active' AND next_run_at IS NOT NULL"),
        ),
        sa.Index(
            "ix_schedules_snoozed",
            "paused_until",
            postgresql_where=sa.text("status = 'paused' AND paused_until IS NOT NULL"),
        ),
        sa.Index("ix_schedules_status_created", "status", "created_at", "id"),
        sa.Index("ix_schedules_created_by", "created_by", "created_at", "id"),
        sa.Index("ix_schedules_created", "created_at", "id"),
        sa.Index("ix_schedules_tags", "tags", postgresql_using="gin"),
        sa.Index("ix_schedules_exclude_calendars", "exclude_calendars", postgresql_using="gin"),
        sa.Index(
            "uq_schedules_creator_name",
            "created_by",
            "name",
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    schedule_type: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))

    cron_expression: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    interval_seconds: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    run_at: datetime | None = _tz()
    timezone: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    start_at: datetime | None = _tz()
    end_at: datetime | None = _tz()
    max_runs: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    jitter_seconds: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    dst_gap: str = Field(default="shift", sa_column=sa.Column(sa.String(8), nullable=False, server_default="shift"))
    dst_repeat: str = Field(default="auto", sa_column=sa.Column(sa.String(8), nullable=False, server_default="auto"))

    target_command: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    command_payload: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(JSONB, nullable=False, server_default="{}")
    )
    delivery_mode: str = Field(
        default="auto", sa_column=sa.Column(sa.String(16), nullable=False, server_default="auto")
    )
    request_timeout_seconds: int = Field(
        default=30, sa_column=sa.Column(sa.Integer, nullable=False, server_default="30")
    )
    priority: int = Field(default=5, sa_column=sa.Column(sa.SmallInteger, nullable=False, server_default="5"))
    max_retries: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    retry_delay: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    misfire_grace_seconds: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    catchup: str = Field(default="latest", sa_column=sa.Column(sa.String(8), nullable=False, server_default="latest"))
    max_concurrent: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    tags: list[str] = Field(
        default_factory=list, sa_column=sa.Column(ARRAY(sa.String(64)), nullable=False, server_default="{}")
    )
    # Pause after this many consecutive runs ended `failed` (NULL: never).
    pause_after_failures: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    # Where a run that finally failed is published (NULL: the DEAD_LETTER_SUBJECT setting).
    dead_letter_subject: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    # `report`: a run ends when the target reports (core.overlap.Completion); `none`: at its publish.
    completion: str = Field(default="none", sa_column=sa.Column(sa.String(8), nullable=False, server_default="none"))
    completion_timeout_seconds: int = Field(
        default=300, sa_column=sa.Column(sa.Integer, nullable=False, server_default="300")
    )
    # What a due run does while an earlier one is in progress (core.overlap.OverlapPolicy).
    overlap_policy: str = Field(
        default="allow", sa_column=sa.Column(sa.String(16), nullable=False, server_default="allow")
    )
    # The calendars (by name) whose days and windows this schedule does not fire in (core.calendars).
    exclude_calendars: list[str] = Field(
        default_factory=list, sa_column=sa.Column(ARRAY(sa.String(63)), nullable=False, server_default="{}")
    )

    status: str = Field(default=ScheduleStatus.ACTIVE.value, sa_column=sa.Column(sa.String(16), nullable=False))
    status_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    paused_at: datetime | None = _tz()
    paused_until: datetime | None = _tz()  # a snooze: the instant the schedule resumes by itself
    next_run_at: datetime | None = _tz()
    last_run_at: datetime | None = _tz()
    run_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))

    created_by: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    updated_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    deleted_at: datetime | None = _tz()
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))


class Execution(SQLModel, table=True):
    """One fire of a schedule (or one recorded non-fire, with `reason`).

    Scheduled runs are unique per (schedule_id, scheduled_for): the database, not the code,
    makes double-firing a slot impossible. Manual triggers are exempt (trigger_type='manual').
    """

    __tablename__ = "executions"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('pending','running','retrying','succeeded','failed','missed','skipped','cancelled',"
            "'awaiting','buffered','timed_out')",
            name="ck_executions_status",
        ),
        sa.CheckConstraint("trigger_type IN ('scheduled','manual','backfill')", name="ck_executions_trigger"),
        # One row per slot, whether the ticker or a backfill records it.
        sa.Index(
            "uq_executions_slot",
            "schedule_id",
            "scheduled_for",
            unique=True,
            postgresql_where=sa.text("trigger_type IN ('scheduled','backfill')"),
        ),
        sa.Index("ix_executions_backfill", "backfill_id", postgresql_where=sa.text("backfill_id IS NOT NULL")),
        sa.Index("ix_executions_schedule_time", "schedule_id", "scheduled_for"),
        sa.Index("ix_executions_created", "created_at", "id"),
        sa.Index(
            "ix_executions_outbox",
            sa.text("coalesce(not_before, scheduled_for)"),
            postgresql_where=sa.text("status = 'pending' AND enqueued_at IS NULL"),
        ),
        sa.Index(
            "ix_executions_dead_lettered",
            "scheduled_for",
            "id",
            postgresql_where=sa.text("dead_lettered_at IS NOT NULL"),
        ),
        sa.Index(
            "ix_executions_in_progress",
            "schedule_id",
            "scheduled_for",
            postgresql_where=sa.text(
                "overlap_tracked AND status IN ('pending','running','retrying','awaiting','buffered')"
            ),
        ),
        sa.Index("ix_executions_awaiting", "complete_by", postgresql_where=sa.text("status = 'awaiting'")),
        sa.Index(
            "ix_executions_buffered",
            "schedule_id",
            "scheduled_for",
            postgresql_where=sa.text("status = 'buffered'"),
        ),
        sa.Index(
            "ix_executions_unsent_retries",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'retrying' AND enqueued_at IS NULL"),
        ),
        sa.Index(
            "ix_executions_active",
            "status",
            "scheduled_for",
            postgresql_where=sa.text("status IN ('pending','running','retrying')"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    schedule_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("schedules.id", ondelete="RESTRICT"), nullable=False)
    )
    scheduled_for: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    trigger_type: str = Field(default=TriggerType.SCHEDULED.value, sa_column=sa.Column(sa.String(16), nullable=False))
    triggered_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    status: str = Field(default=ExecutionStatus.PENDING.value, sa_column=sa.Column(sa.String(16), nullable=False))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    priority: int = Field(default=5, sa_column=sa.Column(sa.SmallInteger, nullable=False, server_default="5"))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    attempt_log: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(JSONB, nullable=False, server_default="[]")
    )
    payload_override: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))
    not_before: datetime | None = _tz()  # slot + jitter: not published earlier (NULL = scheduled_for)
    enqueued_at: datetime | None = _tz()  # last hand-over to the queue (outbox: NULL = not yet)
    next_attempt_at: datetime | None = _tz()  # when a `retrying` run is due again
    started_at: datetime | None = _tz()
    # The worker process that claimed the run while it is `running` (see services.liveness); NULL for
    # runs claimed by a worker that does not heartbeat (they are reaped after LOCK_TIMEOUT_SECONDS only).
    claimed_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(128)))
    # An attempt may have reached NATS without being confirmed (lost worker, timed-out confirmation).
    may_have_published: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    finished_at: datetime | None = _tz()
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    published_subject: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    message_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    correlation_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    # The W3C traceparent of the request that created or triggered the run (None for the ticker's slots).
    traceparent: str | None = Field(default=None, sa_column=sa.Column(sa.String(55)))
    # When the run's dead letter was published (it finally failed); None while none was.
    dead_lettered_at: datetime | None = _tz()
    complete_by: datetime | None = _tz()  # while `awaiting`: when it times out without a report
    reported_at: datetime | None = _tz()  # when its completion report arrived
    result: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))  # what the report carried
    # Its schedule took the overlap step when it was recorded (core.overlap.takes_overlap_step): only such
    # runs are indexed for the step (ix_executions_in_progress).
    overlap_tracked: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    # The backfill that recorded the run (None for the ticker's slots and manual runs).
    backfill_id: uuid.UUID | None = Field(
        default=None, sa_column=sa.Column(sa.Uuid, sa.ForeignKey("backfills.id", ondelete="SET NULL"))
    )
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class Backfill(SQLModel, table=True):
    """A request to record and fire a schedule's slots in [start_at, end_at] (UTC) that were never
    recorded, at most `max_per_second` a second; its runs carry its id (executions.backfill_id)."""

    __tablename__ = "backfills"
    __table_args__ = (
        sa.CheckConstraint("max_per_second BETWEEN 1 AND 1000", name="ck_backfills_rate"),
        sa.CheckConstraint("end_at >= start_at", name="ck_backfills_range"),
        sa.Index("ix_backfills_schedule", "schedule_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    schedule_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("schedules.id", ondelete="RESTRICT"), nullable=False)
    )
    start_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    end_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    max_per_second: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    slots_total: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))  # slots of the rule in the range
    slots_recorded_before: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))  # already rows then
    created_by: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    cancelled_at: datetime | None = _tz()


class Calendar(SQLModel, table=True):
    """A named exclusion calendar (core.calendars): its days are local days of `timezone`."""

    __tablename__ = "calendars"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_calendars_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(63), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    timezone: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    dates: list[date] = Field(
        default_factory=list, sa_column=sa.Column(ARRAY(sa.Date), nullable=False, server_default="{}")
    )
    ranges: list[list[str]] = Field(  # [["2026-12-24", "2027-01-01"], ...], inclusive
        default_factory=list, sa_column=sa.Column(JSONB, nullable=False, server_default="[]")
    )
    yearly: list[str] = Field(  # "MM-DD"
        default_factory=list, sa_column=sa.Column(ARRAY(sa.String(5)), nullable=False, server_default="{}")
    )
    windows: list[str] = Field(  # 5-field cron expressions
        default_factory=list, sa_column=sa.Column(ARRAY(sa.String(255)), nullable=False, server_default="{}")
    )
    created_by: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    updated_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    updated_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))


class AuditEntry(SQLModel, table=True):
    """Append-only record of every modification: who, what, before/after, why, correlation id."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_schedule", "schedule_id", "at"),
        sa.Index("ix_audit_actor", "actor", "at"),
        sa.Index("ix_audit_at", "at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    actor: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    action: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    schedule_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid))
    before: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))
    after: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    correlation_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))


class ApiKey(SQLModel, table=True):
    """A credential: only the SHA-256 of the secret is stored; `prefix` identifies it in listings."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint("role IN ('reader','writer','admin')", name="ck_api_keys_role"),
        sa.Index("uq_api_keys_hash", "key_hash", unique=True),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    prefix: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    principal: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    role: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = _tz()


class CreatorCount(SQLModel, table=True):
    """How many live (not deleted) schedules each creator has: the quota check reads one row instead
    of counting. Maintained by triggers on `schedules` (migration 0004), so every insert, soft or hard
    delete and truncate keeps it exact whatever the writer."""

    __tablename__ = "schedule_counts"

    created_by: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    live: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
