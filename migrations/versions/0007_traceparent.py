"""The W3C traceparent of the request that created or triggered a run

- `executions.traceparent`: `00-<trace id>-<span id>-<flags>` as the request sent it (validated), or
  NULL when it sent none and for the ticker's slots. The worker publishes each run's command with the
  same trace id and the run's own span as parent.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("executions", "traceparent")
