"""The live market source over REST (``source: ccxt``, ``transport: rest``): a worker thread.

:class:`RestPoller` owns one thread, the ccxt exchange it builds there (public endpoints
only, ``enableRateLimit``: ccxt's own throttle paces the requests), and the feed's
:class:`~actors.market.candles.CandleTracker`. Every ``poll_interval`` it fetches each
symbol's candles from the tracker's backfill point (paging while pages come full), and
tells its owner, through ``tell``, what the tracker produced: :class:`LiveCandles` (closed
candles in order, each once; rejected ones; gaps; after each poll, the candles still
forming when they changed), :class:`LiveHealth` on every change of
the feed's staleness, and :class:`LiveTrouble` when polling fails after its retries and
when it works again. Rate limits and network errors are retried with backoff by
:class:`~supervisor.retry.Retrier`; every wait (the poll interval, a backoff) is an Event
wait, so :meth:`RestPoller.stop` ends it at once. Venue time is ``clock.wall()``.

A message its owner refuses (a full mailbox) is not lost: the tracker is rebuilt from
``resume()`` (the owner's last delivered candles) and the candles are fetched again.

:func:`read_resume` and :func:`write_resume` keep the last delivered candle per symbol in a
small JSON file (written atomically), so a new process resumes where the last one was.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from actors.common.storage import atomic_write
from actors.market.candles import CandleTracker, Gap, Rejected, timeframe_ms
from actors.market.contract import Bar, FeedHealth
from supervisor.backoff import Backoff
from supervisor.clock import Clock
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity
from supervisor.faults import ActorFaults
from supervisor.retry import Retrier

log = logging.getLogger(__name__)

__all__ = [
    "PRIVATE_OPTIONS",
    "LiveCandles",
    "LiveHealth",
    "LiveTrouble",
    "RestPoller",
    "ResumeError",
    "default_poll_interval",
    "read_resume",
    "write_resume",
]

PAGE_LIMIT = 500
ATTEMPTS = 4  # per request, on a rate limit or a network error
PRIVATE_OPTIONS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress")


def default_poll_interval(timeframe: str) -> float:
    """A tenth of the timeframe, at most 60 seconds."""
    return min(timeframe_ms(timeframe) / 10_000, 60.0)


@dataclass(frozen=True, slots=True)
class LiveCandles:
    """Worker to owner: closed candles (in order, each once), rejected ones, gaps found,
    and the newest candle per symbol not delivered yet (``forming``: a latest price for
    marking and for the paper exchange, never acted on). ``incarnation`` names the owner
    instance that started the worker."""

    incarnation: int
    bars: tuple[Bar, ...]
    rejected: tuple[Rejected, ...] = ()
    gaps: tuple[Gap, ...] = ()
    forming: tuple[Bar, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveHealth:
    """Worker to owner: the feed's staleness changed."""

    incarnation: int
    health: FeedHealth


@dataclass(frozen=True, slots=True)
class LiveTrouble:
    """Worker to owner: polling failed after its retries (``failing``), or works again.
    ``error`` is the exception's class, ``severity`` its classification."""

    incarnation: int
    failing: bool
    error: str = ""
    severity: str = ""
    detail: str = ""


class ResumeError(RuntimeError):
    """The feed's resume file cannot be read or written; the message names the file."""


class _Stopped(Exception):
    """The poller was stopped during a wait."""


class _StopClock:
    """The retrier's clock: its sleeps are waits on the stop Event (a stop ends them)."""

    def __init__(self, clock: Clock, stop: threading.Event) -> None:
        self._clock = clock
        self._stop = stop

    def now(self) -> float:
        return self._clock.now()

    def wall(self) -> float:
        return self._clock.wall()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self._clock.call_later(delay, callback)

    def sleep(self, seconds: float) -> None:
        if self._stop.wait(max(0.0, seconds)):
            raise _Stopped

    def close(self) -> None:
        self._clock.close()


class RestPoller:
    """Owns the polling thread, its ccxt exchange and its candle tracker (module docstring).

    ``tell`` delivers a message to the owner and raises when it is refused; ``resume``
    returns the owner's last delivered candle per symbol (seconds)."""

    def __init__(self, *, incarnation: int, exchange: str, symbols: Sequence[str],
                 timeframe: str, ccxt_options: Mapping[str, Any], poll_interval: float,
                 stale_after: float, clock: Clock, tell: Callable[[object], None],
                 resume: Callable[[], Mapping[str, float]]) -> None:
        self.incarnation = incarnation
        self.exchange_id = exchange
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.options = dict(ccxt_options)
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.clock = clock
        self._tell = tell
        self._resume = resume
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"market-feed-{exchange}")
        self._failing = False
        self._forming: tuple[Bar, ...] = ()  # the forming candles the owner was last told
        self.source = f"{exchange}:{timeframe}"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every wait now and join the thread (a request in flight ends by its own
        timeout; the thread is a daemon, and what it tells after is ignored by the owner's
        replacement)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        import ccxt

        retrier = Retrier(_handler(ccxt), attempts=ATTEMPTS,
                          backoff=_backoff(self.poll_interval, self.timeframe),
                          clock=_StopClock(self.clock, self._stop))
        exchange: Any = None
        tracker = self._tracker()
        while not self._stop.is_set():
            try:
                if exchange is None:
                    exchange = self._build(ccxt)
                self._poll(exchange, tracker, retrier)
            except _Stopped:
                return
            except _Refused:
                tracker = self._tracker()  # fetch again from what the owner has
            except Exception as exc:  # after the retries: report it, the feed goes stale
                self._trouble(retrier.handler, exc)
            else:
                if self._failing:
                    self._failing = False
                    self._send(LiveTrouble(self.incarnation, False), quiet=True)
            change = tracker.health_change(self.clock.wall())
            if change is not None and not self._send(LiveHealth(self.incarnation, change),
                                                     quiet=True):
                tracker = self._tracker()
            if self._stop.wait(self.poll_interval):
                return

    def _tracker(self) -> CandleTracker:
        self._forming = ()
        resume = {s: at for s, at in self._resume().items() if s in self.symbols}
        return CandleTracker(self.source, self.symbols, self.timeframe,
                             start=self.clock.wall(), resume=resume,
                             stale_after=self.stale_after)

    def _build(self, ccxt: ModuleType) -> Any:
        return getattr(ccxt, self.exchange_id)(self.options | {"enableRateLimit": True})

    def _poll(self, exchange: Any, tracker: CandleTracker, retrier: Retrier) -> None:
        for symbol in self.symbols:
            while not self._stop.is_set():
                since = tracker.backfill()[symbol]
                asked = self.clock.wall()  # the rows are at least this recent, no more
                rows = retrier.call(exchange.fetch_ohlcv, symbol, self.timeframe, since,
                                    PAGE_LIMIT)
                d = tracker.ingest(symbol, rows, asked, since=since)
                if (d.closed or d.rejected or d.gaps) and not self._send(LiveCandles(
                        self.incarnation, d.closed, d.rejected, d.gaps)):
                    raise _Refused
                if len(rows) < PAGE_LIMIT or tracker.backfill()[symbol] <= since:
                    break
        forming = tracker.forming()  # told when it changed, whether or not a candle closed
        if forming != self._forming and self._send(
                LiveCandles(self.incarnation, (), forming=forming), quiet=True):
            self._forming = forming

    def _trouble(self, handler: ErrorHandler, exc: Exception) -> None:
        rule = handler.classify(exc)
        text = str(exc)
        detail = text if len(text) <= 300 else text[:297] + "..."
        log.warning("market feed %s: polling failed (%s): %s", self.source,
                    type(exc).__name__, detail)
        if not self._failing:
            self._failing = True
            self._send(LiveTrouble(self.incarnation, True, type(exc).__name__,
                                   rule.severity.name.lower(), detail), quiet=True)

    def _send(self, message: object, *, quiet: bool = False) -> bool:
        try:
            self._tell(message)
        except Exception as exc:  # refused: a full mailbox, or the owner is gone
            if not quiet:
                log.warning("market feed %s: the market refused %s (%s); fetching again",
                            self.source, type(message).__name__, exc)
            return False
        return True


class _Refused(Exception):
    """The owner refused a delivery: rebuild the tracker from what it has."""


def _handler(ccxt: ModuleType) -> ErrorHandler:
    """Rate limits (a NetworkError in ccxt) and network errors are retried; the rest not."""
    network = f"{ccxt.NetworkError.__module__}.{ccxt.NetworkError.__qualname__}"
    return ErrorHandler({network: Rule(Severity.WARNING, Directive.RESUME, retryable=True)},
                        include_defaults=False,
                        default=Rule(Severity.ERROR, Directive.RESUME, retryable=False))


def _backoff(poll_interval: float, timeframe: str) -> Backoff:
    """Waits from half a poll interval (at most 1 s) up to half a timeframe (at most 30 s)."""
    initial = min(poll_interval / 2, 1.0)
    return Backoff(initial=initial, maximum=max(initial, min(timeframe_ms(timeframe) / 2000,
                                                             30.0)), jitter=0.1)


# -- the resume file ---------------------------------------------------------------------------
def read_resume(path: Path, exchange: str, timeframe: str) -> dict[str, float]:
    """The last delivered candle per symbol (seconds) a previous process wrote; empty when
    there is no file or it was written for another venue or timeframe (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.warning("no market feed file %s: the %s feed starts at its latest closed candle",
                    path, exchange)
        return {}
    except OSError as exc:
        raise ResumeError(f"market feed file {path}: cannot read it: "
                          f"{exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        if data.get("source") != "ccxt" or (data.get("exchange"), data.get("timeframe")) != (
                exchange, timeframe):
            log.warning("market feed file %s was written for another feed (%s %s): the %s "
                        "feed starts at its latest closed candle", path, data.get("exchange"),
                        data.get("timeframe"), exchange)
            return {}
        last = {str(k): float(v) for k, v in dict(data["last"]).items()}
        if not all(math.isfinite(v) and v >= 0 for v in last.values()):
            raise ValueError("a bad candle time")
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise ResumeError(
            f"market feed file {path} is damaged ({type(exc).__name__}: {exc}); the feed "
            "does not start, so no candle is repeated or lost: restore the file, or delete "
            "it to start at the latest closed candle") from None
    return last


def write_resume(path: Path, exchange: str, timeframe: str, last: Mapping[str, float],
                 chaos: ActorFaults | None = None) -> None:
    record = {"version": 1, "source": "ccxt", "exchange": exchange, "timeframe": timeframe,
              "last": dict(sorted(last.items()))}
    try:
        atomic_write(path, json.dumps(record).encode("utf-8"), chaos)
    except OSError as exc:
        raise ResumeError(f"market feed file {path}: cannot write it: "
                          f"{exc.strerror or exc}") from None
