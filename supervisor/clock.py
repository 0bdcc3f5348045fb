"""Time for the runtime: a real clock with one timer thread, and a manual clock for tests.

Everything in the runtime that depends on time (backoff delays, restart intensity windows,
hung-handler deadlines, periodic health scans) asks a :class:`Clock`, so tests drive time
with :class:`ManualClock.advance` instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

__all__ = ["Clock", "ManualClock", "SystemClock", "TimerHandle"]


class TimerHandle:
    """A scheduled callback that can be cancelled before it runs."""

    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock(Protocol):
    """What the runtime needs from time: a monotonic reading, wall time, timers and sleep."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps shown to people."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once after ``delay`` seconds, on the clock's own thread."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the caller for ``seconds`` (a manual clock advances instead)."""
        ...

    def close(self) -> None:
        """Stop the timer thread, if any; pending timers are dropped."""
        ...


class _TimerQueue:
    """A heap of timers ordered by due time, insertion order deciding between equal due times."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()

    def push(self, handle: TimerHandle) -> None:
        heapq.heappush(self._heap, (handle.due, next(self._seq), handle))

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> TimerHandle | None:
        due = self.next_due()
        if due is None or due > now:
            return None
        return heapq.heappop(self._heap)[2]

    def clear(self) -> None:
        self._heap.clear()


def _run_callback(handle: TimerHandle) -> None:
    try:
        handle.callback()
    except Exception:
        log.exception("timer callback failed")


class SystemClock:
    """Real time: ``time.monotonic`` and ``time.time``, with one lazily started timer thread."""

    def __init__(self) -> None:
        self._timers = _TimerQueue()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), callback)
        with self._cond:
            if self._closed:
                handle.cancel()
                return handle
            self._timers.push(handle)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="botvisor-clock", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                handle = self._timers.pop_due(time.monotonic())
                if handle is None:
                    due = self._timers.next_due()
                    timeout = None if due is None else max(0.0, due - time.monotonic())
                    self._cond.wait(timeout)
                    continue
            _run_callback(handle)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._timers.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)


class ManualClock:
    """A clock that moves only when a test calls :meth:`advance`; due timers run in that call."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._timers = _TimerQueue()
        self._lock = threading.RLock()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self._now + max(0.0, delay), callback)
        with self._lock:
            self._timers.push(handle)
        return handle

    def pending(self) -> list[float]:
        """Delays from now of the timers not yet run, soonest first."""
        with self._lock:
            return sorted(h.due - self._now for _, _, h in self._timers._heap if not h.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due, in due order."""
        target = self._now + seconds
        while True:
            with self._lock:
                handle = self._timers.pop_due(target)
                if handle is None:
                    self._now = target
                    return
                self._now = max(self._now, handle.due)
            _run_callback(handle)

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def close(self) -> None:
        with self._lock:
            self._timers.clear()
