"""Dispatcher: one thread that runs the message handlers of several actors, in turn.

A child joins one with ``thread: <name>`` in its spec and keeps its own mailbox,
supervision, restarts and failure isolation. Turns are taken in order (up to 64 messages
each), except that an *urgent* actor's turn (``urgent: true``) goes before the waiting
ones. A thread blocked by a hung handler is **abandoned** (:meth:`Dispatcher.abandon`): a
fresh thread of the same name takes every waiting and later turn, and the abandoned one
never takes another. An ask from one thread-mate to another is refused at once
(:class:`~supervisor.errors.WouldDeadlock`). Why share a thread, and the price:
``docs/runtime.md`` (*Shared threads*).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

Task = Callable[[], None]


class Dispatcher:
    """Owns the queues of tasks (actor steps) of one named shared thread, the daemon thread
    that runs them (urgent ones first, each queue in order), and the threads it abandoned.

    Only the *current* thread takes tasks: a task is taken, under the lock, by a thread
    that is still current, so an abandoned thread never starts another one. Each thread
    waits on wake-ups of its own (one per task submitted, one per stop and per abandon):
    an abandoned thread that was idle is woken by its own, and ends, however the fresh one
    is scheduled.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._urgent: deque[Task] = deque()
        self._normal: deque[Task] = deque()
        # The current thread's wake-ups. A token carries no task: the thread that takes
        # one looks at the queues under the lock.
        self._tokens: SimpleQueue[bool] = SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self.abandoned = 0  # threads given up so far
        with self._lock:
            self.thread = self._spawn(f"botvisor:thread:{name}", self._tokens)

    def _spawn(self, name: str, tokens: SimpleQueue[bool]) -> threading.Thread:
        """A started thread, waiting on ``tokens``, to be the current one; the caller holds
        the lock (so the thread takes no task before it is made current) and makes it
        current."""
        thread = threading.Thread(target=self._loop, args=(tokens,), name=name, daemon=True)
        thread.start()  # may raise (no threads left): then nothing changes
        return thread

    def submit(self, task: Task, urgent: bool = False) -> None:
        """Run ``task`` on this thread after the tasks already waiting (after the urgent
        ones only, if ``urgent``)."""
        (self._urgent if urgent else self._normal).append(task)
        tokens = self._tokens
        tokens.put(True)
        if self._tokens is not tokens:  # abandon() swapped them meanwhile: wake the fresh one
            self._tokens.put(True)

    def abandon(self, thread: threading.Thread) -> bool:
        """Give up ``thread`` (blocked in a hung task) if it is still the current one: a
        fresh thread takes over every waiting task and all later ones. The abandoned thread
        never takes another task; if its task ever returns, it ends. False if ``thread``
        was not current (already abandoned, or stopping)."""
        with self._lock:
            if thread is not self.thread or self._stopping:
                return False
            tokens: SimpleQueue[bool] = SimpleQueue()
            try:
                fresh = self._spawn(f"botvisor:thread:{self.name}#{self.abandoned + 2}",
                                    tokens)
            except RuntimeError:  # no thread to be had: the hung one stays current
                log.exception("dispatcher %s: no fresh thread to replace %s", self.name,
                              thread.name)
                return False
            old, self._tokens = self._tokens, tokens
            self.thread = fresh
            self.abandoned += 1
            while True:  # the wake-ups of the waiting tasks are the fresh thread's now
                try:
                    old.get_nowait()
                except Empty:
                    break
                tokens.put(True)
        old.put(True)  # wakes the abandoned thread if it is idle (rare), so that it ends
        log.warning("dispatcher %s: thread %s abandoned (a hung task); %s takes over",
                    self.name, thread.name, fresh.name)
        return True

    def stop(self, timeout: float) -> bool:
        """End the thread once the waiting tasks are done; True if it ended in time."""
        with self._lock:
            self._stopping = True
            thread = self.thread
        self._tokens.put(True)
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self, tokens: SimpleQueue[bool]) -> None:
        me = threading.current_thread()
        urgent, normal, lock = self._urgent, self._normal, self._lock
        while True:
            tokens.get()
            lock.acquire()
            if self.thread is not me:  # abandoned while idle: it ends. The wake-up it
                current = self._tokens  # took may have been a task's, taken just before
                lock.release()  # the swap: it is handed on (at worst, one to spare)
                current.put(True)
                return
            if urgent:
                task = urgent.popleft()
            elif normal:
                task = normal.popleft()
            else:
                stopping = self._stopping
                lock.release()
                if stopping:
                    return
                continue  # a wake-up whose task a previous turn already ran
            lock.release()
            try:
                task()
            except BaseException:  # steps handle their actors' failures; this is a bug
                log.exception("dispatcher %s: a task raised", self.name)
            if self.thread is not me:  # abandoned while it ran: it takes nothing more
                return
