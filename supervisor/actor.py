"""SupervisedActor: a pykka ThreadingActor whose message loop belongs to the runtime.

It implements pykka's documented extension point (``_start_actor_loop``): the inbox is the
child's :class:`~supervisor.mailbox.Mailbox`, which outlives the instance; every failure
of a ``tell`` or an ``ask`` (``BaseException`` too) is classified by the supervisor's
error handler, and an ask's caller gets it as well; each handler's start is recorded, so
a hung instance can be reported and *given up* (:meth:`SupervisedActor.give_up`). The loop
reaches its cell through :class:`~supervisor.interfaces.ActorCell`; the methods of the
"runtime side" section are the cell's and the runtime's, not for subclasses to call. What
pykka leaves open and what this loop guarantees instead: ``docs/runtime.md``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka
from pykka import ActorRegistry
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr, _ActorStop

from supervisor.context import ActorContext, Replied
from supervisor.error_handler import Directive, Severity
from supervisor.errors import ActorCrashed
from supervisor.interfaces import ActorCell
from supervisor.mailbox import Detached, Envelope

if TYPE_CHECKING:
    from supervisor.dispatcher import Dispatcher

log = logging.getLogger(__name__)

_STEP_MESSAGES = 64  # messages one actor handles on a shared thread before the next one

# pykka's own messages, handled by pykka's dispatcher; everything else goes straight to
# on_receive (the same result, without four isinstance checks per message).
_PYKKA_MESSAGES = (ProxyCall, ProxyGetAttr, ProxySetAttr)

__all__ = ["SupervisedActor"]


class _Finish:
    """Put first in the mailbox of an instance stopped for good that may linger: it is
    asked ``on_stopping`` there, on its own thread."""


_FINISH = _Finish()


def _is_reply(message: object) -> bool:
    return type(message) is Replied


class SupervisedActor(pykka.ThreadingActor):
    """Base class of every actor in the tree; owns nothing but its own state.

    Subclass it like any pykka actor (``on_start``, ``on_receive``, ``on_stop``, methods
    called through proxies). The runtime builds instances through a factory and starts them
    itself; :attr:`ctx` is available from ``on_start`` on.
    """

    use_daemon_thread = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cell: ActorCell | None = None
        self._ctx: ActorContext | None = None
        self._thread: threading.Thread | None = None
        self._incarnation = 0
        self._busy_since = 0.0  # clock reading when the current handler started; 0: idle
        self._busy_message: Any = None
        self._reply_to: pykka.Future[Any] | None = None
        self._reply_deferred = False
        self._started: pykka.ThreadingFuture[BaseException | None] = pykka.ThreadingFuture()
        self._dispatcher: Dispatcher | None = None  # a shared thread, or None: its own
        self._ended = threading.Event()  # set when this instance has finished (shared thread)
        self._step_thread: threading.Thread | None = None  # shared: running its turn now
        self._given_up = False  # hung or overran its start; replaced (see give_up)
        self._lingering = False  # stopped for good, still handling the answers it waits for

    # -- what subclasses use -----------------------------------------------------------------
    @property
    def ctx(self) -> ActorContext:
        """The runtime as this actor sees it: its name, the clock, tell/ask by name."""
        if self._ctx is None:
            raise RuntimeError(
                f"{type(self).__name__}.ctx is available from on_start on, "
                "once the runtime has started the actor"
            )
        return self._ctx

    def defer_reply(self) -> pykka.Future[Any] | None:
        """Take over the reply of the ask being handled (None for a tell).

        The loop will not answer it when the handler returns; the actor must ``set`` or
        ``set_exception`` the returned future itself, later (e.g. after a group commit).
        """
        self._reply_deferred = True
        return self._reply_to

    def on_stopping(self) -> bool:
        """Stopped for good (not for a restart): True to go on handling messages until
        the answers it waits for are in. Asked on its own thread when the stop comes, and
        again after every message it handles meanwhile; ``on_stop`` follows the first
        False. Meanwhile only replies to its own asks (:class:`~supervisor.context.Replied`)
        reach it, its timers are cancelled, and its child's ``linger`` bounds the whole
        (then ``on_stop`` runs all the same). The default, False: stop at once.

        An actor whose last answers matter (fills to record) overrides it instead of
        waiting in ``on_stop``, which would hold a shared thread and its thread-mates."""
        return False

    # -- runtime side: the cell and the runtime drive the instance (not for subclasses) ------
    @property
    def lingers(self) -> bool:
        """Whether this actor's class overrides :meth:`on_stopping` (may linger)."""
        return type(self).on_stopping is not SupervisedActor.on_stopping

    def ask_to_finish(self, reason: str) -> list[Envelope[Any]]:
        """Stopped for good, and it may linger: its mailbox refuses ordinary messages
        (``reason``) from now on, and this instance is asked :meth:`on_stopping` first
        thing. Returns the ordinary messages that were waiting (replies stay). Any thread."""
        cell = self._cell
        assert cell is not None
        return cell.mailbox.finish(reason, Envelope(_FINISH), _is_reply)

    @property
    def incarnation(self) -> int:
        """Which instance of its child this is (1 for the first); 0 before :meth:`launch`."""
        return self._incarnation

    @property
    def busy_since(self) -> float:
        """The clock reading when the current handler started; 0.0 when idle."""
        return self._busy_since

    @property
    def busy_message(self) -> Any:
        """The message the current (or last) handler was given."""
        return self._busy_message

    def launch(self, cell: ActorCell, ctx: ActorContext) -> None:
        """Start this (constructed, not yet started) instance on ``cell``'s mailbox."""
        self._cell = cell
        self._ctx = ctx
        self._incarnation = ctx.incarnation
        self.actor_inbox = cell.mailbox
        self._actor_ref.actor_inbox = cell.mailbox
        ActorRegistry.register(self.actor_ref)
        self._start_actor_loop()

    def _start_actor_loop(self) -> None:
        cell = self._cell
        assert cell is not None
        if cell.spec.thread is not None:
            self._dispatcher = cell.dispatcher(cell.spec.thread)
            self._dispatcher.submit(self._start_shared)
            return
        thread = threading.Thread(
            target=self._actor_loop,
            name=f"botvisor:{cell.name}#{cell.incarnation}",
            daemon=True,
        )
        self._thread = thread
        thread.start()

    def wait_started(self, timeout: float) -> BaseException | None:
        """The exception ``on_start`` raised, None on success; raises pykka.Timeout."""
        result: BaseException | None = self._started.get(timeout=timeout)
        return result

    def give_up(self) -> None:
        """The runtime no longer waits for this instance (its handler hung, or its on_start
        overran): it leaves pykka's registry and its context closes (its timers are
        cancelled, its snapshots and tells to itself ignored) and its ref refuses messages,
        so nothing it does if it ever comes back reaches its name; its mailbox is already
        someone else's. On a shared thread, the thread it blocks is abandoned, so its
        thread-mates go on on a fresh one. Any thread."""
        self._given_up = True
        self.actor_stopped.set()  # its own ref refuses it (it feeds the name's mailbox)
        ActorRegistry.unregister(self.actor_ref)
        if self._ctx is not None:
            self._ctx.give_up()
        self.free_thread()

    def stop_overran(self, *, replaced: bool) -> None:
        """Its stop took longer than its shutdown budget: the runtime waits no more. It
        leaves pykka's registry; if a replacement follows (``replaced``) it is given up. On
        a shared thread, the thread holding its stop back (its own turn, or the turn of a
        thread-mate before it) is abandoned, so the mates' stops and turns go on. Any
        thread."""
        if replaced:
            self.give_up()
        else:
            ActorRegistry.unregister(self.actor_ref)
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.abandon(self._step_thread or dispatcher.thread)

    def free_thread(self) -> bool:
        """On a shared thread: abandon the thread running this instance's turn (a message
        or its on_start) right now, if it is the dispatcher's current one (True). Any
        thread."""
        dispatcher, thread = self._dispatcher, self._step_thread
        if dispatcher is None or thread is None:
            return False
        return dispatcher.abandon(thread)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the instance to end; True when it has."""
        if self._dispatcher is not None:
            me = threading.current_thread()
            if me is self._dispatcher.thread or me is self._step_thread:
                return self._ended.is_set()  # cannot wait for itself
            return self._ended.wait(timeout)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- the loop ----------------------------------------------------------------------------
    def _actor_loop(self) -> None:
        cell = self._cell
        assert cell is not None
        try:
            self.on_start()
        except BaseException as exc:
            self._finish()
            self._started.set(exc)
            return
        self._started.set(None)
        self._run(cell)

    def _run(self, cell: ActorCell) -> None:
        mailbox = cell.mailbox
        while True:
            try:
                envelope = mailbox.take(self)
            except Detached:
                self._finish()
                self._call_hook(self.on_stop)
                return
            if not self._handle_envelope(cell, envelope):
                return

    # -- on a shared thread (supervisor.dispatcher) ------------------------------------------
    def _start_shared(self) -> None:
        cell = self._cell
        assert cell is not None
        if self._given_up or cell.mailbox.owner is not self:
            self._finish()  # its start timed out before its turn came: it never starts
            self._ended.set()
            return
        self._step_thread = threading.current_thread()
        try:
            self.on_start()
        except BaseException as exc:
            self._step_thread = None
            self._finish()
            self._started.set(exc)
            self._ended.set()
            return
        self._step_thread = None
        self._started.set(None)
        if not cell.mailbox.listen(self, self._schedule):  # given up while it started
            self._finish()
            self._call_hook(self.on_stop)
            self._ended.set()

    def _schedule(self) -> None:
        assert self._dispatcher is not None and self._cell is not None
        self._dispatcher.submit(self._step, self._cell.spec.urgent)

    def _step(self) -> None:
        """Handle what waits for this instance, a few messages at a time: then its
        thread-mates get their turn and this instance is scheduled again."""
        self._step_thread = threading.current_thread()
        try:
            self._take_turn()
        finally:
            self._step_thread = None

    def _take_turn(self) -> None:
        cell = self._cell
        assert cell is not None
        mailbox = cell.mailbox
        for _ in range(_STEP_MESSAGES):
            try:
                envelope = mailbox.take_nowait(self)
            except Detached:
                if not self._ended.is_set():
                    self._finish()
                    self._call_hook(self.on_stop)
                    self._ended.set()
                return
            if envelope is None:
                return
            if not self._handle_envelope(cell, envelope):
                self._ended.set()
                return
        self._schedule()

    # -- one message ---------------------------------------------------------------------
    def _handle_envelope(self, cell: ActorCell, envelope: Any) -> bool:
        """Handle one envelope; False when this instance has ended (stopped or failed)."""
        message = envelope.message
        if type(message) is _Finish:
            return self._linger_or_end()
        if type(message) is _ActorStop:
            # self.stop() or ActorRef.stop(): the actor ends by itself (a normal exit).
            self._finish()
            self._call_hook(self.on_stop)
            if envelope.reply_to is not None:
                envelope.reply_to.set(None)
            cell.report_exit(self._incarnation)
            return False
        now = cell.clock.now
        self._busy_message = message
        reply_to = self._reply_to = envelope.reply_to
        self._busy_since = started = now()
        chaos = cell.chaos
        try:
            if chaos is not None:  # fault injection (supervisor.faults); None when off
                chaos.inject(message, cell.spec.handler_deadline)
            if isinstance(message, _PYKKA_MESSAGES):
                response = self._handle_receive(message)  # proxies: pykka's own way
            else:
                response = self.on_receive(message)
        except BaseException as exc:  # classified and reported; never escapes the thread
            self._busy_since = 0.0
            if self._reply_deferred:
                self._reply_deferred = False
                reply_to = None  # the actor took the reply over; it answers it itself
            return self._failed(cell, reply_to, message, exc)
        cell.latency.record(now() - started)
        self._busy_since = 0.0
        if self._reply_deferred:
            self._reply_deferred = False
        elif reply_to is not None:
            reply_to.set(response)
        if self._lingering:
            return self._linger_or_end()
        return True

    def _linger_or_end(self) -> bool:
        """Stopped for good: go on (True) while ``on_stopping`` says so, else end now."""
        try:
            linger = bool(self.on_stopping())
        except BaseException:
            log.exception("%s.on_stopping raised; it stops now", type(self).__name__)
            linger = False
        if linger:
            if not self._lingering and self._ctx is not None:
                self._ctx.close()  # its timers end: only the answers it waits for come in
            self._lingering = True
            return True
        self._lingering = False
        self._finish()
        self._call_hook(self.on_stop)
        return False

    def _failed(
        self,
        cell: ActorCell,
        reply_to: pykka.Future[Any] | None,
        message: Any,
        exc: BaseException,
    ) -> bool:
        """Handle a handler's exception; True when the actor keeps running (resume)."""
        if reply_to is not None:
            err: BaseException = exc
            if not isinstance(exc, Exception):
                err = ActorCrashed(cell.name, exc)
                err.__cause__ = exc
            reply_to.set_exception(exc_info=(type(err), err, err.__traceback__))
        if self._given_up:  # reported as hung and replaced already: nothing to decide
            log.warning("%s (given up as hung) failed when it came back: %r", cell.name, exc)
            self._finish()
            self._call_hook(self.on_failure, type(exc), exc, exc.__traceback__)
            return False
        decision = cell.error_handler.classify(exc)
        if decision.severity >= Severity.ERROR:
            log.log(
                int(decision.severity),
                "%s failed handling %s (%s -> %s)",
                cell.name,
                _describe(message),
                decision.matched,
                decision.directive.value,
                exc_info=exc,
            )
        keep = decision.directive is Directive.RESUME
        if not keep:
            self._finish()
            self._call_hook(self.on_failure, type(exc), exc, exc.__traceback__)
        cell.report_failure(self._incarnation, exc, decision, message,
                            was_ask=reply_to is not None)
        return keep

    def _finish(self) -> None:
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        if self._ctx is not None:
            self._ctx.close()

    def _call_hook(self, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except BaseException:
            name = self._cell.name if self._cell else type(self).__name__
            log.exception("%s.%s raised", name, getattr(hook, "__name__", "hook"))

    # pykka's signature, kept for subclasses that override it.
    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Called in the actor's thread when a failure ends this instance."""


def _describe(message: Any) -> str:
    attr_path = getattr(message, "attr_path", None)
    if attr_path is not None:
        return f"call {'.'.join(attr_path)}()"
    return type(message).__name__
