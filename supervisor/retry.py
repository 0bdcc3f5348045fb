"""Retrying calls inside an actor: tenacity, driven by the error handler, never for unsafe calls.

A call is retried only when the error handler marks its exception ``retryable`` (network
trouble, rate limits), with the backoff policy's waits, on the runtime's clock. A function
marked with :func:`unsafe_to_retry` (sending a payment, say) is called exactly once, whatever
it raises: repeating it could do the thing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import tenacity

from supervisor.backoff import Backoff
from supervisor.clock import Clock, SystemClock
from supervisor.error_handler import ErrorHandler

log = logging.getLogger(__name__)

__all__ = ["Retrier", "is_unsafe_to_retry", "unsafe_to_retry"]

P = ParamSpec("P")
R = TypeVar("R")

_MARK = "__botvisor_unsafe_to_retry__"


def unsafe_to_retry(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark ``fn`` as never to be retried by a :class:`Retrier`."""
    setattr(fn, _MARK, True)
    return fn


def is_unsafe_to_retry(fn: Callable[..., Any]) -> bool:
    target = getattr(fn, "__func__", fn)  # bound methods carry the mark on their function
    return bool(getattr(target, _MARK, False))


class Retrier:
    """Owns a retry policy: how many attempts, how long between them, and what is retryable."""

    def __init__(
        self,
        handler: ErrorHandler | None = None,
        *,
        attempts: int = 5,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        max_elapsed: float | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.handler = handler or ErrorHandler()
        self.attempts = attempts
        self.backoff = backoff or Backoff(initial=0.2, maximum=10.0, jitter=0.2)
        self.clock = clock or SystemClock()
        self.max_elapsed = max_elapsed
        # the waits of call_async; a caller in an asyncio loop may set a wait its stop ends
        self.async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn``; retry on retryable failures; re-raise the last failure when done."""
        if is_unsafe_to_retry(fn):
            return fn(*args, **kwargs)
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.attempts)
        if self.max_elapsed is not None:
            stop = stop | _StopAfterElapsed(self.clock, self.max_elapsed)
        retrying = tenacity.Retrying(
            stop=stop,
            wait=self.backoff.wait_strategy(),
            retry=tenacity.retry_if_exception(lambda e: self.handler.classify(e).retryable),
            sleep=self.clock.sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        return retrying(fn, *args, **kwargs)

    async def call_async(self, fn: Callable[P, Awaitable[R]], *args: P.args,
                         **kwargs: P.kwargs) -> R:
        """:meth:`call` for a coroutine function, awaited in the caller's asyncio loop. The
        waits between attempts are ``await self.async_sleep(seconds)``: ``asyncio.sleep``
        unless the caller set one that its stop ends (see :attr:`async_sleep`).

        >>> import asyncio
        >>> tries = []
        >>> async def flaky() -> str:
        ...     tries.append(1)
        ...     if len(tries) < 3:
        ...         raise ConnectionError("reset")
        ...     return "ok"
        >>> retrier = Retrier(attempts=5, backoff=Backoff(initial=0.0, maximum=0.0, jitter=0))
        >>> asyncio.run(retrier.call_async(flaky)), len(tries)
        ('ok', 3)
        """
        if is_unsafe_to_retry(fn):
            return await fn(*args, **kwargs)
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.attempts)
        if self.max_elapsed is not None:
            stop = stop | _StopAfterElapsed(self.clock, self.max_elapsed)
        retrying = tenacity.AsyncRetrying(
            stop=stop,
            wait=self.backoff.wait_strategy(),
            retry=tenacity.retry_if_exception(lambda e: self.handler.classify(e).retryable),
            sleep=self.async_sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        return await retrying(fn, *args, **kwargs)


class _StopAfterElapsed(tenacity.stop.stop_base):
    """Stop once ``limit`` seconds have passed on ``clock`` since the first attempt.

    tenacity's own ``stop_after_delay`` reads the wall clock; this reads the injected one,
    so a ManualClock drives it in tests.
    """

    def __init__(self, clock: Clock, limit: float) -> None:
        self.clock = clock
        self.limit = limit
        self.started = clock.now()

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock.now() - self.started >= self.limit


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    err = outcome.exception() if outcome is not None else None
    name = getattr(state.fn, "__qualname__", "call")
    log.warning("retrying %s after attempt %d: %r", name, state.attempt_number, err)
