"""SQLModel tables and the async engine/session factory; nothing else."""

from models.tables import AuditEntry, Execution, Schedule

__all__ = ["AuditEntry", "Execution", "Schedule"]
