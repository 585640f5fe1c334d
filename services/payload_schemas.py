"""Optional JSON Schemas for command payloads, per target subject pattern.

PAYLOAD_SCHEMA_DIR holds `*.json` files, each `{"pattern": "cmd.notification.>", "schema": {...}}`.
A payload is checked against every schema whose pattern matches the schedule's target_command,
when the schedule is saved. Loaded once at start; a broken file stops start-up with its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from core.errors import FieldError
from core.subjects import pattern_problem, subject_matches


@dataclass(frozen=True)
class PayloadSchema:
    pattern: str
    source: str
    validator: Draft202012Validator


class PayloadSchemas:
    def __init__(self, schemas: list[PayloadSchema]) -> None:
        self.schemas = schemas

    @classmethod
    def load(cls, folder: str | Path) -> PayloadSchemas:
        schemas = []
        for path in sorted(Path(folder).glob("*.json")):
            try:
                document = json.loads(path.read_text())
                pattern, schema = document["pattern"], document["schema"]
                problem = pattern_problem(pattern)
                if problem:
                    raise ValueError(f"pattern {pattern!r} {problem}")
                Draft202012Validator.check_schema(schema)
            except (ValueError, KeyError, TypeError, SchemaError) as error:
                raise ValueError(f"payload schema {path.name}: {error}") from None
            schemas.append(PayloadSchema(pattern, path.name, Draft202012Validator(schema)))
        return cls(schemas)

    def covers(self, subject: str) -> bool:
        """Whether a schema applies to payloads sent to `subject`."""
        return any(subject_matches(schema.pattern, subject) for schema in self.schemas)

    def problems(self, subject: str, payload: Any, field: str = "command_payload") -> list[FieldError]:
        result = []
        for schema in self.schemas:
            if not subject_matches(schema.pattern, subject):
                continue
            for error in sorted(schema.validator.iter_errors(payload), key=lambda e: list(e.path)):
                path = ".".join([field, *(str(p) for p in error.path)])
                result.append(FieldError(path, f"{error.message} (schema {schema.source})"))
        return result
