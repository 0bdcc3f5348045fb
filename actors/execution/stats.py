"""The asks for the executor's stats still to answer.

:class:`StatsWaiters` owns each waiting ``GetExecutorStats`` with when it is due at the
latest (``order_timeout`` after it came): :meth:`StatsWaiters.answer` answers all of them
once the executor is settled (nothing out, nothing held, no fill within its first tries),
else those due. No actor: the executor says whether it is settled and gives the stats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka

from actors.execution.contract import ExecutorStats

__all__ = ["StatsWaiters"]


class StatsWaiters:
    """Owns the stats asks waiting (see the module docstring)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._waiting: list[tuple[float, pykka.Future[Any]]] = []

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, reply: pykka.Future[Any], now: float) -> None:
        self._waiting.append((now + self.timeout, reply))

    def next_due(self) -> float | None:
        if not self._waiting:
            return None
        return min(d for d, _ in self._waiting)

    def answer(self, settled: bool, now: float, stats: Callable[[], ExecutorStats]) -> None:
        """Answer them all if ``settled``, else those due at ``now``."""
        if settled:
            due, self._waiting = self._waiting, []
        else:
            due = [w for w in self._waiting if w[0] <= now]
            if not due:
                return
            self._waiting = [w for w in self._waiting if w[0] > now]
        answer = stats()
        for _, reply in due:
            reply.set(answer)

    def end(self, exc: Exception | None, stats: Callable[[], ExecutorStats]) -> None:
        """The executor ends: its stats (or ``exc``) to each."""
        waiting, self._waiting = self._waiting, []
        for _, reply in waiting:
            if exc is None:
                reply.set(stats())
            else:
                reply.set_exception((type(exc), exc, exc.__traceback__))
