"""core.tuning: one documented place for the engineering constants, in step with the modules using them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from core import tuning

ROOT = Path(__file__).resolve().parents[2]
# Modules that still define their own copy of a constant that core.tuning documents: the copies
# must agree until those modules import it from core.tuning.
COPIES = {
    "services.firing": [
        "EARLY_RETRY_SLACK",
        "ROUNDS_SECONDS",
        "LOCK_CONFLICT_DEFER_MS",
        "OUTAGE_RETRY_CAP_SECONDS",
        "RECORD_RETRY_SECONDS",
    ],
    "services.outbox": ["RESCUE_LIMIT"],
    "actors.fire": ["TIME_LIMIT_MS", "FIRE_PRIORITY", "OVERDUE_PRIORITY"],
    "ticker.loop": ["ERROR_BACKOFF_SECONDS", "SWEEP_EVERY_SECONDS"],
    "api.health": ["CHECK_TIMEOUT_SECONDS"],
    "gql.schema": ["MAX_DEPTH", "MAX_TOKENS", "MAX_ALIASES"],
    "gql.types": ["MAX_FIRE_TIMES"],
    "gql.subscriptions": ["QUEUE_LIMIT"],
}


def _assigned_constants(module: str) -> dict[str, object]:
    """The module-level `NAME = literal` assignments of a module's source (no import needed)."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    return found


@pytest.mark.parametrize("module", sorted(COPIES))
def test_copies_agree_with_core_tuning(module):
    assigned = _assigned_constants(module)
    for name in COPIES[module]:
        if name not in assigned:  # the module imports it from core.tuning
            continue
        value = eval(compile(ast.Expression(assigned[name]), module, "eval"), {"timedelta": tuning.timedelta})
        assert value == getattr(tuning, name), f"{module}.{name}"


def test_every_constant_is_commented():
    """Each constant has a comment block right above it (a group of related constants shares one)."""
    lines = (ROOT / "core" / "tuning.py").read_text().splitlines()
    for index, line in enumerate(lines):
        if line and line[0].isupper() and " = " in line:
            above = lines[index - 1]
            assert above.startswith("#") or (above and above[0].isupper()), line


def test_modules_read_their_constants_from_core_tuning():
    for module, name in [
        ("runtime.nats_client", "INITIAL_CONNECT_TIMEOUT_SECONDS"),
        ("runtime.launcher", "STOP_GRACE_SECONDS"),
        ("services.liveness", "WARM_UP_MARGIN_SECONDS"),
        ("models.db", "DATABASE_POOL_RECYCLE_SECONDS"),
    ]:
        assert getattr(importlib.import_module(module), name) is getattr(tuning, name)
