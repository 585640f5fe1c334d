"""Completion tracking and overlap policies

- `schedules.completion` (`none` | `report`), `schedules.completion_timeout_seconds` (1..604800) and
  `schedules.overlap_policy` (`allow` | `skip` | `buffer_one` | `buffer_all` | `cancel_other`).
- `executions.complete_by`: while a run is `awaiting`, when it times out (UTC);
  `ix_executions_awaiting` finds the expired ones.
- `executions.result`: the small JSON object a completion report carried.
- `executions.overlap_tracked`: its schedule took the overlap step when the run was recorded (an overlap
  policy other than `allow`, or `completion: report`); only such runs are indexed for the step.
- `executions.reported_at`: when the completion report arrived (UTC).
- statuses `awaiting`, `buffered` and `timed_out`, with their transitions in
  `executions_transition_allowed`; `ix_executions_buffered` finds a schedule's waiting runs in slot
  order, `ix_executions_in_progress` a schedule's runs in progress (the overlap check),
  `ix_executions_unsent_retries` the retries decided outside a worker (a report, a timeout),
  which the ticker hands over.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The transition table as of this revision (a migration is frozen: it does not import core/).
BEFORE = [
    ("failed", "pending"),
    ("pending", "running"),
    ("retrying", "running"),
    ("running", "cancelled"),
    ("running", "failed"),
    ("running", "missed"),
    ("running", "retrying"),
    ("running", "skipped"),
    ("running", "succeeded"),
]
ALLOWED = sorted(
    [
        *BEFORE,
        ("pending", "cancelled"),
        ("running", "awaiting"),
        ("running", "buffered"),
        ("awaiting", "succeeded"),
        ("awaiting", "failed"),
        ("awaiting", "retrying"),
        ("awaiting", "timed_out"),
        ("awaiting", "cancelled"),
        ("buffered", "pending"),
        ("buffered", "cancelled"),
        ("retrying", "cancelled"),
        ("retrying", "succeeded"),
        ("retrying", "failed"),
        ("timed_out", "pending"),
    ]
)
STATUSES_BEFORE = "'pending','running','retrying','succeeded','failed','missed','skipped','cancelled'"
STATUSES = STATUSES_BEFORE + ",'awaiting','buffered','timed_out'"


def _transition_function(pairs: list[tuple[str, str]]) -> str:
    listed = ", ".join(f"('{a}', '{b}')" for a, b in pairs)
    return f"""
        CREATE OR REPLACE FUNCTION executions_transition_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (OLD.status, NEW.status) NOT IN ({listed}) THEN
                RAISE EXCEPTION 'execution % cannot change status from % to %', OLD.id, OLD.status, NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """


def _status_check(statuses: str) -> None:
    op.drop_constraint("ck_executions_status", "executions", type_="check")
    op.create_check_constraint("ck_executions_status", "executions", f"status IN ({statuses})")


def upgrade() -> None:
    op.add_column("schedules", sa.Column("completion", sa.String(8), nullable=False, server_default="none"))
    op.add_column(
        "schedules", sa.Column("completion_timeout_seconds", sa.Integer, nullable=False, server_default="300")
    )
    op.add_column("schedules", sa.Column("overlap_policy", sa.String(16), nullable=False, server_default="allow"))
    op.create_check_constraint("ck_schedules_completion", "schedules", "completion IN ('none','report')")
    op.create_check_constraint(
        "ck_schedules_completion_timeout", "schedules", "completion_timeout_seconds BETWEEN 1 AND 604800"
    )
    op.create_check_constraint(
        "ck_schedules_overlap_policy",
        "schedules",
        "overlap_policy IN ('allow','skip','buffer_one','buffer_all','cancel_other')",
    )
    op.add_column("executions", sa.Column("complete_by", sa.DateTime(timezone=True), nullable=True))
    op.add_column("executions", sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("executions", sa.Column("result", JSONB, nullable=True))
    op.add_column("executions", sa.Column("overlap_tracked", sa.Boolean, nullable=False, server_default=sa.false()))
    _status_check(STATUSES)
    op.create_index(
        "ix_executions_awaiting", "executions", ["complete_by"], postgresql_where=sa.text("status = 'awaiting'")
    )
    op.create_index(
        "ix_executions_in_progress",
        "executions",
        ["schedule_id", "scheduled_for"],
        postgresql_where=sa.text(
            "overlap_tracked AND status IN ('pending','running','retrying','awaiting','buffered')"
        ),
    )
    op.create_index(
        "ix_executions_buffered",
        "executions",
        ["schedule_id", "scheduled_for"],
        postgresql_where=sa.text("status = 'buffered'"),
    )
    op.create_index(
        "ix_executions_unsent_retries",
        "executions",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'retrying' AND enqueued_at IS NULL"),
    )
    op.execute(_transition_function(ALLOWED))


def downgrade() -> None:
    op.execute(_transition_function(BEFORE))
    op.drop_index("ix_executions_unsent_retries", table_name="executions")
    op.drop_index("ix_executions_buffered", table_name="executions")
    op.drop_index("ix_executions_in_progress", table_name="executions")
    op.drop_index("ix_executions_awaiting", table_name="executions")
    _status_check(STATUSES_BEFORE)
    op.drop_column("executions", "overlap_tracked")
    op.drop_column("executions", "result")
    op.drop_column("executions", "reported_at")
    op.drop_column("executions", "complete_by")
    op.drop_constraint("ck_schedules_overlap_policy", "schedules", type_="check")
    op.drop_constraint("ck_schedules_completion_timeout", "schedules", type_="check")
    op.drop_constraint("ck_schedules_completion", "schedules", type_="check")
    op.drop_column("schedules", "overlap_policy")
    op.drop_column("schedules", "completion_timeout_seconds")
    op.drop_column("schedules", "completion")
