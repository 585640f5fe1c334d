"""The test suite's own layout: shared code lives in tests/support, and no module imports a test module
or a conftest module."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(tree: ast.AST) -> list[str]:
    """Every dotted module name an `import` or `from ... import` statement of the tree names."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names.append(base)
            names.extend(f"{base}.{alias.name}" if node.module else f"{base}{alias.name}" for alias in node.names)
    return names


def _forbidden(module: str) -> bool:
    """A test module (`test_*`) or a conftest module appears among the dotted name's parts."""
    parts = [part for part in module.split(".") if part]
    return any(part.startswith("test_") or part == "conftest" for part in parts)


def test_no_module_imports_a_test_module_or_a_conftest():
    sources = sorted(TESTS.rglob("*.py"))

    offenders = [
        f"{path.relative_to(TESTS.parent)}: {module}"
        for path in sources
        for module in _imported_modules(ast.parse(path.read_text(), str(path)))
        if _forbidden(module)
    ]

    assert len(sources) > 50
    assert offenders == []


def test_the_rule_catches_both_kinds_of_import():
    tree = ast.parse(
        "import tests.core.test_dst\n"
        "from tests.services.test_ticking import rows\n"
        "from tests.conftest import ADMIN_DSN\n"
        "from . import conftest\n"
        "from tests.support.database import rows\n"
    )

    flagged = [module for module in _imported_modules(tree) if _forbidden(module)]

    assert flagged == [
        "tests.core.test_dst",
        "tests.services.test_ticking",
        "tests.services.test_ticking.rows",
        "tests.conftest",
        "tests.conftest.ADMIN_DSN",
        ".conftest",
    ]
