"""Supervisor: an actor that starts, watches and restarts its children, with OTP semantics.

Restart strategies (one_for_one, one_for_all, rest_for_one), restart types (permanent,
transient, temporary), ordered start and reverse-ordered stop with shutdown budgets,
restart intensity with escalation to the parent, backoff between restarts, fallback
children, and the dynamic child commands. Everything a supervisor does happens in its own
thread, one message at a time, so its bookkeeping needs no locks. A supervisor instance is
the ``CellOwner`` of the cells it adopts, until another instance (its replacement) adopts
them: they move only on its thread (a supervisor never shares one: ``ChildSpec`` refuses
it), and it sees only the cells it owns, so an instance given up as hung that comes back
leaves its replacement's children alone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor.actor import SupervisedActor
from supervisor.backoff import IntensityWindow
from supervisor.cell import Cell, CellRuntime, ChildExited, ChildFailed
from supervisor.child_report import child_info, count_children
from supervisor.commands import (
    ChildInfo,
    CountChildren,
    DeleteChild,
    DuplicateName,
    NotAWorker,
    NotMine,
    Refused,
    ReplaceChild,
    RestartChild,
    StartChild,
    StillRunning,
    TerminateChild,
    WhichChildren,
)
from supervisor.error_handler import Directive, ErrorHandler, Severity
from supervisor.errors import RestartIntensityExceeded, StartFailed
from supervisor.events import EventKind
from supervisor.fallback import PrimaryRetries, RetryPrimary, fall_back, try_primary
from supervisor.lifecycle import ChildState, Lifecycle
from supervisor.mailbox import Envelope
from supervisor.spec import ChildSpec, RestartType, Strategy, SupervisorSpec

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)

__all__ = [
    "ChildInfo",
    "CountChildren",
    "DeleteChild",
    "ReplaceChild",
    "RestartChild",
    "StartChild",
    "Supervisor",
    "TerminateChild",
    "WhichChildren",
]


# -- the timer message a supervisor sends itself (its commands: supervisor.commands; the
# primary's retry: supervisor.fallback) ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RestartDue:
    """Timer message: start these waiting children now."""

    children: tuple[str, ...]


class Supervisor(SupervisedActor):
    """Owns the lifecycle of its children and its restart intensity window.

    Built by the runtime for the cell ``own`` of a child whose spec is ``spec`` (the cell
    outlives the instance: its extra and replaced children are kept there)."""

    def __init__(self, spec: SupervisorSpec, own: Cell) -> None:
        super().__init__()
        self.spec = spec
        self._own = own
        self._order: list[str] = []
        self._window = IntensityWindow(spec.intensity.max_restarts, spec.intensity.within_seconds)
        self._retries = PrimaryRetries()  # this instance's, as its timers are
        self._thread_ident: int | None = None  # its own thread, from on_start on (holds)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.ctx.name

    @property
    def runtime(self) -> CellRuntime:
        return self._own.runtime

    def holds(self) -> bool:
        """True on this instance's thread, the one that moves the cells it owns
        (``supervisor.cell.CellOwner``)."""
        return self._thread_ident == threading.get_ident()

    def _handler(self) -> ErrorHandler:
        return self.spec.error_handler or self.runtime.error_handler

    def _cell_of(self, child: str) -> Cell | None:
        """The cell of ``child`` if this instance owns it (its replacement may, once it
        has adopted it)."""
        cell = self.runtime.cell_or_none(child) if child in self._order else None
        return cell if cell is not None and cell.owner is self else None

    def _live(self, child: str, incarnation: int) -> Cell | None:
        """The child's cell, if the report is about its current instance."""
        cell = self._cell_of(child)
        if cell is None or cell.incarnation != incarnation or cell.actor is None:
            return None
        return cell

    def _tell_self(self, message: RestartDue | RetryPrimary) -> None:
        """Queue an order to itself; a full mailbox does not refuse it (see put_control).
        An instance given up (its on_start overran) orders nothing: the mailbox is its
        replacement's."""
        if not self.ctx.given_up:
            self._own.mailbox.put_control(Envelope(message))

    def _all_specs(self) -> list[ChildSpec]:
        own = self._own
        replaced = own.replaced_children
        return [replaced.get(c.id, c) for c in (*self.spec.children, *own.extra_children)]

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        self._thread_ident = threading.get_ident()  # its own thread: every hook runs there
        handler = self._handler()
        for child in self._all_specs():
            self.runtime.adopt(child, parent=self.name, handler=handler, owner=self)
            self._order.append(child.id)
        self._start_group(list(self._order), initial=True)

    def on_stop(self) -> None:
        self._stop_children(close=self._own.closing)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_children(close=False)

    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildFailed():
                self._on_child_failed(message)
            case ChildExited():
                self._on_child_exited(message)
            case RestartDue(children):
                self._start_group(list(children), initial=False)
            case RetryPrimary():
                self._on_retry_primary(message)
            case StartChild(spec):
                return self._start_child(spec)
            case TerminateChild(child):
                return self._terminate_child(child)
            case RestartChild(child):
                return self._restart_child(child)
            case ReplaceChild(spec):
                return self._replace_child(spec)
            case DeleteChild(child):
                return self._delete_child(child)
            case WhichChildren():
                return self._which_children()
            case CountChildren():
                return self._count_children()
            case _:
                return super().on_receive(message)
        return None

    # -- starting ----------------------------------------------------------------------------
    def _start_group(self, group: list[str], *, initial: bool) -> None:
        """Start ``group`` in order; a start failure is handled like a crash of that child."""
        for i, child in enumerate(group):
            cell = self._cell_of(child)
            if cell is None:
                continue
            if not initial and cell.state is not ChildState.RESTARTING:
                continue
            error = cell.start_instance()
            if error is None:
                self._child_started(cell)
                kind = EventKind.RESTARTED if cell.incarnation > 1 else EventKind.STARTED
                reason = "fallback in place of the primary" if cell.using_fallback else ""
                cell.emit(kind, Severity.INFO, reason=reason)
                continue
            cell.emit(EventKind.START_FAILED, Severity.ERROR, error=error)
            directive = self._handler().classify(error).directive
            if directive is Directive.RESUME:
                directive = Directive.RESTART  # nothing is running that could resume
            if self.spec.strategy is Strategy.ONE_FOR_ONE:
                self._handle_loss(cell, error, directive, abnormal=True, ran_for=None)
                continue
            rest = group[i + 1 :]
            for other in rest:
                other_cell = self._cell_of(other)
                if other_cell is not None and other_cell.actor is None:
                    other_cell.apply(Lifecycle.WAIT)
            self._handle_loss(
                cell, error, directive, abnormal=True, ran_for=None, pending=rest
            )
            return

    # -- failures ----------------------------------------------------------------------------
    def _on_child_failed(self, report: ChildFailed) -> None:
        decision = report.decision
        via = "ask" if report.was_ask else "tell"
        if not report.was_ask:
            self.runtime.count_dead_letters(1)
        cell = self._live(report.child, report.incarnation)
        # Every failed message is reported, even when its instance is already gone (stopped
        # for a group restart while it failed): the failure happened and its message is lost.
        # Only a report about the current instance is acted on; its events are published
        # once the cell shows the failure (the instance gone unless the directive resumes).
        witness = cell or self._cell_of(report.child)
        if witness is not None:
            witness.record_error(report.error)
        if cell is not None and decision.directive is not Directive.RESUME:
            cell.crashed(report.error)
        if witness is not None:
            witness.emit(
                EventKind.HUNG if report.hung else EventKind.CRASHED,
                decision.severity,
                reason=f"{via} {report.message_type}: {decision.matched} -> "
                f"{decision.directive.value}"
                + ("" if cell is not None else " (instance already stopped; no action)"),
                error=report.error,
            )
            if not report.was_ask:
                witness.emit(
                    EventKind.DEAD_LETTER,
                    Severity.WARNING,
                    reason=f"the {report.message_type} it failed on is lost",
                    message_type=report.message_type,
                )
        if cell is None:
            return
        if decision.directive is Directive.RESUME:
            cell.emit(EventKind.RESUMED, Severity.INFO, reason="failing message dropped")
            return
        ran_for = self.ctx.clock.now() - cell.started_at
        self._handle_loss(cell, report.error, decision.directive, abnormal=True, ran_for=ran_for)

    def _on_child_exited(self, report: ChildExited) -> None:
        cell = self._live(report.child, report.incarnation)
        if cell is None:
            return
        cell.actor = None
        if cell.spec.restart is RestartType.PERMANENT:
            cell.apply(Lifecycle.WAIT)  # announced as gone, on its way back
            cell.emit(EventKind.EXITED, Severity.WARNING, reason="exited; permanent, restarting")
            ran_for = self.ctx.clock.now() - cell.started_at
            self._handle_loss(cell, None, Directive.RESTART, abnormal=False, ran_for=ran_for)
        else:
            cell.apply(Lifecycle.STOP)
            cell.emit(EventKind.EXITED, Severity.INFO, reason="exited normally")
            self._finish_child(cell, "exited normally")

    def _handle_loss(
        self,
        cell: Cell,
        error: BaseException | None,
        directive: Directive,
        *,
        abnormal: bool,
        ran_for: float | None,
        pending: list[str] | None = None,
    ) -> None:
        """A child's instance is gone: restart it (and its group), or end it, or escalate."""
        if directive is Directive.ESCALATE:
            self._escalate(f"{cell.name} failed: {error!r}")
        if directive is Directive.STOP:
            self._finish_child(cell, f"stopped by directive after {error!r}")
            return
        if not cell.spec.restart.restarts_after(abnormal=abnormal):
            self._finish_child(cell, f"{cell.spec.restart.value} child, not restarted")
            if pending:
                self._tell_self(RestartDue(tuple(pending)))
            return
        now = self.ctx.clock.now()
        if not self._window.record(now):
            self._escalate(
                f"more than {self.spec.intensity.max_restarts} restarts in "
                f"{self.spec.intensity.within_seconds:g}s (last: {cell.name})"
            )
        cell.restarts += 1
        if ran_for is not None and ran_for >= self.spec.backoff.reset_after:
            cell.consecutive_failures = 0
        cell.consecutive_failures += 1
        fell_back = fall_back(cell, forced=directive is Directive.FALLBACK)
        group = self._group(cell.name, pending or [])
        for other in reversed(group):
            other_cell = self._cell_of(other)
            if other_cell is None or other_cell is cell:
                continue
            if other_cell.spec.restart is RestartType.TEMPORARY:
                # OTP: a temporary child is never restarted, not even with its group
                self._finish_child(other_cell, f"temporary, stopped with {cell.name}")
                group.remove(other)
                continue
            if other_cell.actor is not None:
                why = f"restarting with {cell.name}"
                other_cell.stop_instance(close=False, reason=why)
                other_cell.apply(Lifecycle.WAIT)
                other_cell.emit(EventKind.STOPPED, Severity.INFO, reason=why)
            else:
                other_cell.apply(Lifecycle.WAIT)
        cell.apply(Lifecycle.WAIT)
        delay = 0.0 if fell_back else self.spec.backoff.delay(cell.consecutive_failures)
        due = RestartDue(tuple(group))
        if delay <= 0:
            self._tell_self(due)
        else:
            self.ctx.schedule(delay, due)
        # Published once the restart is on its way (its timer armed, or its message queued).
        cell.emit(
            EventKind.RESTARTING,
            Severity.WARNING,
            delay=delay,
            reason=f"failure {cell.consecutive_failures} in a row"
            + (f", with {', '.join(g for g in group if g != cell.name)}" if len(group) > 1 else ""),
        )

    def _group(self, failed: str, pending: list[str]) -> list[str]:
        wanted = set(self.spec.strategy.group(self._order, failed)) | set(pending)
        group = []
        for child in self._order:
            cell = self._cell_of(child)
            if child not in wanted or cell is None:
                continue
            if child != failed and cell.state in (ChildState.TERMINATED, ChildState.STOPPED):
                continue
            group.append(child)
        return group

    def _child_started(self, cell: Cell) -> None:
        """``cell`` has just started (by any path). A fallback gets its primary retry: the
        one that fell due while it was not running is made now; else one is armed, unless
        one already is (a retry that finds the fallback restarting waits for it to run, so
        it is never dropped; see _on_retry_primary)."""
        fallback = cell.spec.fallback
        if not cell.using_fallback or fallback is None or fallback.retry_primary_after is None:
            return
        armed = self._retries.arm(cell.name)
        if armed is None:
            return
        retry, now = armed
        if now:
            self._tell_self(retry)
        else:
            self.ctx.schedule(fallback.retry_primary_after, retry)

    def _on_retry_primary(self, msg: RetryPrimary) -> None:
        if not self._retries.take(msg):
            return  # a retry this instance did not arm last (replaced by a newer one)
        cell = self._cell_of(msg.child)
        fallback = cell.spec.fallback if cell is not None else None
        if cell is None or fallback is None or not cell.using_fallback:
            return
        if cell.state is not ChildState.RUNNING:
            # The fallback itself is restarting (or stopped by hand): the retry is made as
            # soon as it runs again (_child_started), not dropped.
            self._retries.wait(cell.name)
            return
        error = try_primary(cell)
        if error is not None:  # neither starts: a crash of the child
            self._handle_loss(cell, error, Directive.RESTART, abnormal=True, ran_for=None)
        elif cell.using_fallback:  # the primary failed again; the fallback is back
            self._child_started(cell)  # the next retry
            cell.emit(EventKind.RESTARTED, Severity.INFO, reason="fallback in place of the primary")

    def _escalate(self, reason: str) -> None:
        own = self._own
        own.emit(EventKind.ESCALATED, Severity.CRITICAL, reason=reason)
        # The root has no parent to restart it: the process ends, so its children stop for
        # good (and the alerts actor sends its shutdown alert).
        self._stop_children(close=own.parent is None)
        raise RestartIntensityExceeded(
            self.name, self.spec.intensity.max_restarts, self.spec.intensity.within_seconds
        )

    def _finish_child(self, cell: Cell, reason: str) -> None:
        """End a child for good: no restart; its mailbox refuses messages from now on."""
        if cell.actor is not None:
            cell.stop_instance(close=True, reason=reason)
        else:
            cell.end_subscriptions()
            cell.fail_drained(cell.mailbox.close(reason), reason)
        cell.apply(Lifecycle.STOP)
        cell.emit(EventKind.STOPPED, Severity.INFO, reason=reason)
        if cell.spec.restart is RestartType.TEMPORARY:
            self._forget(cell.name)

    def _stop_children(self, *, close: bool) -> None:
        """Stop every child in reverse start order, each within its shutdown budget."""
        reason = "supervisor stopped" if close else "supervisor restarting"
        for child in reversed(self._order):
            cell = self._cell_of(child)
            if cell is None:
                continue
            was_running = cell.actor is not None
            if was_running:
                cell.stop_instance(close=close, reason=reason)
            elif close:
                cell.end_subscriptions()
                cell.fail_drained(cell.mailbox.close(reason), reason)
            if cell.state is not ChildState.TERMINATED:
                cell.apply(Lifecycle.STOP)
            if was_running:
                cell.emit(EventKind.STOPPED, Severity.INFO, reason=reason)

    def _forget(self, child: str) -> None:
        self._retries.forget(child)
        if child in self._order:
            self._order.remove(child)
        own = self._own
        own.extra_children = [c for c in own.extra_children if c.id != child]
        self.runtime.forget(child)

    # -- dynamic children --------------------------------------------------------------------
    def _start_child(self, spec: ChildSpec) -> Refused | ChildInfo:
        names = [spec.id, *(spec.supervisor.all_ids() if spec.supervisor else [])]
        for name in names:
            if self.runtime.has(name) or names.count(name) > 1:
                return Refused(DuplicateName(name))
        cell = self.runtime.adopt(spec, parent=self.name, handler=self._handler(), owner=self)
        self._order.append(spec.id)
        error = cell.start_instance()
        if error is not None:
            self._order.remove(spec.id)
            self.runtime.forget(spec.id)
            cell.fail_drained(cell.mailbox.close("failed to start"), "failed to start")
            return Refused(StartFailed(spec.id, f"{type(error).__name__}: {error}"))
        self._own.extra_children.append(spec)
        cell.emit(EventKind.STARTED, Severity.INFO, reason="started on request")
        return self._info(cell)

    def _terminate_child(self, child: str) -> Refused | ChildInfo:
        cell = self._cell_of(child)
        if cell is None:
            return Refused(NotMine(child, self.name))
        reason = "stopped by request"
        if cell.actor is not None:
            cell.stop_instance(close=True, reason=reason)
        else:
            cell.fail_drained(cell.mailbox.close(reason), reason)
        cell.apply(Lifecycle.TERMINATE)
        cell.emit(EventKind.STOPPED, Severity.INFO, reason=reason)
        info = self._info(cell)
        if cell.spec.restart is RestartType.TEMPORARY:
            self._forget(child)
        return info

    def _restart_child(self, child: str) -> Refused | ChildInfo:
        cell = self._cell_of(child)
        if cell is None:
            return Refused(NotMine(child, self.name))
        # A requested (re)start counts against restart intensity, as a restart after a crash
        # does: nobody can restart a child faster than its supervisor allows. (Stopping by
        # hand never counts.)
        if not self._window.record(self.ctx.clock.now()):
            self._escalate(
                f"more than {self.spec.intensity.max_restarts} restarts in "
                f"{self.spec.intensity.within_seconds:g}s (last: {child}, started by request)"
            )
        if cell.actor is not None:
            cell.stop_instance(close=False, reason="restart requested")
            cell.apply(Lifecycle.WAIT)
            cell.emit(EventKind.STOPPED, Severity.INFO, reason="restart requested")
        cell.restarts += 1
        error = cell.start_instance()
        if error is not None:
            cell.emit(EventKind.START_FAILED, Severity.ERROR, error=error)
            self._handle_loss(cell, error, Directive.RESTART, abnormal=True, ran_for=None)
            return Refused(StartFailed(child, f"{type(error).__name__}: {error}"))
        self._child_started(cell)
        cell.emit(EventKind.RESTARTED, Severity.INFO, reason="restarted on request")
        return self._info(cell)

    def _replace_child(self, spec: ChildSpec) -> Refused | ChildInfo:
        cell = self._cell_of(spec.id)
        own = self._own
        if cell is None:
            return Refused(NotMine(spec.id, self.name))
        if spec.is_supervisor or cell.spec.is_supervisor:
            return Refused(NotAWorker(spec.id))
        own.replaced_children[spec.id] = spec
        cell.spec = spec
        if cell.actor is None:
            return self._info(cell)  # not running: the new spec applies at its next start
        cell.stop_instance(close=False, reason="new settings")
        cell.apply(Lifecycle.WAIT)
        cell.emit(EventKind.STOPPED, Severity.INFO, reason="restarting with new settings")
        error = cell.start_instance()
        if error is not None:
            cell.emit(EventKind.START_FAILED, Severity.ERROR, error=error)
            self._handle_loss(cell, error, Directive.RESTART, abnormal=True, ran_for=None)
            return Refused(StartFailed(spec.id, f"{type(error).__name__}: {error}"))
        self._child_started(cell)
        cell.emit(EventKind.RESTARTED, Severity.INFO, reason="restarted with new settings")
        return self._info(cell)

    def _delete_child(self, child: str) -> Refused | None:
        cell = self._cell_of(child)
        if cell is None:
            return Refused(NotMine(child, self.name))
        if cell.actor is not None or cell.state in (ChildState.RUNNING, ChildState.STARTING):
            return Refused(StillRunning(child))
        self._forget(child)
        return None

    def _info(self, cell: Cell) -> ChildInfo:
        return child_info(cell, self.ctx.clock.now())

    def _cells(self) -> list[Cell]:
        return [c for c in (self._cell_of(x) for x in self._order) if c is not None]

    def _which_children(self) -> list[ChildInfo]:
        return [self._info(c) for c in self._cells()]

    def _count_children(self) -> dict[str, int]:
        return count_children(self._cells())
