"""The supervision events a run's observer keeps: restarts, escalations and fallbacks.

Owns :class:`SupervisionLog`, an event-bus subscriber safe to call from any thread. A
failure (crash, hang, failed start) is remembered per actor and becomes the cause of that
actor's next mark; a restart, an escalation or a fallback becomes a
:class:`~actors.run.contract.SupervisionMark`. :meth:`SupervisionLog.marks` returns a copy.
"""

from __future__ import annotations

import threading

from actors.run.contract import SupervisionMark
from supervisor.events import EventKind, SupervisionEvent

__all__ = ["FAILURE_KINDS", "MARK_KINDS", "SupervisionLog"]

MARK_KINDS = (EventKind.RESTARTED, EventKind.ESCALATED, EventKind.FELL_BACK)
FAILURE_KINDS = (EventKind.CRASHED, EventKind.HUNG, EventKind.START_FAILED)


class SupervisionLog:
    """The marks of the run so far, and each actor's last failure not yet marked."""

    def __init__(self) -> None:
        self._events: list[SupervisionMark] = []
        self._last_failure: dict[str, str] = {}
        self._lock = threading.Lock()

    def on_event(self, event: SupervisionEvent) -> None:
        """Event bus subscriber (any thread): keep restarts, escalations and fallbacks."""
        if event.kind in FAILURE_KINDS:
            with self._lock:
                self._last_failure[event.actor] = event.error or event.reason
            return
        if event.kind not in MARK_KINDS:
            return
        with self._lock:
            cause = self._last_failure.pop(event.actor, "")
            detail = "; ".join(p for p in (event.reason, event.error, cause) if p)
            if event.kind is EventKind.RESTARTED and not detail:
                detail = "restarted with its group"
            self._events.append(SupervisionMark(event.at, event.kind.value, event.actor,
                                                detail))

    def marks(self) -> list[SupervisionMark]:
        """The marks so far, oldest first (a copy)."""
        with self._lock:
            return list(self._events)
