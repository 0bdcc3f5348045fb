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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from actors.common.storage import atomic_write
from actors.market.candles import CandleTracker, Gap, Rejected, timeframe_ms
from actors.market.contract import Bar, FeedHealth
from actors.market.worker_common import (
    ATTEMPTS,
    PAGE_LIMIT,
    FeedWorker,
    feed_backoff,
    feed_handler,
)
from supervisor.clock import Clock
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
    "resume_record",
    "write_resume",
]

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


class RestPoller(FeedWorker):
    """Owns the polling thread, its ccxt exchange and its candle tracker (module docstring).

    ``tell`` delivers a message to the owner and raises when it is refused; ``resume``
    returns the owner's last delivered candle per symbol (seconds)."""

    thread_prefix = "market-feed"
    trouble = LiveTrouble

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stop = threading.Event()
        self._send = self._report.send
        self._forming: tuple[Bar, ...] = ()  # the forming candles the owner was last told

    def stop(self, timeout: float = 5.0) -> None:
        """End every wait now and join the thread (a request in flight ends by its own
        timeout; the thread is a daemon, and what it tells after is ignored by the owner's
        replacement)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        import ccxt

        retrier = Retrier(feed_handler(ccxt), attempts=ATTEMPTS,
                          backoff=feed_backoff(self.poll_interval, self.timeframe),
                          clock=_StopClock(self.clock, self._stop))
        exchange: Any = None
        tracker = self._fresh_tracker()
        while not self._stop.is_set():
            try:
                if exchange is None:
                    exchange = self._build(ccxt)
                self._poll(exchange, tracker, retrier)
            except _Stopped:
                return
            except _Refused:
                tracker = self._fresh_tracker()  # fetch again from what the owner has
            except Exception as exc:  # after the retries: report it, the feed goes stale
                self._report.trouble(retrier.handler, exc)
            else:
                self._report.works()
            change = tracker.health_change(self.clock.wall())
            if change is not None and not self._send(LiveHealth(self.incarnation, change),
                                                     quiet=True):
                tracker = self._fresh_tracker()
            if self._stop.wait(self.poll_interval):
                return

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

    def _fresh_tracker(self) -> CandleTracker:
        """A tracker from the owner's resume point; the owner is told the forming candles
        again."""
        self._forming = ()
        return self._tracker()

class _Refused(Exception):
    """The owner refused a delivery: rebuild the tracker from what it has."""


# -- the resume file ---------------------------------------------------------------------------
def read_resume(path: Path, exchange: str, timeframe: str) -> dict[str, float]:
    """The last delivered candle per symbol (seconds) a previous process wrote; empty when
    there is no file or it was written for another venue or timeframe (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.warning("no market feed file %s: the %s feed starts with its warm-up (the latest "
                    "closed candles)", path, exchange)
        return {}
    except OSError as exc:
        raise ResumeError(f"market feed file {path}: cannot read it: "
                          f"{exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        if data.get("source") != "ccxt" or (data.get("exchange"), data.get("timeframe")) != (
                exchange, timeframe):
            log.warning("market feed file %s was written for another feed (%s %s): the %s "
                        "feed starts with its warm-up (the latest closed candles)", path,
                        data.get("exchange"), data.get("timeframe"), exchange)
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


def resume_record(exchange: str, timeframe: str, last: Mapping[str, float]) -> bytes:
    """The resume file's content: the last delivered candle per symbol (seconds)."""
    record = {"version": 1, "source": "ccxt", "exchange": exchange, "timeframe": timeframe,
              "last": dict(sorted(last.items()))}
    return json.dumps(record).encode("utf-8")


def write_resume(path: Path, exchange: str, timeframe: str, last: Mapping[str, float],
                 chaos: ActorFaults | None = None) -> None:
    """Write the resume file (atomically and durably), from this thread."""
    try:
        atomic_write(path, resume_record(exchange, timeframe, last), chaos)
    except OSError as exc:
        raise ResumeError(f"market feed file {path}: cannot write it: "
                          f"{exc.strerror or exc}") from None
