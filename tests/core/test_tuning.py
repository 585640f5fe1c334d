"""core.tuning: one documented place for the engineering constants, in step with the modules using them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from core import tuning

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "gql", "services", "actors", "ticker", "housekeeping", "runtime", "models", "core")


def _assigned_constants(module: str) -> dict[str, object]:
    """The module-level `NAME = literal` assignments of a module's source (no import needed)."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    return found


def test_no_module_keeps_its_own_copy_of_a_tuning_constant():
    names = {name for name in vars(tuning) if name.isupper()}
    copies = []
    for path in sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module == "core.tuning":
            continue
        copies += [f"{module}.{name}" for name in _assigned_constants(module) if name in names]

    assert copies == []


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
