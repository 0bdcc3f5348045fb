"""Layers point one way: supervisor/ never imports actors/ (or anything trading), and each
kernel module's private names (``_x``) stay its own."""

from __future__ import annotations

import ast
import configparser
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


# -- private names stay in their module ------------------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined(tree: ast.Module) -> set[str]:
    """The private names a module defines: its functions, classes, arguments, and every
    name or attribute it assigns (``self._x = ...`` included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if _private(n)}


def _on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def private_crossings(package: Path) -> list[str]:
    """Where a module of ``package`` (its top level only: the kernel) imports a private
    name from a sibling module (``from pkg.m import _x``) or reaches one through an
    attribute: ``obj._x`` where another module of the package defines ``_x``, and this one
    does not, or does but ``obj`` is not ``self``/``cls``. A name a module defines and uses
    on ``self`` is taken as its own (the check does not follow types); private names of
    other libraries (pykka's) are not the package's and are not looked at.
    """
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(package.glob("*.py"))}
    defined = {p: _defined(t) for p, t in trees.items()}
    found: list[tuple[str, int, str]] = []
    for path, tree in trees.items():
        others = set().union(*(d for p, d in defined.items() if p != path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] \
                    == package.name:
                found.extend((path.name, node.lineno, f"imports {node.module}.{a.name}")
                             for a in node.names if _private(a.name))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) \
                    and _private(node.attr) and node.attr in others \
                    and (node.attr not in defined[path] or not _on_self(node)):
                found.append((path.name, node.lineno, f"uses .{node.attr}"))
    return [f"{name}:{line} {what}" for name, line, what in sorted(found)]


def test_kernel_modules_keep_their_private_names() -> None:
    assert private_crossings(REPO / "supervisor") == []


def test_the_private_name_check_finds_a_crossing(tmp_path: Path) -> None:
    kernel = tmp_path / "kern"
    kernel.mkdir()
    (kernel / "a.py").write_text(
        "class A:\n"
        "    def __init__(self) -> None:\n"
        "        self._busy = 0.0\n"
        "    def _launch(self) -> None:\n"
        "        self._busy = 1.0\n"
        "def _helper() -> None: ...\n", encoding="utf-8")
    (kernel / "b.py").write_text(
        "from kern.a import A, _helper\n"
        "class B:\n"
        "    def __init__(self, a: A) -> None:\n"
        "        self._busy = 2.0\n"
        "        self._a = a\n"
        "    def run(self) -> float:\n"
        "        self._a._launch()\n"
        "        self._a._unknown_to_kern()\n"  # no name of the package: someone else's
        "        return self._busy + self._a._busy\n", encoding="utf-8")
    assert private_crossings(kernel) == [
        "b.py:1 imports kern.a._helper",
        "b.py:7 uses ._launch",
        "b.py:9 uses ._busy",
    ]


def test_the_kernel_contract_covers_every_kernel_module() -> None:
    """``.importlinter``'s kernel-alone contract lists its modules one by one (a wildcard
    would take in the host): a new kernel module must be on the list, or nothing checks it."""
    ini = configparser.ConfigParser()
    ini.read(REPO / ".importlinter", encoding="utf-8")
    listed = set(ini["importlinter:contract:kernel-alone"]["source_modules"].split())
    kernel = {f"supervisor.{p.stem}" for p in (REPO / "supervisor").glob("*.py")
              if p.stem != "__init__"}
    assert kernel - listed == set()
