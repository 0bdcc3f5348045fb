"""Cell: the runtime's record of one named child, across all its incarnations.

A cell reaches its runtime through :class:`CellRuntime`, the named internal interface of
what a cell and the supervisor driving it need of the runtime (``supervisor.runtime.Runtime``
implements it). It implements ``supervisor.interfaces.ContextCell`` and ``ActorCell``.

Every cell has one owner (:class:`CellOwner`): the supervisor instance that adopted it
(``supervisor.supervisor.Supervisor``), or for the root the runtime's root keeper
(``supervisor.root_keeper.RootKeeper``). Only the owner's thread moves the cell:
:meth:`Cell.apply` and :meth:`Cell.record_error` raise :class:`NotOwner` on any other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from supervisor.actor import SupervisedActor
from supervisor.context import ActorContext
from supervisor.error_handler import Decision, ErrorHandler, Severity
from supervisor.errors import ActorNotRunning, StartFailed
from supervisor.events import EventKind, Subscription, SupervisionEvent
from supervisor.faults import FaultPlan
from supervisor.interfaces import ContextRuntime
from supervisor.latency import HandlerLatency
from supervisor.lifecycle import ChildState, Lifecycle, next_state
from supervisor.mailbox import Envelope, Mailbox
from supervisor.spec import ActorFactory, ChildSpec, SupervisorSpec

if TYPE_CHECKING:
    from supervisor.clock import Clock
    from supervisor.dispatcher import Dispatcher

log = logging.getLogger(__name__)

__all__ = [
    "Cell",
    "CellOwner",
    "CellRuntime",
    "ChildExited",
    "ChildFailed",
    "MakeSupervisor",
    "NotOwner",
]


class NotOwner(RuntimeError):
    """A cell moved from a thread that is not its owner's."""

    def __init__(self, child: str, owner: str) -> None:
        super().__init__(
            f"{child}: moved on thread {threading.current_thread().name!r}, "
            f"not by its owner ({owner})"
        )
        self.child = child
        self.owner = owner


class CellOwner(Protocol):
    """Who moves a cell: its supervisor instance, or the root keeper for the root."""

    @property
    def name(self) -> str: ...

    def holds(self) -> bool:
        """True on the thread the owner runs on now (the one that may move its cells)."""
        ...


@dataclass(frozen=True, slots=True)
class ChildFailed:
    """A child instance failed; sent to its supervisor."""

    child: str
    incarnation: int
    error: BaseException
    decision: Decision
    message_type: str
    was_ask: bool
    hung: bool = False


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child instance stopped by itself (``self.stop()``); sent to its supervisor."""

    child: str
    incarnation: int


MakeSupervisor = Callable[[SupervisorSpec, "Cell"], SupervisedActor]
"""Builds the supervisor instance of a cell whose spec is a supervisor's."""


class CellRuntime(ContextRuntime, Protocol):
    """What a cell, and the supervisor that drives its children's cells, need of the
    runtime (internal: ``supervisor.runtime.Runtime`` implements it)."""

    @property
    def chaos(self) -> FaultPlan | None: ...

    @property
    def error_handler(self) -> ErrorHandler: ...

    def dispatcher(self, name: str) -> Dispatcher: ...

    def has(self, name: str) -> bool: ...

    def cell_or_none(self, name: str) -> Cell | None: ...

    def child_report(self, cell: Cell, report: ChildFailed | ChildExited) -> None:
        """Deliver a report of ``cell``'s instance to its supervisor (the root's: handle it)."""
        ...

    def adopt(self, spec: ChildSpec, *, parent: str, handler: ErrorHandler,
              owner: CellOwner) -> Cell:
        """The cell for ``spec`` under ``parent``, owned by ``owner`` from now on: the
        existing one (its mailbox kept) or new."""
        ...

    def forget(self, name: str) -> None:
        """Remove ``name`` and every cell below it."""
        ...


class Cell:
    """Owns a child's mailbox (which survives restarts) and tracks its current instance.

    Only its owner (``owner``: the child's supervisor instance, or the root keeper) changes
    a cell's lifecycle fields, on the owner's thread; other threads read them. Its ``state``
    moves only by :meth:`apply`, which follows ``LIFECYCLE`` and raises :class:`NotOwner`
    on another thread.
    """

    def __init__(
        self,
        runtime: CellRuntime,
        spec: ChildSpec,
        parent: str | None,
        error_handler: ErrorHandler,
        make_supervisor: MakeSupervisor,
        *,
        owner: CellOwner,
    ) -> None:
        self.runtime = runtime
        self.owner = owner  # set again when another supervisor instance adopts the cell
        self.make_supervisor = make_supervisor
        self.spec = spec
        self.name = spec.id
        self.parent = parent
        self.error_handler = error_handler
        self.mailbox = Mailbox(spec.id, spec.mailbox_limit)
        self.actor: SupervisedActor | None = None
        self.incarnation = 0
        self._state = ChildState.STOPPED
        self.started_at = 0.0
        self.restarts = 0
        self.consecutive_failures = 0
        self.using_fallback = False
        self.closing = False  # set before a supervisor cell stops for good
        self.last_error: str | None = None
        self.extra_children: list[ChildSpec] = []  # added with start_child; kept across restarts
        self.replaced_children: dict[str, ChildSpec] = {}  # new specs from a reload; kept too
        self.latency = HandlerLatency()  # handler durations, across incarnations
        self.published: Any = None  # the actor's latest published snapshot (immutable)
        plan = runtime.chaos  # fault injection (supervisor.faults): None when off
        self.chaos = plan.injector(spec.id, is_supervisor=spec.is_supervisor) if plan else None
        # Event subscriptions that belong to the name, not to one instance (see
        # ActorContext.subscribe_events); ended when the child stops for good.
        self.subscriptions: dict[str, Subscription] = {}

    @property
    def state(self) -> ChildState:
        """Where the child is in its lifecycle (moved only by :meth:`apply`)."""
        return self._state

    def apply(self, event: Lifecycle) -> ChildState:
        """Move the child by ``event`` as ``LIFECYCLE`` says; raises IllegalTransition,
        or NotOwner off its owner's thread."""
        if not self.owner.holds():
            raise NotOwner(self.name, self.owner.name)
        self._state = next_state(self._state, event, self.name)
        return self._state

    def crashed(self, error: BaseException) -> None:
        """Its running instance failed and is gone: in CRASHED, with the failure's text."""
        actor = self.actor
        if actor is not None:
            self.mailbox.detach(actor)
        self.actor = None
        self.record_error(error)
        self.apply(Lifecycle.CRASH)

    def record_error(self, error: BaseException) -> None:
        """Keep ``error``'s text as the child's last error (shown in the tree); raises
        NotOwner off its owner's thread."""
        if not self.owner.holds():
            raise NotOwner(self.name, self.owner.name)
        self.last_error = f"{type(error).__name__}: {error}"

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def dispatcher(self, name: str) -> Dispatcher:
        """The runtime's shared thread called ``name``."""
        return self.runtime.dispatcher(name)

    @property
    def shutdown_budget(self) -> float:
        """Seconds a stop may take after any linger: for a supervisor, its whole subtree's
        budget (its children's lingers included)."""
        return _budget(self.spec, "shutdown") + _budget(self.spec, "linger") - self.spec.linger

    @property
    def start_budget(self) -> float:
        """Seconds a start may take: for a supervisor, its whole subtree's budget."""
        return _budget(self.spec, "start_timeout")

    # -- reports from the actor's own thread ------------------------------------------------
    def report_failure(
        self,
        incarnation: int,
        exc: BaseException,
        decision: Decision,
        message: Any,
        *,
        was_ask: bool,
        hung: bool = False,
    ) -> None:
        """Send the failure to the supervisor, which records its text and applies it."""
        self.runtime.child_report(
            self,
            ChildFailed(
                self.name,
                incarnation,
                exc,
                decision,
                type(message).__name__,
                was_ask,
                hung,
            ),
        )

    def report_exit(self, incarnation: int) -> None:
        self.runtime.child_report(self, ChildExited(self.name, incarnation))

    # -- lifecycle, driven by the supervisor --------------------------------------------------
    def factory(self) -> ActorFactory:
        if self.using_fallback and self.spec.fallback is not None:
            return self.spec.fallback.factory
        if self.spec.factory is not None:
            return self.spec.factory
        sup_spec = self.spec.supervisor
        assert sup_spec is not None
        return lambda: self.make_supervisor(sup_spec, self)

    def start_instance(self) -> BaseException | None:
        """Build and start a new instance; its on_start has finished when this returns.

        Returns None on success, else the reason it failed (the instance is then gone).
        """
        self.apply(Lifecycle.START)
        try:
            actor = self.factory()()
            if not isinstance(actor, SupervisedActor):
                raise TypeError(
                    f"factory of {self.name!r} returned {type(actor).__name__}, "
                    "not a SupervisedActor"
                )
        except BaseException as exc:  # a broken factory is a start failure
            self.record_error(exc)
            self.apply(Lifecycle.START_FAILED)
            log.error("could not build %s", self.name, exc_info=exc)
            return exc
        self.incarnation += 1
        self.actor = actor
        self.mailbox.attach(actor)
        actor.launch(self, ActorContext(self.runtime, self, actor))
        budget = self.start_budget
        timed_out = False
        try:
            error = actor.wait_started(budget)
        except pykka.Timeout:
            timed_out = True
            error = StartFailed(self.name, f"on_start did not finish within {budget:g}s")
        if error is not None:
            self.mailbox.detach(actor)
            if timed_out:  # still in on_start, or its turn not yet come (shared thread)
                actor.give_up()  # unregistered now; a shared thread it blocks is abandoned
            self.actor = None
            self.record_error(error)
            self.apply(Lifecycle.START_FAILED)
            log.error("%s failed to start", self.name, exc_info=error)
            return error
        self.started_at = self.clock.now()
        self.apply(Lifecycle.STARTED)
        return None

    def stop_instance(self, *, close: bool, reason: str) -> None:
        """Stop the running instance after its current message, within the shutdown budget.

        ``close`` also refuses further messages and fails those still waiting (stop for
        good); otherwise they stay queued for the next instance (stop for a restart). An
        instance stopped for good that lingers (``SupervisedActor.on_stopping``) first goes
        on taking the replies to its own asks, for the child's ``linger`` at most.
        """
        actor = self.actor
        self.closing = close
        drained: list[Envelope[Any]] = []
        lingering = False
        if close and self.spec.drain_on_stop and actor is not None:
            self.mailbox.drain(reason)  # handle what is waiting first, within the budget
        elif close and actor is not None and actor.lingers and self.spec.linger > 0:
            drained = actor.ask_to_finish(reason)
            lingering = True
        elif close:
            drained = self.mailbox.close(reason)
        elif actor is not None:
            self.mailbox.detach(actor)
        if actor is not None:
            if lingering:
                self._linger(actor)
            budget = self.shutdown_budget
            finished = actor.join(budget)
            if close and (self.spec.drain_on_stop or lingering):
                drained += self.mailbox.close(reason)  # whatever the budget did not cover
            if not finished:
                actor.stop_overran(replaced=not close)
                self.emit(
                    EventKind.SHUTDOWN_TIMEOUT,
                    Severity.ERROR,
                    reason=f"still busy after {budget:g}s; its thread is abandoned "
                    "and will never take another message",
                )
        self.actor = None
        if close:
            self.end_subscriptions()
        if drained:
            self.fail_drained(drained, reason)

    def _linger(self, actor: SupervisedActor) -> None:
        """Let ``actor`` handle the answers it waits for until it ends by itself, or the
        child's ``linger`` has passed on the runtime's clock (or as many real seconds):
        then its mailbox is taken from it, and it runs ``on_stop`` after its message."""
        linger = self.spec.linger
        timer = self.clock.call_later(linger, lambda: self.mailbox.detach(actor))
        try:
            if not actor.join(linger):
                self.mailbox.detach(actor)
        finally:
            timer.cancel()

    def end_subscriptions(self) -> None:
        """Cancel the child's event subscriptions (it stopped for good)."""
        subs, self.subscriptions = self.subscriptions, {}
        for sub in subs.values():
            sub.cancel()

    def fail_drained(self, envelopes: list[Envelope[Any]], reason: str) -> None:
        """Fail waiting asks with ActorNotRunning and count tells as dead letters."""
        tells = 0
        for env in envelopes:
            if env.reply_to is not None:
                err = ActorNotRunning(self.name, reason)
                env.reply_to.set_exception(exc_info=(type(err), err, None))
            else:
                tells += 1
        if tells:
            self.runtime.count_dead_letters(tells)
            self.emit(
                EventKind.DEAD_LETTER,
                Severity.WARNING,
                reason=f"{tells} message(s) undelivered: {reason}",
                count=tells,
            )

    def emit(
        self,
        kind: EventKind,
        severity: Severity,
        *,
        reason: str = "",
        error: BaseException | str | None = None,
        delay: float | None = None,
        count: int = 1,
        message_type: str | None = None,
    ) -> None:
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        clock = self.clock
        self.runtime.events.publish(
            SupervisionEvent(
                kind=kind,
                actor=self.name,
                supervisor=self.parent,
                severity=severity,
                reason=reason,
                error=error,
                delay=delay,
                incarnation=self.incarnation,
                at=clock.wall(),
                monotonic=clock.now(),
                count=count,
                message_type=message_type,
            )
        )


def _budget(spec: ChildSpec, field: str) -> float:
    own = float(getattr(spec, field))
    if spec.supervisor is None:
        return own
    return own + sum(_budget(c, field) for c in spec.supervisor.children)
