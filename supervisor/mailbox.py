"""The mailbox of one named child: it outlives the actor instances that consume it.

Senders address a child by name and put into its mailbox, whether or not an instance is
running. While the child restarts, messages wait here and the replacement receives them
in order. Exactly one instance (the *owner*) may take from it; an instance that is no
longer the owner (replaced, detached, or hung and abandoned) gets :class:`Detached` the
next time it asks for a message, so two instances never share a mailbox.

A child stopped for good whose actor lingers (see ``SupervisedActor.on_stopping``) has its
mailbox *finishing* (:meth:`Mailbox.finish`): ordinary messages are refused, control ones
(replies to its own asks, supervision traffic) still come in, and the owner goes on taking.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from pykka._envelope import Envelope  # pykka's message wrapper (message + reply future)

from supervisor.errors import ActorNotRunning, MailboxFull

__all__ = ["Detached", "Envelope", "Mailbox"]


class Detached(Exception):
    """Raised in an actor's thread when it is no longer the owner of its mailbox."""


class Mailbox:
    """FIFO of envelopes for one child name, with an owner and an optional size limit."""

    __slots__ = ("_closed", "_cond", "_draining", "_finishing", "_items", "_listener", "_lock",
                 "_owner", "_scheduled", "_waiting", "limit", "name")

    def __init__(self, name: str, limit: int | None = None) -> None:
        self.name = name
        self.limit = limit
        self._items: deque[Envelope[Any]] = deque()
        # The lock is used directly on the hot paths (a C-level context manager); the
        # condition only to sleep and wake, and put() notifies only when the owner sleeps.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0
        self._owner: object | None = None
        self._closed: str | None = None
        self._draining = False
        self._finishing = False  # closed to put(), open to put_control() (see finish())
        # An owner on a shared thread (see supervisor.dispatcher) does not wait in take():
        # it is scheduled through ``_listener`` when there is something for it to do.
        self._listener: Callable[[], None] | None = None
        self._scheduled = False

    # -- senders ---------------------------------------------------------------------------
    def put(self, envelope: Envelope[Any], /) -> None:
        # acquire/release rather than ``with``: this runs once per message sent, and the
        # with statement looks up and binds __enter__/__exit__ every time.
        lock = self._lock
        lock.acquire()
        try:
            if self._closed is not None:
                raise ActorNotRunning(self.name, self._closed)
            if self.limit is not None and len(self._items) >= self.limit:
                raise MailboxFull(self.name, self.limit)
            self._items.append(envelope)
            if self._waiting:
                self._cond.notify()
            wake = self._take_wake()
        finally:
            lock.release()
        if wake is not None:
            wake()

    def put_control(self, envelope: Envelope[Any], /) -> None:
        """Like :meth:`put`, but never refused for the size limit: for supervision traffic
        (a child's failure report, a supervisor's order to itself to restart it), which
        must get through or the failed child is never restarted; and for the notice that a
        reply to the owner's own ask is in, which must not be lost either. Refused once
        closed, except while finishing."""
        with self._lock:
            if self._closed is not None and not self._finishing:
                raise ActorNotRunning(self.name, self._closed)
            self._items.append(envelope)
            if self._waiting:
                self._cond.notify()
            wake = self._take_wake()
        if wake is not None:
            wake()

    # -- the owning actor ------------------------------------------------------------------
    def take(self, owner: object) -> Envelope[Any]:
        """Next envelope for ``owner``; blocks while empty; :class:`Detached` if not owner."""
        lock = self._lock
        lock.acquire()
        try:
            while True:
                if self._owner is not owner:
                    raise Detached
                if self._items:
                    return self._items.popleft()
                if self._draining:
                    self._owner = None
                    raise Detached
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
        finally:
            lock.release()

    def take_nowait(self, owner: object) -> Envelope[Any] | None:
        """Next envelope for ``owner``, or None when empty (the owner is then scheduled
        again by the next put); :class:`Detached` if not the owner. For shared threads."""
        with self._lock:
            if self._owner is not owner:
                raise Detached
            if self._items:
                return self._items.popleft()
            if self._draining:
                self._owner = None
                raise Detached
            self._scheduled = False
            return None

    def listen(self, owner: object, listener: Callable[[], None]) -> bool:
        """Schedule ``owner`` (on a shared thread) through ``listener`` whenever there is
        something to take, starting now; False (and nothing scheduled) if not the owner."""
        with self._lock:
            if self._owner is not owner:
                return False
            self._listener = listener
            self._scheduled = True
        listener()
        return True

    def _take_wake(self) -> Callable[[], None] | None:
        """With the lock held: the listener to call once it is released, so a scheduled
        owner notices a change (more messages, a drain, a detach); None if not needed."""
        listener = self._listener
        if listener is None or self._scheduled:
            return None
        self._scheduled = True
        return listener

    def take_run(self, owner: object, kind: type, limit: int) -> list[Envelope[Any]]:
        """The envelopes at the head whose message is exactly a ``kind``, at most ``limit``,
        without waiting; nothing for an instance that is not the owner. Order is kept: the
        run stops at the first other message."""
        run: list[Envelope[Any]] = []
        with self._lock:
            if self._owner is not owner:
                return run
            items = self._items
            while items and len(run) < limit and type(items[0].message) is kind:
                run.append(items.popleft())
        return run

    def get(self) -> Envelope[Any]:
        """pykka's inbox protocol; the runtime's loop uses :meth:`take`."""
        return self.take(self._owner)

    def empty(self) -> bool:
        return not self._items

    def __len__(self) -> int:
        return len(self._items)

    # -- the supervisor --------------------------------------------------------------------
    @property
    def owner(self) -> object | None:
        return self._owner

    @property
    def closed(self) -> str | None:
        return self._closed

    def attach(self, owner: object) -> None:
        """Make ``owner`` the only instance that may take; reopens a closed mailbox."""
        with self._cond:
            self._owner = owner
            self._closed = None
            self._draining = False
            self._finishing = False
            self._listener = None  # a shared-thread owner calls listen() once started
            self._scheduled = False
            self._cond.notify_all()

    def drain(self, reason: str) -> None:
        """Refuse new messages; the owner takes the ones waiting, then gets Detached."""
        with self._cond:
            self._closed = reason
            self._draining = True
            self._cond.notify_all()
            wake = self._take_wake()
        if wake is not None:
            wake()

    def finish(self, reason: str, first: Envelope[Any],
               keep: Callable[[Any], bool]) -> list[Envelope[Any]]:
        """Refuse ordinary messages from now on (``reason``), keep taking control ones; hand
        back the ones waiting except those whose message ``keep`` says stay, and put
        ``first`` ahead of those for the owner."""
        with self._cond:
            self._closed = reason
            self._finishing = True
            kept: deque[Envelope[Any]] = deque([first])
            drained: list[Envelope[Any]] = []
            for envelope in self._items:
                (kept if keep(envelope.message) else drained).append(envelope)
            self._items = kept
            self._cond.notify_all()
            wake = self._take_wake()
        if wake is not None:
            wake()
        return drained

    def detach(self, owner: object | None = None) -> None:
        """Take the mailbox from its owner (only from ``owner``, if given); keep the messages."""
        wake = None
        with self._cond:
            if owner is None or self._owner is owner:
                self._owner = None
                self._cond.notify_all()
                wake = self._take_wake()
        if wake is not None:
            wake()

    def close(self, reason: str) -> list[Envelope[Any]]:
        """Refuse new messages from now on and hand back the ones still waiting."""
        with self._cond:
            self._closed = reason
            self._owner = None
            self._draining = False
            self._finishing = False
            drained = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            wake = self._take_wake()
        if wake is not None:
            wake()
        return drained
