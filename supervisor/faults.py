"""Fault injection as the kernel runs it: the protocol a fault plan implements, and the
faults it raises. The plan itself (its configuration, its random streams, its counts) is
the host's (``supervisor.host.chaos``); the kernel only consults it.

* A :class:`FaultPlan` hands each worker child its :class:`ActorFaults` (or None: nothing is
  injected into it, and the message loop's only cost is one ``if``), and is released when
  the runtime stops.
* The message loop calls :meth:`ActorFaults.inject` before each handler, inside the
  handler's ``try``: what it raises is classified like a real failure.
* State writers call :meth:`WriteFaults.before_write` (the actor's ``ctx.chaos``) before
  they write, so a full, failing or read-only disk can be rehearsed.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from supervisor.errors import HandlerTimeout

__all__ = ["ActorFaults", "FaultPlan", "InjectedFault", "InjectedHang", "WriteFaults"]


class InjectedFault(Exception):
    """Marker base of the injected faults that are not a named exception class."""


class InjectedHang(HandlerTimeout, InjectedFault):
    """Raised by a handler that was made to hang, once its hang is over: the message is
    dropped. A :class:`HandlerTimeout`, so the ``HandlerTimeout`` rule classifies it."""


class WriteFaults(Protocol):
    """What a writer of state files needs of fault injection (an :class:`ActorFaults` is
    one): storage helpers take ``faults: WriteFaults | None`` (the actor's ``ctx.chaos``)
    and call ``faults.before_write(path)`` before they write, when not None."""

    def before_write(self, path: str | os.PathLike[str]) -> None:
        """Raise OSError as a full, failing or read-only disk would, or return."""
        ...


class ActorFaults(WriteFaults, Protocol):
    """One worker's faults, kept across its restarts."""

    def inject(self, message: Any, deadline: float | None) -> None:
        """Called by the message loop before the handler of ``message`` runs (``deadline``:
        the child's handler deadline): raise a fault, hang then raise
        :class:`InjectedHang`, sleep, or return."""
        ...


class FaultPlan(Protocol):
    """One run's faults, as the runtime consults them."""

    def injector(self, name: str, *, is_supervisor: bool) -> ActorFaults | None:
        """The faults of child ``name`` (None: nothing to inject). Asked once per cell."""
        ...

    def release(self) -> None:
        """End every hang and slow-down now, and make later ones return at once (the
        runtime is stopping)."""
        ...
