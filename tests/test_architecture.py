"""The doors (REST and NATS under api/, GraphQL under gql/) stand side by side: neither imports the
other. What they share lives in core/ and services/; runtime/ composes them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOORS = ("api", "gql")


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports; relative ones stay in the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_doors_do_not_import_each_other():
    crossings = []
    for door in DOORS:
        others = set(DOORS) - {door}
        modules = sorted((ROOT / door).rglob("*.py"))
        assert modules, door
        for module in modules:
            for package in imported_packages(module) & others:
                crossings.append(f"{module.relative_to(ROOT)} imports {package}")
    assert not crossings, crossings


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from gql.schema import schema\n    import api.deps\n")
    assert imported_packages(module) == {"gql", "api"}
