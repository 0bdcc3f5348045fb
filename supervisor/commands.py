"""The commands a supervisor takes from the runtime, and its replies.

``Runtime.start_child`` and the other child commands ask the child's supervisor one of
these messages; the supervisor answers with a :class:`ChildInfo` (or a list, or counts),
or a :class:`Refused` whose error the runtime raises in the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.errors import RuntimeErrorBase
from supervisor.spec import ChildSpec

__all__ = [
    "ChildInfo",
    "CountChildren",
    "DeleteChild",
    "DuplicateName",
    "NotAWorker",
    "NotMine",
    "Refused",
    "ReplaceChild",
    "RestartChild",
    "StartChild",
    "StillRunning",
    "TerminateChild",
    "WhichChildren",
]


@dataclass(frozen=True, slots=True)
class StartChild:
    """Command: add a child and start it."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    """Command: stop a child for good (until RestartChild)."""

    child: str


@dataclass(frozen=True, slots=True)
class RestartChild:
    """Command: start a terminated child, or restart a running one."""

    child: str


@dataclass(frozen=True, slots=True)
class ReplaceChild:
    """Command: run a worker child from a new spec (new settings); restart it if running."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class DeleteChild:
    """Command: forget a stopped child."""

    child: str


@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Command: list the children."""


@dataclass(frozen=True, slots=True)
class CountChildren:
    """Command: count the children by kind and state."""


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A snapshot of one child, as ``which_children`` reports it."""

    id: str
    kind: str
    state: str
    restart: str
    restarts: int
    incarnation: int
    uptime: float | None
    mailbox: int
    fallback_active: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    """A command the supervisor declined; the runtime raises ``error`` in the caller."""

    error: RuntimeErrorBase


class DuplicateName(RuntimeErrorBase, ValueError):
    """Refused: a child of that name exists already."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an actor named {name!r} already exists")


class NotMine(RuntimeErrorBase, LookupError):
    """Refused: the child named is not this supervisor's."""

    def __init__(self, child: str, supervisor: str) -> None:
        super().__init__(f"{child!r} is not a child of {supervisor!r}")


class StillRunning(RuntimeErrorBase):
    """Refused: a running child cannot be deleted."""

    def __init__(self, child: str) -> None:
        super().__init__(f"{child!r} is running; terminate it before deleting it")


class NotAWorker(RuntimeErrorBase, ValueError):
    """Refused: only a worker's spec can be replaced while it runs."""

    def __init__(self, child: str) -> None:
        super().__init__(f"{child!r}: only a worker's spec can be replaced while running")
