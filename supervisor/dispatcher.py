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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

Task = Callable[[], None]


class Dispatcher:
    """Owns one daemon thread and the queue of tasks (actor steps) it runs in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: SimpleQueue[Task | None] = SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"botvisor:thread:{name}",
                                       daemon=True)
        self.thread.start()

    def submit(self, task: Task) -> None:
        """Run ``task`` on this thread after the tasks already waiting."""
        self._tasks.put(task)

    def stop(self, timeout: float) -> bool:
        """End the thread once the waiting tasks are done; True if it ended in time."""
        self._tasks.put(None)
        if self.thread is threading.current_thread():
            return False
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except BaseException:  # steps handle their actors' failures; this is a bug
                log.exception("dispatcher %s: a task raised", self.name)
