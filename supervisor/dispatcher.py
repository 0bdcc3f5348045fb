"""Dispatcher: one thread that runs the message handlers of several actors, in turn.

An actor on its own thread pays for every message it receives with a thread wake-up and a
hand-over of the GIL, which in CPython costs more than most handlers. Actors that only
tell (never ask each other and never block) can share a thread instead: a message between
them is a queue append, not a wake-up. Each keeps its own mailbox, supervision, restarts
and failure isolation; a child joins one with ``thread: <name>`` in its spec.

The price: actors on one thread run one at a time, so a slow or blocked handler holds
back its thread-mates (a hung one is still reported by its ``handler_deadline``, but its
replacement runs on the same thread). An ask from one thread-mate to another would wait
for itself; the runtime refuses it at once (:class:`~supervisor.errors.WouldDeadlock`).

Turns are taken in order, except that an *urgent* actor's turn (``urgent: true`` in its
spec) goes before the waiting turns of the others: for a short handler on a latency path
(an exchange placing orders beside a market's ticks). An urgent actor that never runs out
of messages would starve its thread-mates; it gets the same ``_STEP_MESSAGES`` per turn.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

Task = Callable[[], None]


class Dispatcher:
    """Owns one daemon thread and the queues of tasks (actor steps) it runs: the urgent
    ones first, each queue in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._urgent: deque[Task] = deque()
        self._normal: deque[Task] = deque()
        # one token per task submitted (None: stop); a task is queued before its token,
        # so a token taken always finds a task waiting
        self._tokens: SimpleQueue[bool | None] = SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"botvisor:thread:{name}",
                                       daemon=True)
        self.thread.start()

    def submit(self, task: Task, urgent: bool = False) -> None:
        """Run ``task`` on this thread after the tasks already waiting (after the urgent
        ones only, if ``urgent``)."""
        (self._urgent if urgent else self._normal).append(task)
        self._tokens.put(True)

    def stop(self, timeout: float) -> bool:
        """End the thread once the waiting tasks are done; True if it ended in time."""
        self._tokens.put(None)
        if self.thread is threading.current_thread():
            return False
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _loop(self) -> None:
        tokens, urgent, normal = self._tokens, self._urgent, self._normal
        while tokens.get() is not None:
            task = urgent.popleft() if urgent else normal.popleft()
            try:
                task()
            except BaseException:  # steps handle their actors' failures; this is a bug
                log.exception("dispatcher %s: a task raised", self.name)
