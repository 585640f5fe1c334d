"""Who is acting, with which role, and the correlation id and traceparent that tie their request to logs,
audit and traces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    READER = "reader"  # queries only
    WRITER = "writer"  # manages its own schedules
    ADMIN = "admin"  # everything, and may act for another creator


@dataclass(frozen=True)
class Actor:
    """The principal performing an operation.

    `name` is who authenticated (it is what the audit trail records); `acting_for` is the creator an
    admin acts on behalf of. With authentication off, every caller is an admin named by its headers.
    """

    name: str = "anonymous"
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    role: Role = Role.ADMIN
    acting_for: str | None = None
    # The W3C traceparent of the request (validated; None when it sent none): stored with the runs it creates.
    traceparent: str | None = None

    @property
    def owner(self) -> str:
        """The creator a new schedule belongs to."""
        return self.acting_for or self.name

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.READER, Role.ADMIN)
