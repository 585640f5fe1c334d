"""Snooze: a pause that ends by itself

- `schedules.paused_until`: the instant (UTC) at which a paused schedule resumes by itself, or NULL
  for a pause that lasts until someone resumes it. Set by a pause with `until`, cleared by every resume.
- `ix_schedules_snoozed`: the ticker's lookup of the snoozes that have ended, over paused schedules only.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("schedules", sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_schedules_snoozed",
        "schedules",
        ["paused_until"],
        postgresql_where=sa.text("status = 'paused' AND paused_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_schedules_snoozed", table_name="schedules")
    op.drop_column("schedules", "paused_until")
