"""Functions fit on a screen: none over 60 lines outside the migrations."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_PARTS = {".venv", "migrations", "test-artifacts", ".data", "node_modules"}
LIMIT = 60


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        if SKIPPED_PARTS & set(path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LIMIT:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")

    assert long == []
