"""Calendars: named exclusion calendars that schedules reference

- table `calendars`: a name (unique), a time zone, whole dates, date ranges (JSON pairs), yearly dates
  (`MM-DD`) and windows (5-field cron expressions), with who made and last changed it;
- `schedules.exclude_calendars`: the names of the calendars whose days a schedule does not fire on,
  with a GIN index (which schedules use a calendar: its delete check and `used_by`);
- `executions.reason` grows to 80 characters for `calendar:<name>`.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("dates", ARRAY(sa.Date), nullable=False, server_default="{}"),
        sa.Column("ranges", JSONB, nullable=False, server_default="[]"),
        sa.Column("yearly", ARRAY(sa.String(5)), nullable=False, server_default="{}"),
        sa.Column("windows", ARRAY(sa.String(255)), nullable=False, server_default="{}"),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.UniqueConstraint("name", name="uq_calendars_name"),
    )
    op.add_column(
        "schedules",
        sa.Column("exclude_calendars", ARRAY(sa.String(63)), nullable=False, server_default="{}"),
    )
    op.create_index("ix_schedules_exclude_calendars", "schedules", ["exclude_calendars"], postgresql_using="gin")
    op.alter_column("executions", "reason", type_=sa.String(80), existing_type=sa.String(32))


def downgrade() -> None:
    op.execute("UPDATE executions SET reason = left(reason, 32) WHERE length(reason) > 32")
    op.alter_column("executions", "reason", type_=sa.String(32), existing_type=sa.String(80))
    op.drop_index("ix_schedules_exclude_calendars", table_name="schedules", postgresql_using="gin")
    op.drop_column("schedules", "exclude_calendars")
    op.drop_table("calendars")
