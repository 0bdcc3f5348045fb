"""Walking a config file's tree as loaded data (before validation): the nodes of
``tree.children`` at any depth, and one node by name. For tools that write a copy of
``config.yaml`` with a few settings changed (the chaos load, tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["child_node", "walk_children"]


def walk_children(children: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every node of ``children`` and of their children, depth first, in order."""
    for child in children:
        yield child
        yield from walk_children(child.get("children") or [])


def child_node(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The node called ``name`` anywhere in the tree of ``raw`` (KeyError if none)."""
    for child in walk_children(raw["tree"]["children"]):
        if child["name"] == name:
            return child
    raise KeyError(f"no child named {name!r} in the config")
