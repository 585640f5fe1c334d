"""Payload templates: string values may contain `{{name}}` placeholders filled at fire time.

Known names: scheduled_for (ISO 8601 UTC), execution_id, attempt (1-based), schedule.id,
schedule.name. Unknown names are rejected when the schedule is saved.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import FieldError

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
KNOWN_NAMES = frozenset({"scheduled_for", "execution_id", "attempt", "schedule.id", "schedule.name"})


def _walk_strings(value: Any, path: str):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{path}.{index}")


def template_problems(payload: dict[str, Any], field: str = "command_payload") -> list[FieldError]:
    """Every placeholder naming something unknown, with the path of the string that holds it."""
    problems = []
    for path, text in _walk_strings(payload, field):
        for name in PLACEHOLDER.findall(text):
            if name not in KNOWN_NAMES:
                known = ", ".join(sorted(KNOWN_NAMES))
                problems.append(FieldError(path, f"unknown template name {{{{{name}}}}}; known: {known}"))
    return problems


def render(payload: Any, values: dict[str, str]) -> Any:
    """A copy of `payload` with placeholders replaced by `values` (names as in KNOWN_NAMES)."""
    if isinstance(payload, str):
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), payload)
    if isinstance(payload, dict):
        return {key: render(item, values) for key, item in payload.items()}
    if isinstance(payload, list):
        return [render(item, values) for item in payload]
    return payload
