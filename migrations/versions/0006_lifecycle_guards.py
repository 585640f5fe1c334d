"""may_have_published as data, and the database refusing illegal execution transitions

- `executions.may_have_published`: an attempt of this run may have reached NATS without being
  confirmed (its worker was lost mid-run, or the PubAck / core barrier / request reply timed out after
  the command was written). Backfilled from the attempt logs with the rule the claim applied before.
- `executions_transition_allowed`: a BEFORE UPDATE trigger that raises (SQLSTATE 23514, check
  violation) when a status changes along a pair the transition table of `core.states` does not list;
  `tests/test_migrations.py` compares the pairs below with that table.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The transition table as of this revision (a migration is frozen: it does not import core/).
ALLOWED = [
    ("pending", "running"),
    ("retrying", "running"),
    ("running", "cancelled"),
    ("running", "failed"),
    ("running", "missed"),
    ("running", "retrying"),
    ("running", "skipped"),
    ("running", "succeeded"),
]


def upgrade() -> None:
    op.add_column(
        "executions",
        sa.Column("may_have_published", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute(
        """
        UPDATE executions SET may_have_published = true
        WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(attempt_log) AS a
                      WHERE a->>'status' = 'lost' OR a->>'error' LIKE 'flush failed%'
                         OR a->>'error' LIKE 'TimeoutError%')
        """
    )
    pairs = ", ".join(f"('{a}', '{b}')" for a, b in ALLOWED)
    op.execute(
        f"""
        CREATE FUNCTION executions_transition_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (OLD.status, NEW.status) NOT IN ({pairs}) THEN
                RAISE EXCEPTION 'execution % cannot change status from % to %', OLD.id, OLD.status, NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER executions_transition_allowed BEFORE UPDATE OF status ON executions
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION executions_transition_allowed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER executions_transition_allowed ON executions")
    op.execute("DROP FUNCTION executions_transition_allowed()")
    op.drop_column("executions", "may_have_published")
