"""A child's lifecycle as one table: its states, the events that move it, and
:func:`next_state`, which raises :class:`IllegalTransition` for a move ``LIFECYCLE`` does not
allow. Pure. Its one user is :class:`supervisor.cell.Cell` (``Cell.apply``), moved by the
cell's owner only.

>>> next_state(ChildState.STARTING, Lifecycle.STARTED)
<ChildState.RUNNING: 'running'>
>>> next_state(ChildState.STOPPED, Lifecycle.CRASH, "feed")
Traceback (most recent call last):
...
supervisor.lifecycle.IllegalTransition: feed: crash is not allowed when stopped
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["LIFECYCLE", "ChildState", "IllegalTransition", "Lifecycle", "next_state"]


class ChildState(enum.StrEnum):
    """Where a child is in its lifecycle."""

    STARTING = "starting"
    RUNNING = "running"
    CRASHED = "crashed"  # its instance failed; its supervisor is applying the directive
    RESTARTING = "restarting"  # waiting for its restart; messages are buffered
    STOPPED = "stopped"  # ended and not to be restarted (exited, temporary, directive stop)
    TERMINATED = "terminated"  # stopped by hand; ``restart_child`` starts it again


class Lifecycle(enum.StrEnum):
    """What moves a child from one :class:`ChildState` to the next (see ``LIFECYCLE``)."""

    START = "start"  # a new instance is being built (a running one was stopped first)
    STARTED = "started"  # its on_start finished
    START_FAILED = "start_failed"  # the factory or on_start failed; it waits for a restart
    CRASH = "crash"  # the running instance failed (or hung) and is gone
    WAIT = "wait"  # it waits for a (group) restart, timer or message already on its way
    STOP = "stop"  # ended for good: exited, temporary, directive stop, supervisor stopped
    TERMINATE = "terminate"  # stopped by request; restart_child starts it again


_S = ChildState
_L = Lifecycle
LIFECYCLE: Mapping[tuple[ChildState, Lifecycle], ChildState] = MappingProxyType({
    **{(s, _L.START): _S.STARTING for s in (_S.STOPPED, _S.RESTARTING, _S.TERMINATED,
                                             _S.RUNNING)},
    (_S.STARTING, _L.STARTED): _S.RUNNING,
    (_S.STARTING, _L.START_FAILED): _S.RESTARTING,
    (_S.RUNNING, _L.CRASH): _S.CRASHED,
    **{(s, _L.WAIT): _S.RESTARTING for s in (_S.RUNNING, _S.CRASHED, _S.RESTARTING,
                                              _S.STOPPED, _S.TERMINATED)},
    **{(s, _L.STOP): _S.STOPPED for s in (_S.STARTING, _S.RUNNING, _S.CRASHED,
                                           _S.RESTARTING, _S.STOPPED)},
    **{(s, _L.TERMINATE): _S.TERMINATED for s in (_S.RUNNING, _S.RESTARTING, _S.STOPPED,
                                                   _S.TERMINATED)},
})
"""A child's lifecycle: (state, event) -> next state; a pair not in it is illegal.
Drawn in docs/state-machines.md ("A child's lifecycle")."""


class IllegalTransition(RuntimeError):
    """An event that ``LIFECYCLE`` does not allow in the child's current state."""

    def __init__(self, child: str, state: ChildState, event: Lifecycle) -> None:
        super().__init__(f"{child}: {event.value} is not allowed when {state.value}")
        self.child = child
        self.state = state
        self.event = event


def next_state(state: ChildState, event: Lifecycle, child: str = "") -> ChildState:
    """The state ``event`` moves ``state`` to; raises :class:`IllegalTransition`."""
    try:
        return LIFECYCLE[(state, event)]
    except KeyError:
        raise IllegalTransition(child, state, event) from None
