"""Waiting for a condition another thread or process makes true, by polling it.

For the places that have nothing to block on (another process's files or socket, a
runtime's published state): ``check`` is called every ``poll`` seconds until it returns
something other than None or False, which is returned.

>>> poll_until(lambda: 42, timeout=1.0, what="the answer")
42
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["poll_until"]

T = TypeVar("T")


def poll_until(check: Callable[[], T | None], *, timeout: float, what: str,
               poll: float = 0.01, tolerate: tuple[type[Exception], ...] = (),
               give_up: Callable[[], bool] | None = None) -> T:
    """``check``'s first answer that is not None/False. Raises TimeoutError naming
    ``what`` after ``timeout`` seconds, or as soon as ``give_up()`` is true (the thing
    waited for can no longer happen). An exception of ``tolerate`` from ``check`` counts
    as "not yet"."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            found = check()
        except tolerate:
            found = None
        if found is not None and found is not False:
            return found
        if give_up is not None and give_up():
            raise TimeoutError(f"gave up waiting for {what}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        pause.wait(poll)
