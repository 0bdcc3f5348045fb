"""What a supervisor answers about its children: :func:`child_info` for one cell (the
``WhichChildren`` rows, and the reply to the dynamic child commands) and
:func:`count_children` over its cells (``CountChildren``, as OTP's ``count_children``)."""

from __future__ import annotations

from collections.abc import Sequence

from supervisor.cell import Cell
from supervisor.commands import ChildInfo
from supervisor.lifecycle import ChildState

__all__ = ["child_info", "count_children"]


def child_info(cell: Cell, now: float) -> ChildInfo:
    """``cell`` as its supervisor reports it at ``now`` (its clock's reading)."""
    running = cell.state is ChildState.RUNNING
    return ChildInfo(
        id=cell.name,
        kind=cell.spec.kind,
        state=cell.state.value,
        restart=cell.spec.restart.value,
        restarts=cell.restarts,
        incarnation=cell.incarnation,
        uptime=(now - cell.started_at) if running else None,
        mailbox=len(cell.mailbox),
        fallback_active=cell.using_fallback,
        last_error=cell.last_error,
    )


def count_children(cells: Sequence[Cell]) -> dict[str, int]:
    """``specs`` (every child), ``active`` (running), ``supervisors`` and ``workers``."""
    return {
        "specs": len(cells),
        "active": sum(1 for c in cells if c.state is ChildState.RUNNING),
        "supervisors": sum(1 for c in cells if c.spec.is_supervisor),
        "workers": sum(1 for c in cells if not c.spec.is_supervisor),
    }
