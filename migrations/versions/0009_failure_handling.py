"""What happens after runs fail: auto-pause and dead letters

- `schedules.pause_after_failures`: pause the schedule after this many consecutive runs ended `failed`
  (NULL: never; at least 1).
- `schedules.dead_letter_subject`: where a run that finally failed is published once (NULL: the
  DEAD_LETTER_SUBJECT setting).
- `executions.dead_lettered_at`: when the run's dead letter was published (UTC); NULL while none was;
  `ix_executions_dead_lettered` lists those runs newest slot first.
- `executions_transition_allowed` also allows `failed -> pending`: a failed run retried by hand.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The transition table as of this revision (a migration is frozen: it does not import core/).
BEFORE = [
    ("pending", "running"),
    ("retrying", "running"),
    ("running", "cancelled"),
    ("running", "failed"),
    ("running", "missed"),
    ("running", "retrying"),
    ("running", "skipped"),
    ("running", "succeeded"),
]
ALLOWED = sorted([*BEFORE, ("failed", "pending")])


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


def upgrade() -> None:
    op.add_column("schedules", sa.Column("pause_after_failures", sa.Integer, nullable=True))
    op.create_check_constraint("ck_schedules_pause_after_failures", "schedules", "pause_after_failures >= 1")
    op.add_column("schedules", sa.Column("dead_letter_subject", sa.String(255), nullable=True))
    op.add_column("executions", sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_executions_dead_lettered",
        "executions",
        ["scheduled_for", "id"],
        postgresql_where=sa.text("dead_lettered_at IS NOT NULL"),
    )
    op.execute(_transition_function(ALLOWED))


def downgrade() -> None:
    op.execute(_transition_function(BEFORE))
    op.drop_index("ix_executions_dead_lettered", table_name="executions")
    op.drop_column("executions", "dead_lettered_at")
    op.drop_column("schedules", "dead_letter_subject")
    op.drop_constraint("ck_schedules_pause_after_failures", "schedules", type_="check")
    op.drop_column("schedules", "pause_after_failures")
