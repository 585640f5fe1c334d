"""The shape the lifecycle keeps: only the stores write the run tables; statuses are named through core."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from core.states import ExecutionStatus, ScheduleStatus

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PACKAGES = ("api", "gql", "services", "actors", "ticker", "housekeeping", "runtime", "models", "web")
WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(executions|schedules)\b", re.IGNORECASE)
STATUSES = {s.value for s in ExecutionStatus} | {s.value for s in ScheduleStatus}


def _modules() -> list[Path]:
    return sorted(p for package in SERVICE_PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_only_the_stores_write_executions_and_schedules():
    writers = {
        str(path.relative_to(ROOT))
        for path in _modules()
        if WRITE.search(path.read_text()) and "stores" not in path.relative_to(ROOT).parts
    }

    assert writers == set()


def test_no_status_is_written_as_a_string_outside_core():
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATUSES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")

    assert found == []
