"""SQLModel tables and the async engine/session factory; nothing else."""

from models.tables import ApiKey, AuditEntry, Execution, Schedule

__all__ = ["ApiKey", "AuditEntry", "Execution", "Schedule"]
