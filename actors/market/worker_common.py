"""What the live feed's two workers share: their interface, error rules, backoff, reporting.

The workers (:class:`~actors.market.live_feed.RestPoller`, polling ``fetch_ohlcv``, and
:class:`~actors.market.ws_feed.WsStreamer`, watching ``watch_ohlcv`` over a websocket) have
one interface (:class:`FeedWorker`) and tell their owner the same messages (defined in
:mod:`actors.market.live_feed`). This module owns the rules by which a ccxt failure is
retried (:func:`feed_handler`), the waits between tries (:func:`feed_backoff`), and the
:class:`Reporter` through which a worker tells its owner (a refused message is reported to
the caller, which rebuilds its tracker from the owner's resume point).
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import ModuleType
from typing import Any, ClassVar

from actors.market.candles import CandleTracker, timeframe_ms
from supervisor.backoff import Backoff
from supervisor.clock import Clock
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity

log = logging.getLogger(__name__)

__all__ = [
    "ATTEMPTS",
    "PAGE_LIMIT",
    "FeedWorker",
    "Reporter",
    "feed_backoff",
    "feed_handler",
]

PAGE_LIMIT = 500
ATTEMPTS = 4  # per request (or connection), on a rate limit or a network error


def feed_handler(ccxt: ModuleType) -> ErrorHandler:
    """Rate limits (a NetworkError in ccxt) and network errors are retried; the rest not."""
    network = f"{ccxt.NetworkError.__module__}.{ccxt.NetworkError.__qualname__}"
    return ErrorHandler({network: Rule(Severity.WARNING, Directive.RESUME, retryable=True)},
                        include_defaults=False,
                        default=Rule(Severity.ERROR, Directive.RESUME, retryable=False))


def feed_backoff(poll_interval: float, timeframe: str) -> Backoff:
    """Waits from half a poll interval (at most 1 s) up to half a timeframe (at most 30 s)."""
    initial = min(poll_interval / 2, 1.0)
    return Backoff(initial=initial, maximum=max(initial, min(timeframe_ms(timeframe) / 2000,
                                                             30.0)), jitter=0.1)


class Reporter:
    """Tells a worker's owner its messages, and whether the feed is failing (one trouble
    message when it starts failing, one when it works again: ``trouble(failing, error,
    severity, detail)`` builds it)."""

    def __init__(self, source: str, tell: Callable[[object], None],
                 trouble: Callable[..., object]) -> None:
        self.source = source
        self._tell = tell
        self._trouble = trouble
        self.failing = False

    def send(self, message: object, *, quiet: bool = False) -> bool:
        """Tell the owner ``message``; False when it refused it (a full mailbox, or gone)."""
        try:
            self._tell(message)
        except Exception as exc:  # refused: a full mailbox, or the owner is gone
            if not quiet:
                log.warning("market feed %s: the market refused %s (%s); fetching again",
                            self.source, type(message).__name__, exc)
            return False
        return True

    def trouble(self, handler: ErrorHandler, exc: Exception) -> None:
        """The feed failed after its retries: log it, and tell the owner once."""
        rule = handler.classify(exc)
        text = str(exc)
        detail = text if len(text) <= 300 else text[:297] + "..."
        log.warning("market feed %s: fetching failed (%s): %s", self.source,
                    type(exc).__name__, detail)
        if not self.failing:
            self.failing = True
            self.send(self._trouble(True, type(exc).__name__, rule.severity.name.lower(),
                                    detail), quiet=True)

    def works(self) -> None:
        """The feed works (again): tell the owner if it was failing."""
        if self.failing:
            self.failing = False
            self.send(self._trouble(False), quiet=True)


class FeedWorker(abc.ABC):
    """The workers' common part: the settings every worker takes (its constructor is the
    workers' interface), its daemon thread (``start``, ``alive``), its :class:`Reporter`
    and the tracker it starts from. A subclass names its thread and its trouble message
    (``thread_prefix``, ``trouble``: built as ``trouble(incarnation, failing, error,
    severity, detail)``) and runs in ``_run``.

    ``tell`` delivers a message to the owner and raises when it is refused; ``resume``
    returns the owner's last delivered candle per symbol (seconds)."""

    thread_prefix: ClassVar[str]
    trouble: ClassVar[Callable[..., object]]

    def __init__(self, *, incarnation: int, exchange: str, symbols: Sequence[str],
                 timeframe: str, ccxt_options: Mapping[str, Any], poll_interval: float,
                 stale_after: float, clock: Clock, tell: Callable[[object], None],
                 resume: Callable[[], Mapping[str, float]], warmup: int = 1) -> None:
        self.incarnation = incarnation
        self.exchange_id = exchange
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.options = dict(ccxt_options)
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.warmup = warmup  # closed candles a symbol with no resume point starts with
        self.clock = clock
        self.source = f"{exchange}:{timeframe}"
        self._resume = resume
        self._report = Reporter(self.source, tell, partial(type(self).trouble, incarnation))
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"{self.thread_prefix}-{exchange}")

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @abc.abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """End the worker now and join its thread (at most ``timeout`` seconds)."""

    @abc.abstractmethod
    def _run(self) -> None:
        """The thread's body."""

    def _tracker(self) -> CandleTracker:
        """A tracker that starts after the owner's last delivered candles."""
        return CandleTracker(self.source, self.symbols, self.timeframe,
                             start=self.clock.wall(), stale_after=self.stale_after,
                             warmup=self.warmup,
                             resume={s: at for s, at in self._resume().items()
                                     if s in self.symbols})
