"""Supervision events: what happened to which actor, published to any number of subscribers."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from supervisor.error_handler import Severity

log = logging.getLogger(__name__)

__all__ = ["EventBus", "EventKind", "EventRecorder", "Subscription", "SupervisionEvent"]


class EventKind(enum.StrEnum):
    """What happened to an actor."""

    STARTED = "started"
    START_FAILED = "start_failed"
    CRASHED = "crashed"
    RESUMED = "resumed"
    RESTARTING = "restarting"  # a restart is scheduled after ``delay`` seconds
    RESTARTED = "restarted"
    ESCALATED = "escalated"
    FELL_BACK = "fell_back"
    PRIMARY_RESTORED = "primary_restored"
    STOPPED = "stopped"
    EXITED = "exited"  # the actor stopped by itself
    HUNG = "hung"
    DEAD_LETTER = "dead_letter"
    SHUTDOWN_TIMEOUT = "shutdown_timeout"


@dataclass(frozen=True, slots=True)
class SupervisionEvent:
    """One thing that happened in the tree. ``actor`` is the child's name."""

    kind: EventKind
    actor: str
    supervisor: str | None
    severity: Severity
    reason: str = ""
    error: str | None = None
    delay: float | None = None
    incarnation: int = 0
    at: float = 0.0  # wall-clock seconds since the epoch
    monotonic: float = 0.0
    count: int = 1  # for dead letters: how many messages
    message_type: str | None = None  # for a dead letter lost with a failure: its type name
    extra: tuple[tuple[str, str], ...] = field(default=())

    def describe(self) -> str:
        parts = [f"{self.kind.value} {self.actor}"]
        if self.supervisor:
            parts.append(f"(under {self.supervisor})")
        if self.delay is not None:
            parts.append(f"in {self.delay:.3f}s")
        if self.message_type:
            parts.append(f"<{self.message_type}>")
        if self.reason:
            parts.append(f"- {self.reason}")
        if self.error:
            parts.append(f"[{self.error}]")
        return " ".join(parts)


Subscriber = Callable[[SupervisionEvent], None]


class Subscription:
    """Handle returned by :meth:`EventBus.subscribe`; call :meth:`cancel` to stop receiving."""

    def __init__(self, bus: EventBus, callback: Subscriber) -> None:
        self._bus = bus
        self.callback = callback

    def cancel(self) -> None:
        self._bus._remove(self)


class EventBus:
    """Owns the subscriber list and a bounded history of recent events.

    ``publish`` calls each subscriber in the publisher's thread, so a subscriber must be quick
    (an actor subscribes by telling itself the event). A subscriber that raises is logged and
    kept; it never breaks the publisher.
    """

    def __init__(self, history: int = 1000) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._history: deque[SupervisionEvent] = deque(maxlen=history)

    def subscribe(self, callback: Subscriber) -> Subscription:
        sub = Subscription(self, callback)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def publish(self, event: SupervisionEvent) -> None:
        with self._lock:
            self._history.append(event)
            subs = self._subs
        for sub in subs:
            try:
                sub.callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.kind.value)

    def recent(self, limit: int | None = None) -> list[SupervisionEvent]:
        with self._lock:
            items = list(self._history)
        return items if limit is None else items[-limit:]


class EventRecorder:
    """Collects events and lets a caller wait, with a timeout, until one matches.

    Meant for tests and tools that need to wait for the tree without sleeping.
    """

    def __init__(self, bus: EventBus) -> None:
        self.events: list[SupervisionEvent] = []
        self._cond = threading.Condition()
        self._sub = bus.subscribe(self._on_event)

    def _on_event(self, event: SupervisionEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: EventKind, actor: str | None = None) -> list[SupervisionEvent]:
        with self._cond:
            return [
                e for e in self.events if e.kind is kind and (actor is None or e.actor == actor)
            ]

    def wait_for(
        self,
        kind: EventKind,
        actor: str | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SupervisionEvent]:
        """Block until ``count`` events of ``kind`` (for ``actor``) have arrived; return them."""
        def matching() -> list[SupervisionEvent]:
            return [
                e for e in self.events if e.kind is kind and (actor is None or e.actor == actor)
            ]

        with self._cond:
            ok = self._cond.wait_for(lambda: len(matching()) >= count, timeout=timeout)
            found = matching()
        if not ok:
            seen = ", ".join(e.describe() for e in self.events[-10:])
            raise TimeoutError(
                f"waited {timeout}s for {count} x {kind.value} of {actor or 'any actor'}; "
                f"got {len(found)}. Last events: {seen}"
            )
        return found

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> bool:
        """Re-check ``predicate`` after each event until it holds; False on timeout.

        The predicate runs outside the recorder's lock, so it may ask the tree.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = len(self.events)
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait_for(partial(self._grew_past, seen), timeout=remaining)

    def _grew_past(self, seen: int) -> bool:
        return len(self.events) > seen

    def clear(self) -> None:
        with self._cond:
            self.events.clear()

    def close(self) -> None:
        self._sub.cancel()
