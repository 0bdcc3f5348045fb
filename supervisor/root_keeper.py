"""RootKeeper: the one thread that owns the root's cell.

A child's cell is moved by its supervisor, on the supervisor's thread. The root has no
supervisor, so the runtime gives it a keeper: a thread of its own that runs, one at a time
and in the order they were handed over, the root's start, the root's reports (failed,
exited; sent from the root's thread or the hung-handler monitor's) and the runtime's stop.
So the root's transitions, its last error, its events and the runtime's exit code are all
written on that one thread, and two of them never race.

Contract:

* :meth:`submit` hands a task over from any thread and returns a future with its result
  or exception; a task that raises is logged and the keeper goes on.
* The thread starts with the first task and ends after the *last* one (``last=True``: the
  runtime's stop). A task handed over after the last is not run: its future is cancelled.
* :meth:`holds` is true on the keeper's thread only: the keeper is the root cell's
  ``CellOwner`` (see ``supervisor.cell``), and a caller on this thread must never wait for
  a task still queued behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["RootKeeper"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_Item = tuple[Callable[[], Any], "Future[Any]", bool]


class RootKeeper:
    """Owns the root cell's thread and the queue of tasks it runs (see the module)."""

    name = "the root keeper"

    def __init__(self) -> None:
        self._queue: SimpleQueue[_Item] = SimpleQueue()
        self._lock = threading.RLock()  # reentrant: a signal handler may interrupt a holder
        self._thread: threading.Thread | None = None
        self._ident: int | None = None  # the keeper thread's, once it runs
        self._closed = False  # the last task has been handed over

    def submit(self, task: Callable[[], T], *, last: bool = False) -> Future[T]:
        """Run ``task`` on the keeper's thread after the tasks already handed over; with
        ``last`` the keeper takes no task after this one. Any thread."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                future.cancel()
                return future
            self._closed = last
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="botvisor:root-keeper", daemon=True
                )
                self._thread.start()
        self._queue.put((task, future, last))
        return future

    def holds(self) -> bool:
        """True on the keeper's own thread (what ``Cell.apply`` checks for the root)."""
        return self._ident == threading.get_ident()

    def _run(self) -> None:
        self._ident = threading.get_ident()
        while True:
            task, future, last = self._queue.get()
            if future.set_running_or_notify_cancel():
                try:
                    result = task()
                except BaseException as exc:  # a bug in a task: reported, the keeper goes on
                    log.exception("%s: a task raised", self.name)
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            if last:
                return
