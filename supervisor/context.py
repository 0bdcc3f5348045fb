"""ActorContext: the runtime as one actor instance sees it.

The context reaches its cell and its runtime through two named internal interfaces,
:class:`~supervisor.interfaces.ContextCell` and :class:`~supervisor.interfaces.ContextRuntime`:
what it needs of them, and all it knows of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from supervisor.clock import Clock, TimerHandle
from supervisor.errors import MailboxFull, RuntimeErrorBase, WouldDeadlock
from supervisor.events import EventBus, SupervisionEvent
from supervisor.faults import ActorFaults
from supervisor.future import NotifyingFuture, ReplyFuture
from supervisor.interfaces import ContextCell, ContextRuntime
from supervisor.mailbox import Envelope

if TYPE_CHECKING:
    import pykka

__all__ = ["TIMER_RETRY", "ActorContext", "Replied"]

TIMER_RETRY = 0.1  # seconds between tries of a timer message a full mailbox refused

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Replied:
    """Told to an actor when the reply to one of its :meth:`ActorContext.ask_notify` asks
    has arrived; ``token`` is what it passed."""

    token: Any


class ActorContext:
    """Owns one actor instance's view of the runtime and the timers it scheduled.

    Actors reach each other by name (``tell``/``ask``), never by a stored ref, so a
    restarted actor is found again. Timers scheduled with :meth:`schedule` belong to this
    instance: they are cancelled when it stops, so a replacement never inherits them. An
    instance given up as hung (:meth:`give_up`) no longer publishes for its name either.
    """

    def __init__(self, runtime: ContextRuntime, cell: ContextCell, owner: object) -> None:
        self._runtime = runtime
        self._cell = cell
        self._owner = owner  # the instance this context belongs to (it owns the mailbox)
        self.incarnation = cell.incarnation
        self._timers: set[TimerHandle] = set()
        self._timers_lock = threading.Lock()
        self._closed = False
        self._given_up = False  # replaced while still running: nothing it does is its name's

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def settings(self) -> dict[str, Any]:
        return self._cell.spec.settings

    @property
    def clock(self) -> Clock:
        return self._runtime.clock

    @property
    def events(self) -> EventBus:
        return self._runtime.events

    @property
    def runtime(self) -> ContextRuntime:
        """The runtime this actor runs in (its extensions are reached through it)."""
        return self._runtime

    @property
    def chaos(self) -> ActorFaults | None:
        """This actor's fault injector (None when nothing is injected into it): storage
        calls ``chaos.before_write(path)`` before writing state (see supervisor.faults)."""
        return self._cell.chaos

    @property
    def given_up(self) -> bool:
        """True once this instance was given up (hung, or its start overran): nothing it
        sends to its own name, publishes or subscribes reaches its name any more."""
        return self._given_up

    @property
    def stopping_for_good(self) -> bool:
        """True while this instance stops with no replacement to follow (not a restart)."""
        return self._cell.closing

    def subscribe_events(
        self, key: str, wanted: Callable[[SupervisionEvent], bool] | None = None
    ) -> None:
        """Forward supervision events (those ``wanted``) into this actor's mailbox.

        The subscription belongs to the child's name, not to this instance: events
        published while the actor restarts (its own crash included) wait in the mailbox
        for the replacement, and a replacement calling this again with the same ``key``
        adds nothing. It ends when the child stops for good.
        """
        cell = self._cell
        if key in cell.subscriptions or self._given_up:
            return
        name, runtime = cell.name, self._runtime

        def forward(event: SupervisionEvent) -> None:
            if cell.closing:
                return  # stopping for good: nothing would read it
            if wanted is None or wanted(event):
                runtime.try_tell(name, event)

        cell.subscriptions[key] = runtime.events.subscribe(forward)

    def pending(self) -> int:
        """How many messages wait in this actor's mailbox (for batching decisions)."""
        return len(self._cell.mailbox)

    def take_run(self, kind: type[M], limit: int) -> list[tuple[M, pykka.Future[Any] | None]]:
        """Take the messages of exactly type ``kind`` that wait at the head of the mailbox
        (at most ``limit``, without waiting), each with its reply future (None for a tell).

        For an actor that handles a run of like messages at once, e.g. a group commit: one
        lock for the run instead of one trip through the loop per message. The order of
        the mailbox is kept (the run stops at the first other message). The actor now owns
        these messages: it must answer every reply future itself, also when it fails
        (``on_failure``); they are not redelivered to a replacement.
        """
        run = self._cell.mailbox.take_run(self._owner, kind, limit)
        return [(envelope.message, envelope.reply_to) for envelope in run]

    def publish(self, snapshot: Any) -> None:
        """Make an immutable ``snapshot`` of this actor's state readable by anyone, lock-free.

        For state read on hot paths (e.g. "may I go on?") where an ask would cost too much.
        The actor stays the only writer; readers get whole snapshots, never a half-update.
        The last snapshot stays readable while the actor restarts. An instance given up as
        hung publishes nothing: the name's snapshot is its replacement's.
        """
        if not self._given_up:
            self._cell.published = snapshot

    def peek(self, name: str) -> Any:
        """The snapshot ``name`` last published (None if it never did)."""
        return self._runtime.peek(name)

    def tell(self, name: str, message: Any) -> None:
        """Queue ``message`` for ``name``; raises UnknownActor/ActorNotRunning/MailboxFull.

        From an instance given up as hung, a message to its own name (its replacement's
        now) is a dead letter."""
        if self._given_up and name == self._cell.name:
            self._runtime.count_dead_letters(1)
            return
        self._runtime.tell(name, message)

    def try_tell(self, name: str, message: Any) -> bool:
        """Like :meth:`tell`, but a refused message is counted as a dead letter, not raised."""
        if self._given_up and name == self._cell.name:
            self._runtime.count_dead_letters(1)
            return False
        return self._runtime.try_tell(name, message)

    def ask(self, name: str, message: Any, *, timeout: float | None = None) -> Any:
        """Send and wait for the reply, at most ``timeout`` (default: the runtime's ask timeout).

        Refused at once (:class:`WouldDeadlock`) when ``name`` shares this actor's thread.
        """
        thread = self._cell.spec.thread
        if thread is not None:
            target = self._runtime.cell_or_none(name)
            if target is not None and target.spec.thread == thread:
                raise WouldDeadlock(self._cell.name, name, thread)
        return self._runtime.ask(name, message, timeout=timeout)

    def ask_future(self, name: str, message: Any) -> ReplyFuture[Any]:
        """Send and return the reply future; ``get`` it with a timeout."""
        return self._runtime.ask_future(name, message)

    def ask_notify(self, name: str, message: Any, token: Any) -> ReplyFuture[Any]:
        """Send ``message`` as an ask without waiting: the reply future is returned, and
        when the reply is set this actor is told :class:`Replied` (``token``), so it reads
        the reply when it is there instead of blocking its mailbox for it."""
        mailbox, runtime = self._cell.mailbox, self._runtime

        def notify() -> None:  # a control message: never refused for a full mailbox, and
            try:  # still taken while the instance finishes (SupervisedActor.on_stopping)
                mailbox.put_control(Envelope(Replied(token)))
            except RuntimeErrorBase:
                runtime.count_dead_letters(1)

        return runtime.ask_future(name, message, NotifyingFuture(notify))

    def schedule(self, delay: float, message: Any) -> TimerHandle:
        """Tell this actor ``message`` after ``delay`` seconds, unless it has stopped by then.

        A timer's message is not lost to a full mailbox: it is told again every
        ``TIMER_RETRY`` seconds until the mailbox takes it (the handle returned cancels the
        first try only; a stop cancels them all)."""
        def fire() -> None:
            with self._timers_lock:
                self._timers.discard(handle)
                if self._closed:
                    return
            try:
                self._runtime.tell(self._cell.name, message)
            except MailboxFull:
                self.schedule(TIMER_RETRY, message)
            except RuntimeErrorBase:
                self._runtime.count_dead_letters(1)

        # the lock is held until ``handle`` is bound and kept: a clock thread that fires the
        # timer at once (a delay of 0) waits in ``fire`` for it instead of failing on it
        with self._timers_lock:
            handle = self.clock.call_later(delay, fire)
            if self._closed:
                handle.cancel()
            else:
                self._timers.add(handle)
        return handle

    # -- runtime side: called by the instance's message loop (supervisor.actor) ------------
    def give_up(self) -> None:
        """This instance was replaced while its handler still ran: close it, and ignore
        what it publishes or subscribes from now on."""
        self._given_up = True
        self.close()

    def close(self) -> None:
        """The instance has ended: cancel its timers; it schedules none from now on."""
        with self._timers_lock:
            self._closed = True
            timers = list(self._timers)
            self._timers.clear()
        for handle in timers:
            handle.cancel()
