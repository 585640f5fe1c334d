"""pipeline columns: not_before (jitter), next_attempt_at (retries), outbox index

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column("executions", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_executions_outbox",
        "executions",
        [sa.text("coalesce(not_before, scheduled_for)")],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND enqueued_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_executions_outbox",
        table_name="executions",
        postgresql_where=sa.text("status = 'pending' AND enqueued_at IS NULL"),
    )
    op.drop_column("executions", "next_attempt_at")
    op.drop_column("executions", "not_before")
