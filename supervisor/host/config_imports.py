"""Import paths in a config (``package.module:Class``): which may be imported, and how.

``botvisor run`` imports every one. ``check-config`` runs the code of trusted packages
only (the runtime's own, and those installed distributions declare); any other module is
found and read with ``ast`` without running it (:func:`locate_class`).
"""

from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any

from supervisor.host.config_translators import GROUP as TRANSLATORS_GROUP
from supervisor.host.config_translators import entry_point_values

__all__ = [
    "ACTOR_PACKAGES_GROUP",
    "RUN_IMPORTS",
    "Imports",
    "import_class",
    "locate_class",
    "trusted_packages",
]


# Installed distributions name the packages whose modules `check-config` may import (their
# top-level code is the bot's own) with an entry point in this group, e.g.
#   [project.entry-points."botvisor.actor_packages"]
#   actors = "actors"
# The packages of config translators count too, and the runtime's own package always does.
ACTOR_PACKAGES_GROUP = "botvisor.actor_packages"


@dataclass(frozen=True, slots=True)
class Imports:
    """Which modules a config's import paths may be imported from while it is loaded.

    ``execute`` (``botvisor run``): every one. Otherwise (``check-config``) only modules of
    the ``trusted`` top-level packages, or already imported; any other module is found and
    read without running it (:func:`locate_class`), and its actor's settings are checked
    when it runs.
    """

    execute: bool = True
    trusted: frozenset[str] = frozenset()

    def may_import(self, path: str) -> bool:
        module_name = path.partition(":")[0]
        return (self.execute or module_name in sys.modules
                or module_name.split(".")[0] in self.trusted)


RUN_IMPORTS = Imports()


def trusted_packages() -> frozenset[str]:
    """The top-level packages whose code ``check-config`` may run: the runtime's own, and
    those installed distributions declare (``botvisor.actor_packages`` entry points, and
    the packages of ``botvisor.config_translators``)."""
    names = {"supervisor"}
    for group in (ACTOR_PACKAGES_GROUP, TRANSLATORS_GROUP):
        for value in entry_point_values(group):
            names.add(value.partition(":")[0].split(".")[0].strip())
    return frozenset(n for n in names if n)


def _split_path(path: str) -> tuple[str, str]:
    module_name, _, attr = path.partition(":")
    if (not module_name or not attr or not attr.isidentifier()
            or not all(part.isidentifier() for part in module_name.split("."))):
        raise ValueError("must be an import path like 'package.module:Class'")
    return module_name, attr


# a module of one's own is found where Python finds any: say how to put its folder there
_PATH_HINT = " (a module in a folder of your own is found when that folder is on PYTHONPATH)"


def import_class(path: str, base: type) -> Any:
    """The subclass of ``base`` at import path ``package.module:Class``; ValueError names
    what is wrong with the path."""
    module_name, attr = _split_path(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}{_PATH_HINT}") from None
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # the module's own code failed
        raise ValueError(f"importing {module_name!r} failed: {type(exc).__name__}: "
                         f"{exc}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        where = getattr(module, "__file__", None)
        raise ValueError(f"module {module_name!r}{f' ({where})' if where else ''} defines "
                         f"no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{path!r} is not a {base.__name__} class")
    return cls


def _find_module(module_name: str) -> ModuleSpec | None:
    """Where ``module_name`` would be imported from, found without running any package's
    code (each level searched in its parent's directories)."""
    parts = module_name.split(".")
    spec = PathFinder.find_spec(parts[0], sys.path)
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = PathFinder.find_spec(".".join(parts[: i + 1]),
                                    list(spec.submodule_search_locations))
    return spec


def locate_class(path: str) -> None:
    """Check that the module of ``path`` exists and defines its name at top level, reading
    its source with ``ast`` (nothing of it runs); ValueError says what is wrong."""
    module_name, attr = _split_path(path)
    spec = _find_module(module_name)
    if spec is None:
        raise ValueError(f"cannot find module {module_name!r}{_PATH_HINT}")
    origin = spec.origin
    if origin is None or not origin.endswith(".py"):
        return  # compiled or namespace: only importing it can tell; `run` does
    try:
        source = Path(origin).read_bytes()
        tree = ast.parse(source, filename=origin)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"cannot read module {module_name!r} ({origin}): "
                         f"{type(exc).__name__}: {exc}") from None
    if attr not in _top_level_names(tree.body):
        raise ValueError(f"module {module_name!r} ({origin}) defines no {attr!r}")


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.If | ast.Try | ast.With):
            names |= _top_level_names(stmt.body)
            for extra in ("orelse", "finalbody"):
                names |= _top_level_names(getattr(stmt, extra, []))
            for handler in getattr(stmt, "handlers", []):
                names |= _top_level_names(handler.body)
    return names

