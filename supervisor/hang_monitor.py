"""The hung-handler monitor: every ``interval`` on the runtime's clock, each running actor
whose current handler has run past its child's ``handler_deadline`` is reported to its
supervisor, once per handler.

The hung instance is given up before its supervisor hears of it (unless its error handler
says resume): on a shared thread the thread is abandoned first, so the replacement and the
thread-mates run on a fresh one (see :mod:`supervisor.dispatcher`). The report reaches the
supervisor as a message (``Cell.report_failure``); the monitor moves no cell itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from supervisor.cell import Cell
from supervisor.clock import Clock, TimerHandle
from supervisor.error_handler import Directive
from supervisor.errors import HandlerTimeout
from supervisor.lifecycle import ChildState

log = logging.getLogger(__name__)

__all__ = ["HangMonitor"]


class HangMonitor:
    """Owns the monitor's timer and the handlers it has reported (name -> incarnation,
    busy since), so each is reported once; the cells are the runtime's (``cells``)."""

    def __init__(self, clock: Clock, interval: float, cells: Callable[[], Iterable[Cell]]):
        self._clock = clock
        self._interval = interval
        self._cells = cells
        self._hung: dict[str, tuple[int, float]] = {}
        self._timer: TimerHandle | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Check every ``interval`` seconds from now on (never with an interval of 0)."""
        with self._lock:
            if self._interval > 0 and not self._stopped:
                self._timer = self._clock.call_later(self._interval, self._tick)

    def stop(self) -> None:
        """No more checks."""
        with self._lock:
            self._stopped = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _tick(self) -> None:
        if self._stopped:
            return
        try:
            self.check()
        except Exception:  # a bug; the monitor must go on all the same
            log.exception("the hung-handler monitor failed; it goes on")
        finally:
            self.start()

    def check(self) -> list[str]:
        """Report every actor whose current handler has run past its deadline; returns
        the names reported."""
        now = self._clock.now()
        reported = []
        for cell in self._cells():
            deadline = cell.spec.handler_deadline
            actor = cell.actor
            if deadline is None or actor is None or cell.state is not ChildState.RUNNING:
                continue
            since = actor.busy_since
            if not since or now - since <= deadline or self._hung.get(cell.name) == (
                actor.incarnation, since
            ):
                continue
            self._hung[cell.name] = (actor.incarnation, since)
            message = actor.busy_message
            exc = HandlerTimeout(cell.name, type(message).__name__, now - since, deadline)
            decision = cell.error_handler.classify(exc)
            if decision.directive is not Directive.RESUME:
                cell.mailbox.detach(actor)  # the hung instance will never take another message
                actor.give_up()  # ...nor reach its name again; its shared thread is abandoned
            else:
                actor.free_thread()  # resumed, but its thread-mates go on on a fresh thread
            cell.report_failure(actor.incarnation, exc, decision, message, was_ask=False,
                                hung=True)
            reported.append(cell.name)
        return reported
