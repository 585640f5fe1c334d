"""Backfills: past (or partly future) slots of a schedule recorded and fired on request

- table `backfills`: one request (its range in UTC, `max_per_second`, who asked, when it was
  cancelled) with the slot counts it found;
- `executions.trigger_type` may be `backfill`, and `executions.backfill_id` names the request;
  `ix_executions_backfill` finds a request's runs (its progress, its cancellation);
- `uq_executions_slot` covers backfilled runs too: one row per slot, whoever records it first.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _slot_index(predicate: str) -> None:
    op.drop_index("uq_executions_slot", table_name="executions")
    op.create_index(
        "uq_executions_slot",
        "executions",
        ["schedule_id", "scheduled_for"],
        unique=True,
        postgresql_where=sa.text(predicate),
    )


def _trigger_check(values: str) -> None:
    op.drop_constraint("ck_executions_trigger", "executions", type_="check")
    op.create_check_constraint("ck_executions_trigger", "executions", f"trigger_type IN ({values})")


def upgrade() -> None:
    op.create_table(
        "backfills",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("schedule_id", sa.Uuid, sa.ForeignKey("schedules.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_per_second", sa.Integer, nullable=False),
        sa.Column("slots_total", sa.Integer, nullable=False),
        sa.Column("slots_recorded_before", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("max_per_second BETWEEN 1 AND 1000", name="ck_backfills_rate"),
        sa.CheckConstraint("end_at >= start_at", name="ck_backfills_range"),
    )
    op.create_index("ix_backfills_schedule", "backfills", ["schedule_id", "created_at"])
    op.add_column(
        "executions",
        sa.Column("backfill_id", sa.Uuid, sa.ForeignKey("backfills.id", ondelete="SET NULL"), nullable=True),
    )
    op.create_index(
        "ix_executions_backfill", "executions", ["backfill_id"], postgresql_where=sa.text("backfill_id IS NOT NULL")
    )
    _trigger_check("'scheduled','manual','backfill'")
    _slot_index("trigger_type IN ('scheduled','backfill')")


def downgrade() -> None:
    op.execute("DELETE FROM executions WHERE trigger_type = 'backfill'")
    _slot_index("trigger_type = 'scheduled'")
    _trigger_check("'scheduled','manual'")
    op.drop_index("ix_executions_backfill", table_name="executions")
    op.drop_column("executions", "backfill_id")
    op.drop_index("ix_backfills_schedule", table_name="backfills")
    op.drop_table("backfills")
