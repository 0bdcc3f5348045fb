"""Runtime: one actor system — named cells, clock, events, error handler, and the root.

The root's cell is owned by a :class:`~supervisor.root_keeper.RootKeeper`: its start, its
reports and the runtime's stop are tasks run in order on the keeper's thread (who owns
which cell: ``docs/runtime.md``, *Who moves a cell*).
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any

import pykka

from supervisor.cell import Cell, CellOwner, ChildExited, ChildFailed
from supervisor.clock import Clock, SystemClock
from supervisor.commands import (
    ChildInfo,
    CountChildren,
    DeleteChild,
    Refused,
    ReplaceChild,
    RestartChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from supervisor.dispatcher import Dispatcher
from supervisor.error_handler import Directive, ErrorHandler, Severity
from supervisor.errors import (
    ActorNotRunning,
    AskTimeout,
    MailboxFull,
    StartFailed,
    UnknownActor,
)
from supervisor.events import EventBus, EventKind
from supervisor.extensions import Extensions
from supervisor.faults import FaultPlan
from supervisor.future import ReplyFuture
from supervisor.hang_monitor import HangMonitor
from supervisor.lifecycle import Lifecycle
from supervisor.mailbox import Envelope
from supervisor.root_keeper import RootKeeper
from supervisor.spec import ChildSpec, SupervisorSpec
from supervisor.supervisor import Supervisor
from supervisor.tree_view import TreeNode, snapshot

log = logging.getLogger(__name__)

__all__ = ["Runtime"]

# Seconds a stop may take beyond the tree's own shutdown budget, for each shared thread, the
# clock and a margin (the stop waits up to 5 s for each shared thread and the clock to end).
_STOP_GRACE = 5.0


class Runtime:
    """Owns one actor system: every named cell and its mailbox, the clock, the event bus,
    the default error handler, the hung-handler monitor, the root supervisor, the
    extensions others keep with it (``extensions``, closed when it stops), and the fault
    plan it consults (``chaos``, None unless fault injection is on).

    Actors and callers address children by name: ``tell``, ``ask``. A message sent while
    its target restarts waits in the target's mailbox and reaches the replacement; a
    message to a child stopped for good fails fast with :class:`ActorNotRunning`.

    The root's cell is moved only on the root keeper's thread: :meth:`start` hands it the
    root's start, the root's reports reach it as tasks, and :meth:`stop` hands it the stop
    (its last task) and waits for it.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        error_handler: ErrorHandler | None = None,
        ask_timeout: float = 5.0,
        monitor_interval: float = 0.25,
        event_history: int = 1000,
        chaos: FaultPlan | None = None,
    ) -> None:
        if ask_timeout <= 0:
            raise ValueError("ask_timeout must be > 0: every ask has a timeout")
        self.clock: Clock = clock or SystemClock()
        self.events = EventBus(event_history)
        self.error_handler = error_handler or ErrorHandler()
        self.ask_timeout = ask_timeout
        self.monitor_interval = monitor_interval
        # Fault injection (supervisor.faults): None when off; each cell takes its injector.
        self.chaos = chaos
        self._cells: dict[str, Cell] = {}
        self._root: Cell | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._hangs = HangMonitor(self.clock, monitor_interval,
                                  lambda: list(self._cells.values()))
        self._stopped = False
        self._stop_calls = itertools.count()  # the first stop() hands the stop over
        self._stop_done: Future[None] = Future()  # set by the keeper when the stop is done
        self._keeper = RootKeeper()
        self._dispatchers: dict[str, Dispatcher] = {}  # shared threads, by name
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.dead_letters = 0
        self.extensions = Extensions()

    # -- building ----------------------------------------------------------------------------
    def start(
        self,
        spec: SupervisorSpec,
        *,
        name: str = "root",
        shutdown: float = 5.0,
    ) -> None:
        """Start the tree described by ``spec`` under a root supervisor named ``name``.

        Returns once every child has started (or failed to and been handed to its
        supervisor); raises :class:`StartFailed` if the root itself cannot start.
        """
        if self._root is not None:
            raise RuntimeError("this runtime has already been started")
        if self._stopped:
            raise RuntimeError("this runtime has been stopped")
        names = [name, *spec.all_ids()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"actor names must be unique in the tree; repeated: {dupes}")
        keeper = self._keeper
        root = Cell(self, ChildSpec(id=name, supervisor=spec, shutdown=shutdown), None,
                    self.error_handler, Supervisor, owner=keeper)
        self._cells[name] = root
        self._root = root
        starting = keeper.submit(partial(self._start_root, root))
        if starting.cancelled():  # stop() came first, from another thread
            raise RuntimeError("this runtime has been stopped")
        # Bounded by the root's start budget (start_instance waits no longer for on_start).
        error = starting.result()
        if error is not None:
            self.stop()
            raise StartFailed(name, f"{type(error).__name__}: {error}") from error
        self._hangs.start()

    def _start_root(self, root: Cell) -> BaseException | None:
        """The root keeper's: start the root's instance (and so the tree)."""
        error = root.start_instance()
        if error is None:
            root.emit(EventKind.STARTED, Severity.INFO, reason="tree is up")
        return error

    @property
    def root_name(self) -> str | None:
        return self._root.name if self._root else None

    # -- addressing --------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self._cells

    def cell(self, name: str) -> Cell:
        try:
            return self._cells[name]
        except KeyError:
            raise UnknownActor(name) from None

    def dispatcher(self, name: str) -> Dispatcher:
        """The shared thread called ``name`` (started the first time it is asked for)."""
        with self._lock:
            found = self._dispatchers.get(name)
            if found is None:
                found = self._dispatchers[name] = Dispatcher(name)
            return found

    def cell_or_none(self, name: str) -> Cell | None:
        return self._cells.get(name)

    def names(self) -> list[str]:
        return list(self._cells)

    def peek(self, name: str) -> Any:
        """The snapshot the actor ``name`` last published with ``ctx.publish`` (or None)."""
        return self.cell(name).published

    def tell(self, name: str, message: Any) -> None:
        """Queue ``message`` for ``name``.

        Raises UnknownActor, ActorNotRunning (stopped for good) or MailboxFull. While the
        target restarts the message is buffered and the replacement receives it.
        """
        self.cell(name).mailbox.put(Envelope(message))

    def try_tell(self, name: str, message: Any) -> bool:
        """Like :meth:`tell`; a refused message is counted as a dead letter and False returned."""
        try:
            self.cell(name).mailbox.put(Envelope(message))
        except (UnknownActor, ActorNotRunning, MailboxFull) as exc:
            self.count_dead_letters(1)
            log.debug("dead letter to %s: %s", name, exc)
            return False
        return True

    def ask_future(self, name: str, message: Any,
                   future: ReplyFuture[Any] | None = None) -> ReplyFuture[Any]:
        """Send ``message`` as an ask; its reply arrives in ``future`` (a new one if None)."""
        if future is None:
            future = ReplyFuture()
        self.cell(name).mailbox.put(Envelope(message, reply_to=future))
        return future

    def ask(self, name: str, message: Any, *, timeout: float | None = None) -> Any:
        """Send ``message`` and wait for the reply for at most ``timeout`` seconds.

        The handler's exception, if any, is raised here. AskTimeout when no reply comes.
        """
        limit = self.ask_timeout if timeout is None else timeout
        future = self.ask_future(name, message)
        try:
            return future.get(timeout=limit)
        except pykka.Timeout:
            raise AskTimeout(name, type(message).__name__, limit) from None

    def count_dead_letters(self, count: int) -> None:
        with self._lock:
            self.dead_letters += count

    # -- supervisor commands -----------------------------------------------------------------
    def _parent_of(self, name: str) -> str:
        parent = self.cell(name).parent
        if parent is None:
            raise ValueError(f"{name!r} is the root; stop the runtime instead")
        return parent

    def _command(self, supervisor: str, message: Any, timeout: float | None) -> Any:
        reply = self.ask(supervisor, message, timeout=timeout or max(self.ask_timeout, 30.0))
        if isinstance(reply, Refused):
            raise reply.error
        return reply

    def start_child(self, supervisor: str, spec: ChildSpec, *, timeout: float | None = None
                    ) -> ChildInfo:
        if not self.cell(supervisor).spec.is_supervisor:
            raise ValueError(f"{supervisor!r} is not a supervisor")
        return self._command(supervisor, StartChild(spec), timeout)  # type: ignore[no-any-return]

    def terminate_child(self, name: str, *, timeout: float | None = None) -> ChildInfo:
        """Stop ``name`` for good: not restarted, not counted against intensity."""
        return self._command(self._parent_of(name), TerminateChild(name), timeout)  # type: ignore[no-any-return]

    def restart_child(self, name: str, *, timeout: float | None = None) -> ChildInfo:
        """Start a terminated child again, or restart a running one in place.

        Counts against the supervisor's restart intensity, as a restart after a crash does;
        one too many escalates (and raises RestartIntensityExceeded here).
        """
        return self._command(self._parent_of(name), RestartChild(name), timeout)  # type: ignore[no-any-return]

    def replace_child(self, spec: ChildSpec, *, timeout: float | None = None) -> ChildInfo:
        """Run worker ``spec.id`` from ``spec`` from now on (restarting it if it runs).

        A requested restart: not counted against restart intensity. The new spec is kept
        if the child's supervisor restarts later.
        """
        return self._command(self._parent_of(spec.id), ReplaceChild(spec), timeout)  # type: ignore[no-any-return]

    def delete_child(self, name: str, *, timeout: float | None = None) -> None:
        self._command(self._parent_of(name), DeleteChild(name), timeout)

    def which_children(self, supervisor: str, *, timeout: float | None = None) -> list[ChildInfo]:
        return self._command(supervisor, WhichChildren(), timeout)  # type: ignore[no-any-return]

    def count_children(self, supervisor: str, *, timeout: float | None = None) -> dict[str, int]:
        return self._command(supervisor, CountChildren(), timeout)  # type: ignore[no-any-return]

    # -- for cells and supervisors (supervisor.cell.CellRuntime) --------------------------------
    def adopt(self, spec: ChildSpec, *, parent: str, handler: ErrorHandler,
              owner: CellOwner) -> Cell:
        """The cell for ``spec`` under ``parent``, owned by ``owner`` from now on: the
        existing one (keeping its mailbox) or new."""
        with self._lock:
            cell = self._cells.get(spec.id)
            if cell is not None:
                if cell.parent != parent:
                    raise ValueError(
                        f"actor name {spec.id!r} is already used under {cell.parent!r}"
                    )
                cell.spec = spec
                cell.error_handler = handler
                cell.owner = owner
                return cell
            cell = Cell(self, spec, parent, handler, Supervisor, owner=owner)
            self._cells[spec.id] = cell
            return cell

    def forget(self, name: str) -> None:
        """Remove ``name`` and every cell below it."""
        with self._lock:
            gone = {name}
            self._cells.pop(name, None)
            while True:
                below = [n for n, c in self._cells.items() if c.parent in gone]
                if not below:
                    return
                for n in below:
                    gone.add(n)
                    del self._cells[n]

    def child_report(self, cell: Cell, report: ChildFailed | ChildExited) -> None:
        """Deliver ``report`` to ``cell``'s supervisor; the root's own go to its keeper."""
        if cell.parent is not None:
            try:
                self.cell(cell.parent).mailbox.put_control(Envelope(report))  # never "full"
            except (UnknownActor, ActorNotRunning):
                log.debug("report from %s dropped: its supervisor is gone", cell.name)
            return
        if self._keeper.submit(partial(self._root_report, cell, report)).cancelled():
            log.debug("report from %s dropped: the runtime is stopping", cell.name)

    def _root_report(self, cell: Cell, report: ChildFailed | ChildExited) -> None:
        """The root keeper's: the root's own failures. Nothing above it can restart it, so
        the process ends. A report about an instance already stopped is stale: ignored."""
        if cell.actor is None or report.incarnation != cell.incarnation:
            return
        if isinstance(report, ChildFailed):
            cell.record_error(report.error)
            if report.decision.directive is Directive.RESUME:
                cell.emit(EventKind.CRASHED, report.decision.severity, error=report.error)
                return
            cell.actor = None
            cell.apply(Lifecycle.STOP)
            reason = f"root supervisor failed: {type(report.error).__name__}: {report.error}"
            cell.emit(EventKind.ESCALATED, Severity.CRITICAL, reason=reason)
            self._finish(1, reason)
        else:
            cell.actor = None
            cell.apply(Lifecycle.STOP)
            self._finish(0, "root supervisor stopped")

    def _finish(self, code: int, reason: str) -> None:
        with self._lock:
            if self.exit_code is None:
                self.exit_code = code
                self.exit_reason = reason
        self._done.set()

    # -- hung handlers -----------------------------------------------------------------------
    def check_hung(self) -> list[str]:
        """Report every actor whose current handler has run past its deadline (see
        :class:`~supervisor.hang_monitor.HangMonitor`); the names reported."""
        return self._hangs.check()

    # -- views ---------------------------------------------------------------------------------
    def tree(self) -> TreeNode | None:
        """A snapshot of the whole tree, read without asking any actor (so it never blocks)."""
        return snapshot(self._root, self._cells, self.clock.now()) if self._root else None


    # -- waiting and stopping ------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Block until the root has ended by itself (failed or exited); True if it has."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop the whole tree in reverse start order, each child within its budget.

        The root keeper does it, after the root's reports already handed to it; this waits
        for it (up to the tree's shutdown budget and a margin), except on the keeper's own
        thread. Idempotent, from any thread: a second call waits for the same stop. Called
        from an actor's handler, it waits too, and that actor's stop waits out its shutdown
        budget (the handler it is in cannot finish first)."""
        if next(self._stop_calls) == 0:  # atomic: the first caller, signal handlers too
            self._stopped = True
            if self.chaos is not None:
                self.chaos.release()  # hangs and slow-downs end, so the tree can stop in time
            self._hangs.stop()
            self._keeper.submit(self._stop_tree, last=True)
        if self._keeper.holds():
            return  # the keeper's own path: the stop runs after the task at hand
        root = self._root
        limit = (root.shutdown_budget if root is not None else 0.0) + _STOP_GRACE * (
            len(self._dispatchers) + 2)
        try:
            self._stop_done.result(timeout=limit)
        except FutureTimeout:
            log.error("the runtime's stop is still under way after %gs", limit)

    def _stop_tree(self) -> None:
        """The root keeper's last task: stop the root, then what the runtime holds."""
        try:
            self._stop_everything()
        finally:
            self._stop_done.set_result(None)

    def _stop_everything(self) -> None:
        root = self._root
        if root is not None and root.actor is not None:
            root.stop_instance(close=True, reason="runtime stopped")
            root.apply(Lifecycle.STOP)
            root.emit(EventKind.STOPPED, Severity.INFO, reason="runtime stopped")
        for cell in list(self._cells.values()):
            if cell.mailbox.closed is None:
                cell.fail_drained(cell.mailbox.close("runtime stopped"), "runtime stopped")
        self._finish(0, "stopped")
        with self._lock:
            dispatchers, self._dispatchers = list(self._dispatchers.values()), {}
        for dispatcher in dispatchers:
            dispatcher.stop(timeout=5.0)
        self._stop_clock()
        self.extensions.close()

    def _stop_clock(self) -> None:
        self.clock.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
