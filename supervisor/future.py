"""ReplyFuture: the reply slot of one ask, as cheap as a future between threads can be."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pykka
from pykka._future import _Unset
from pykka._types import OptExcInfo

__all__ = ["NotifyingFuture", "ReplyFuture"]

T = TypeVar("T")

_EMPTY: Any = object()
_UNSET_HOOK_RESULT: Any = _Unset()  # pykka tests it with isinstance(); one shared is enough


class ReplyFuture(pykka.Future[T]):
    """Owns one reply: set once by the replying actor, read by any number of waiters.

    A drop-in :class:`pykka.Future` (``get`` with a timeout raising ``pykka.Timeout``,
    ``map``/``filter``/``join``/``reduce``, get hooks), built on one pre-acquired lock
    instead of a condition variable: ``set`` releases it, ``get`` acquires and releases it.
    Every ask pays for its future, and group commit answers thousands per second, so the
    lighter primitive shows in the position actor's throughput.
    """

    def __init__(self) -> None:
        # pykka.Future.__init__, inlined: every ask builds one of these, and the chain of
        # super() calls and the fresh "unset" marker cost more than the rest together.
        self._get_hook = None
        self._get_hook_result = _UNSET_HOOK_RESULT
        self._done = threading.Lock()
        self._done.acquire()
        self._value: Any = _EMPTY
        self._exc_info: OptExcInfo | None = None

    def done(self) -> bool:
        """True once a value or an exception has been set."""
        return self._value is not _EMPTY or self._exc_info is not None

    def get(self, *, timeout: float | None = None) -> Any:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._value is _EMPTY and self._exc_info is None:
            got = self._done.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
            if not got:
                raise pykka.Timeout(f"{timeout} seconds")
            self._done.release()  # let every other waiter through too
        if self._exc_info is not None:
            exc_type, exc_value, exc_tb = self._exc_info
            assert exc_type is not None
            if exc_value is None:
                exc_value = exc_type()
            if exc_value.__traceback__ is not exc_tb:
                raise exc_value.with_traceback(exc_tb)
            raise exc_value
        return self._value

    def set(self, value: Any | None = None) -> None:
        if self._value is not _EMPTY or self._exc_info is not None or self._get_hook:
            raise queue.Full
        self._value = value
        self._done.release()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if self._value is not _EMPTY or self._exc_info is not None or self._get_hook:
            raise queue.Full
        self._exc_info = exc_info if exc_info is not None else sys.exc_info()
        self._done.release()


class NotifyingFuture(ReplyFuture[T]):
    """A ReplyFuture that calls ``notify`` once its value or exception is set (in the
    replying thread, after the waiters are released): how an actor asks without blocking
    and hears of the reply as a message (see ``ActorContext.ask_notify``)."""

    def __init__(self, notify: Callable[[], object]) -> None:
        super().__init__()
        self._notify = notify

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._notify()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        super().set_exception(exc_info)
        self._notify()
