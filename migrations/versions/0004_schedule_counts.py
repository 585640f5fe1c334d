"""schedule_counts: live schedules per creator, kept by triggers (O(1) quota check)

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Inserts are counted once per statement (transition table: a bulk insert of 1,000 rows updates the
# counter once); soft deletes and changes of created_by once per affected row (the WHEN clause keeps
# the ticker's and worker's updates, which touch neither column, free of any trigger work); hard
# deletes per statement; TRUNCATE empties the counters.
FUNCTIONS = """
CREATE FUNCTION schedule_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO schedule_counts (created_by, live)
    SELECT created_by, count(*) FROM inserted_rows WHERE deleted_at IS NULL GROUP BY created_by
    ON CONFLICT (created_by) DO UPDATE SET live = schedule_counts.live + excluded.live;
    RETURN NULL;
END $$;

CREATE FUNCTION schedule_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE schedule_counts c SET live = c.live - d.n
    FROM (SELECT created_by, count(*) AS n FROM deleted_rows WHERE deleted_at IS NULL GROUP BY created_by) d
    WHERE c.created_by = d.created_by;
    RETURN NULL;
END $$;

CREATE FUNCTION schedule_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL THEN
        UPDATE schedule_counts SET live = live - 1 WHERE created_by = OLD.created_by;
    END IF;
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO schedule_counts (created_by, live) VALUES (NEW.created_by, 1)
        ON CONFLICT (created_by) DO UPDATE SET live = schedule_counts.live + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION schedule_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM schedule_counts;
    RETURN NULL;
END $$;
"""

TRIGGERS = """
CREATE TRIGGER schedule_counts_on_insert AFTER INSERT ON schedules
    REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION schedule_counts_inserted();
CREATE TRIGGER schedule_counts_on_delete AFTER DELETE ON schedules
    REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION schedule_counts_deleted();
CREATE TRIGGER schedule_counts_on_update AFTER UPDATE OF deleted_at, created_by ON schedules
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at OR OLD.created_by IS DISTINCT FROM NEW.created_by)
    EXECUTE FUNCTION schedule_counts_updated();
CREATE TRIGGER schedule_counts_on_truncate AFTER TRUNCATE ON schedules
    FOR EACH STATEMENT EXECUTE FUNCTION schedule_counts_truncated();
"""


def upgrade() -> None:
    op.create_table(
        "schedule_counts",
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("live", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("created_by"),
    )
    # No schedule may be written between the backfill and the triggers.
    op.execute("LOCK TABLE schedules IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO schedule_counts (created_by, live) "
        "SELECT created_by, count(*) FROM schedules WHERE deleted_at IS NULL GROUP BY created_by"
    )
    for statement in FUNCTIONS.split("\n\n") + TRIGGERS.strip().split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for name in (
        "schedule_counts_on_insert",
        "schedule_counts_on_delete",
        "schedule_counts_on_update",
        "schedule_counts_on_truncate",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON schedules")
    for name in (
        "schedule_counts_inserted",
        "schedule_counts_deleted",
        "schedule_counts_updated",
        "schedule_counts_truncated",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("schedule_counts")
