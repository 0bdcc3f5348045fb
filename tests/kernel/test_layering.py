"""Layers point one way: supervisor/ never imports actors/ (or anything trading)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("actors", "ccxt")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_supervisor_has_no_trading_imports() -> None:
    files = sorted((REPO / "supervisor").rglob("*.py"))
    assert files, "supervisor/ has no modules"
    offenders = {
        str(f.relative_to(REPO)): sorted(_imports(f) & set(FORBIDDEN)) for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_public_class_has_a_docstring() -> None:
    missing = []
    for path in sorted([*(REPO / "supervisor").rglob("*.py"), *(REPO / "actors").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            public = isinstance(node, ast.ClassDef) and not node.name.startswith("_")
            if public and ast.get_docstring(node) is None:
                missing.append(f"{path.name}:{node.name}")
    assert missing == []
