"""A read-only snapshot of the tree for status displays: :class:`TreeNode`, built by
:func:`snapshot` from the cells alone (no actor is asked, so reading it never blocks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.cell import Cell
from supervisor.lifecycle import ChildState

__all__ = ["TreeNode", "snapshot"]


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A read-only snapshot of one actor in the tree, for status displays."""

    name: str
    kind: str
    state: str
    restart: str
    restarts: int
    incarnation: int
    uptime: float | None
    mailbox: int
    busy_for: float | None
    fallback_active: bool
    last_error: str | None
    children: tuple[TreeNode, ...] = ()

    def walk(self) -> list[TreeNode]:
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def snapshot(cell: Cell, cells: Mapping[str, Cell], now: float) -> TreeNode:
    """``cell`` and the children its supervisor has now, as the cells say (no actor is
    asked, so it never blocks)."""
    children: list[TreeNode] = []
    sup = cell.spec.supervisor
    if sup is not None:
        for spec in [*sup.children, *cell.extra_children]:
            child = cells.get(spec.id)
            if child is not None and child.parent == cell.name:
                children.append(snapshot(child, cells, now))
    actor = cell.actor
    since = actor.busy_since if actor is not None else 0.0
    running = cell.state is ChildState.RUNNING
    return TreeNode(
        name=cell.name,
        kind=cell.spec.kind,
        state=cell.state.value,
        restart=cell.spec.restart.value,
        restarts=cell.restarts,
        incarnation=cell.incarnation,
        uptime=(now - cell.started_at) if running else None,
        mailbox=len(cell.mailbox),
        busy_for=(now - since) if since else None,
        fallback_active=cell.using_fallback,
        last_error=cell.last_error,
        children=tuple(children),
    )
