"""What a pure core's module imports, read from its source (nothing is run)."""

from __future__ import annotations

import ast
import importlib.util

# a clock, a file, a database, a process, a thread, a socket, or the runtime's actors
IMPURE = frozenset({"time", "os", "pathlib", "sqlite3", "psutil", "threading", "socket",
                    "pykka", "supervisor"})


def impure_imports(module: str) -> set[str]:
    """The modules ``module`` imports itself that a pure core must not."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    return {n for n in names if n.split(".")[0] in IMPURE
            or n in ("actors.risk.breaker", "actors.market.scanner")}
