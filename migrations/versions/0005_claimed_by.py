"""claimed_by: the worker process that holds a running execution (fast reaping of dead workers)

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing (PostgreSQL stores NULL columns for free).
    op.add_column("executions", sa.Column("claimed_by", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("executions", "claimed_by")
