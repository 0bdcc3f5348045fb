"""A child's fallback: when a supervisor swaps it in, and the retries of its primary.

* :func:`fall_back`: puts a cell on its fallback when its failures in a row reach the
  fallback's ``after`` (or a FALLBACK directive forces it), and says whether it did.
* :func:`try_primary`: swaps a running fallback for its primary, and back if the primary
  does not start.
* :class:`RetryPrimary`: the timer message a supervisor sends itself to try the primary of
  a child running its fallback.
* :class:`PrimaryRetries`: a supervisor instance's bookkeeping of those retries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from supervisor.cell import Cell
from supervisor.error_handler import Severity
from supervisor.events import EventKind

__all__ = ["PrimaryRetries", "RetryPrimary", "fall_back", "try_primary"]


@dataclass(frozen=True, slots=True)
class RetryPrimary:
    """Timer message: try the primary of a child running its fallback (``attempt`` tells
    the retry armed last from one it replaced)."""

    child: str
    attempt: int


def fall_back(cell: Cell, *, forced: bool) -> bool:
    """Put ``cell`` on its fallback if it has one, is not on it already, and has failed
    ``fallback.after`` times in a row (or ``forced``); True if it did. Its failures in a
    row start again from zero on the fallback."""
    fallback = cell.spec.fallback
    if fallback is None or cell.using_fallback:
        return False
    if not forced and cell.consecutive_failures < fallback.after:
        return False
    cell.using_fallback = True
    cell.emit(
        EventKind.FELL_BACK,
        Severity.WARNING,
        reason=f"after {cell.consecutive_failures} failure(s) in a row: "
        f"{fallback.description or 'fallback'}",
    )
    cell.consecutive_failures = 0
    return True


def try_primary(cell: Cell) -> BaseException | None:
    """Stop ``cell``'s running fallback and start its primary; if the primary does not
    start, start the fallback again. None: one of them runs (``cell.using_fallback`` says
    which); else the fallback's own start error (the child is down: its supervisor handles
    it as a crash)."""
    cell.stop_instance(close=False, reason="trying the primary again")
    cell.using_fallback = False
    error = cell.start_instance()
    if error is None:
        cell.consecutive_failures = 0
        cell.emit(EventKind.PRIMARY_RESTORED, Severity.INFO, reason="primary is back")
        return None
    cell.emit(EventKind.START_FAILED, Severity.WARNING, error=error, reason="primary retry")
    cell.using_fallback = True
    error = cell.start_instance()
    if error is not None:
        cell.emit(EventKind.START_FAILED, Severity.ERROR, error=error)
    return error


class PrimaryRetries:
    """Owns one supervisor instance's primary retries: the attempt armed last for each
    child (a timer, or a message already sent) and the children whose retry fell due while
    their fallback was not running. They belong to the instance, as its timers do; a new
    instance arms them again when it starts a fallback.

    >>> retries = PrimaryRetries()
    >>> retries.arm("feed")          # armed: schedule it
    (RetryPrimary(child='feed', attempt=1), False)
    >>> retries.arm("feed") is None  # one is armed already
    True
    >>> retries.take(RetryPrimary("feed", 1)), retries.take(RetryPrimary("feed", 1))
    (True, False)
    """

    def __init__(self) -> None:
        self._tries = itertools.count(1)
        self._armed: dict[str, int] = {}
        self._due: set[str] = set()

    def arm(self, child: str) -> tuple[RetryPrimary, bool] | None:
        """``child``'s fallback has just started: the retry to send now (True: one fell due
        while it was not running) or to schedule (False), or None when one is armed."""
        if child in self._due:
            self._due.discard(child)
            return self._new(child), True
        if child not in self._armed:
            return self._new(child), False
        return None

    def take(self, retry: RetryPrimary) -> bool:
        """True if ``retry`` is the one armed last for its child (it is then disarmed);
        False for one this instance did not arm last (replaced by a newer one)."""
        if self._armed.get(retry.child) != retry.attempt:
            return False
        del self._armed[retry.child]
        return True

    def wait(self, child: str) -> None:
        """A retry found ``child``'s fallback not running: made as soon as it runs again."""
        self._due.add(child)

    def forget(self, child: str) -> None:
        self._armed.pop(child, None)
        self._due.discard(child)

    def _new(self, child: str) -> RetryPrimary:
        attempt = self._armed[child] = next(self._tries)
        return RetryPrimary(child, attempt)
