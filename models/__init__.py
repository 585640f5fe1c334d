"""SQLModel tables and the async engine/session factory; nothing else."""

from models.tables import ApiKey, AuditEntry, Backfill, Calendar, CreatorCount, Execution, Schedule

__all__ = ["ApiKey", "AuditEntry", "Backfill", "Calendar", "CreatorCount", "Execution", "Schedule"]
