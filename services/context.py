"""Who is acting, and the correlation id that ties their request to logs, audit and events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    """The principal performing an operation (from X-Created-By & co. until credentials exist)."""

    name: str = "anonymous"
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
