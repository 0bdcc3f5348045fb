"""The live market source over a websocket (``source: ccxt``, ``transport: ws``): a worker.

:class:`WsStreamer` has the interface and the messages of
:class:`~actors.market.live_feed.RestPoller`. It owns one thread running one asyncio loop,
the venue it drives from there (:class:`~actors.market.ws_venue.CcxtVenue`, the
``ccxt.pro`` exchange in this thread; or, with ``process``,
:class:`~actors.market.ws_child.ChildVenue`, the same in a child process, so that parsing
the stream takes no time under the bot's interpreter lock), and the feed's
:class:`~actors.market.candles.CandleTracker`. A session streams every symbol's updates
(the venue's ``stream``) into the tracker as they are parsed, with the venue's time
(``clock.wall()``) as the time each was taken: a candle is closed once that time passes
its end or a later candle follows it. Each session first fetches (``fetch_ohlcv``, paging)
the closed candles missed since the tracker's backfill point, and fetches again whatever
the tracker asks for (a hole before a streamed candle, or a candle that ended with only its
forming version seen for a whole check interval); the tracker merges both, so none is
missed or doubled. The owner is told, through ``tell``, :class:`LiveCandles` (closed
candles in order, each once; rejected ones; gaps; ``forming``, the newest not-delivered
candle of the symbols that changed), coalesced per turn of the loop, and held while the
owner has not yet delivered the last candle it was told (at most ``HOLD_MAX``: a slow owner
gets fewer, larger messages, not a growing queue); :class:`LiveHealth` on every change of
staleness, checked every ``poll_interval`` on a timer in the loop, so a stalled open socket
goes stale; :class:`LiveTrouble` when the feed fails after its retries and when it works
again (it works when the stream delivers). A dropped socket or a failed fetch ends the
session (a socket that fails lets the fetches under way end first, so a venue whose
websocket cannot be reached still delivers by REST, once a session): the next one starts
after a backoff (:func:`feed_backoff`, waited on the stop signal). A refused message
rebuilds the tracker from ``resume()`` and fetches again.

:meth:`WsStreamer.stop` ends it from any thread at once: it cancels the session through
``loop.call_soon_threadsafe``, the loop closes the venue, and the thread is joined.

:func:`make_worker` picks the worker for a ``transport`` (``auto``: the websocket when
``ccxt.pro`` has the exchange with ``watchOHLCV``); :func:`ws_capable` answers that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from actors.market.candles import CandleTracker, Delivery, Gap, Rejected
from actors.market.contract import Bar
from actors.market.live_feed import LiveCandles, LiveHealth, LiveTrouble, RestPoller
from actors.market.worker_common import ATTEMPTS, PAGE_LIMIT, FeedWorker, feed_backoff, feed_handler
from actors.market.ws_child import ChildVenue
from actors.market.ws_venue import CcxtVenue
from supervisor.error_handler import ErrorHandler
from supervisor.retry import Retrier

log = logging.getLogger(__name__)

__all__ = ["WsStreamer", "make_worker", "stuck_for_an_interval", "ws_capable"]

T = TypeVar("T")
HOLD_POLL = 0.0005  # seconds between looks at whether the owner took the last message
HOLD_MAX = 0.25  # seconds (the loop's) a message may wait for the one before it to be taken
FETCH_GRACE = 60.0  # seconds a failed session waits for its fetches to end


def stuck_for_an_interval(before: set[tuple[str, int]], asked: Iterable[tuple[str, int]]
                          ) -> tuple[set[str], set[tuple[str, int]]]:
    """The symbols to fetch by REST, and what is waited for now, from the candles (symbol,
    open ms) the last check waited for (``before``) and those this one asks for: a symbol
    is fetched when the same candle was waited for a whole check interval. A stream that
    moved on meanwhile asks for a later candle, and is given an interval more.

    >>> stuck_for_an_interval({("A", 0), ("B", 0)}, [("A", 0), ("B", 60_000)])
    ({'A'}, {('A', 0), ('B', 60000)})
    """
    now = set(asked)
    return {s for s, _ in now & before}, now


def ws_capable(exchange: str) -> bool:
    """Whether ``ccxt.pro`` has ``exchange`` and it watches candles (``watchOHLCV``)."""
    import ccxt.pro

    cls = getattr(ccxt.pro, exchange, None) if exchange in ccxt.pro.exchanges else None
    return cls is not None and bool(cls().has.get("watchOHLCV"))


def make_worker(transport: str, *, process: bool = False, **kwargs: Any
                ) -> RestPoller | WsStreamer:
    """The live feed's worker for ``transport`` (``auto``, ``ws`` or ``rest``), built with
    the workers' common keywords (see :class:`WsStreamer`); ``process``: a websocket
    worker's venue in a child process."""
    if transport == "ws" or (transport == "auto" and ws_capable(kwargs["exchange"])):
        return WsStreamer(process=process, **kwargs)
    return RestPoller(**kwargs)


class WsStreamer(FeedWorker):
    """Owns the websocket thread, its loop, its ccxt.pro exchange and its candle tracker
    (module docstring). ``tell`` delivers a message to the owner and raises when it is
    refused; ``resume`` returns the owner's last delivered candle per symbol (seconds)."""

    thread_prefix = "market-ws"
    trouble = LiveTrouble

    def __init__(self, *, process: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.process = process  # the venue in a child process (ws_child), else this thread
        self._lock = threading.Lock()
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._halted: asyncio.Event | None = None  # the stop signal, in the loop
        # loop state (touched only on the loop's thread)
        self._candles: CandleTracker | None = None
        self._venue: CcxtVenue | ChildVenue | None = None
        self._handler: ErrorHandler | None = None
        self._retrier: Retrier | None = None  # a fetch's retries (the runtime's helper)
        self._want: set[str] = set()  # symbols to fetch by REST
        self._fetch_wake: asyncio.Event | None = None
        self._fetched: asyncio.Event | None = None  # set while nothing is left to fetch
        # (symbol, candle ms) the last check found waiting for a fetch
        self._stuck: set[tuple[str, int]] = set()
        self._out: list[Delivery] = []
        self._formed: set[str] = set()
        self._flush_due = False
        # the last candle of each message told and not known delivered, and when (two at most)
        self._told: list[tuple[str, float, float]] = []
        self._worked = False  # the session took in an update or a fetch
        self._order = {s: i for i, s in enumerate(self.symbols)}

    # -- the interface ------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the session now (from any thread), let the loop close the exchange, and
        join the thread (what it tells after is ignored by the owner's replacement)."""
        with self._lock:
            self._stopped = True
            loop, main = self._loop, self._main
        if loop is not None and main is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(self._halt, main)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def venue_pid(self) -> int | None:
        """The venue's child process id, with ``process`` while one runs; else None."""
        venue = self._venue
        return venue.pid if isinstance(venue, ChildVenue) else None

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._start_loop())

    def _halt(self, main: asyncio.Task[None]) -> None:
        if self._halted is not None:
            self._halted.set()
        main.cancel()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` on the stop signal; a stop ends the wait and the worker."""
        assert self._halted is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._halted.wait(), max(0.0, seconds))
        if self._halted.is_set():
            raise asyncio.CancelledError

    async def _start_loop(self) -> None:
        self._halted = asyncio.Event()
        with self._lock:
            if self._stopped:
                return
            self._loop = asyncio.get_running_loop()
            self._main = asyncio.current_task()
        try:
            await self._serve()
        except asyncio.CancelledError:
            pass
        finally:
            if self._venue is not None:
                with contextlib.suppress(Exception):
                    await self._venue.close()

    async def _serve(self) -> None:
        import ccxt

        self._handler = handler = feed_handler(ccxt)
        backoff = feed_backoff(self.poll_interval, self.timeframe)
        self._retrier = Retrier(handler, attempts=ATTEMPTS, backoff=backoff, clock=self.clock)
        self._retrier.async_sleep = self._pause  # a stop ends a wait between attempts
        venue = ChildVenue if self.process else CcxtVenue
        self._venue = venue(self.exchange_id, self.options, self.symbols, self.timeframe,
                            self.source)
        self._candles = self._new_tracker()
        failures = 0
        while True:
            try:
                await self._session()
            except Exception as exc:  # a dropped socket, a failed fetch: a new session
                if self._worked:
                    failures = 0
                failures += 1
                if failures >= ATTEMPTS or not handler.classify(exc).retryable:
                    self._report.trouble(handler, exc)
                else:
                    log.info("market feed %s: %s (%s); connecting again", self.source,
                             type(exc).__name__, exc)
                await self._pause(backoff.delay(failures))

    def _new_tracker(self) -> CandleTracker:
        self._out, self._formed, self._stuck, self._told = [], set(), set(), []
        return self._tracker()

    def _rebuild(self) -> None:
        """The owner refused a message: start again from what it has, fetching it anew."""
        self._candles = self._new_tracker()
        self._want_fetch(set(self.symbols))

    async def _session(self) -> None:
        """One connection: fetch what was missed, subscribe, watch, check; ends by raising."""
        venue = self._venue
        assert venue is not None
        self._worked = False
        self._want = set(self.symbols)
        self._fetch_wake, self._fetched = asyncio.Event(), asyncio.Event()
        self._fetch_wake.set()
        await self._retry(venue.load_markets)
        tasks = [asyncio.create_task(venue.stream(self._took)),
                 asyncio.create_task(self._fetcher()), asyncio.create_task(self._check())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if not tasks[1].done():  # the socket failed: what was missed comes by REST still
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fetched.wait(), FETCH_GRACE)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _took(self, symbol: str, rows: list[list[Any]]) -> None:
        assert self._candles is not None
        self._ok()
        d = self._candles.ingest(symbol, rows, self.clock.wall())
        self._formed.add(symbol)
        self._queue(d)

    async def _fetcher(self) -> None:
        """Fetch by REST what the tracker asks for, paging (one symbol at a time)."""
        assert self._fetch_wake is not None and self._fetched is not None
        while True:
            await self._fetch_wake.wait()
            self._fetch_wake.clear()
            self._fetched.clear()
            while self._want:
                symbol = min(self._want, key=self.symbols.index)
                self._want.discard(symbol)
                await self._fetch(symbol)
            self._fetched.set()

    async def _fetch(self, symbol: str) -> None:
        venue = self._venue
        assert venue is not None
        while True:
            assert self._candles is not None
            tracker = self._candles
            since = tracker.backfill()[symbol]
            asked = self.clock.wall()  # the rows are at least this recent, no more
            rows = await self._retry(venue.fetch_ohlcv, symbol, self.timeframe, since,
                                     PAGE_LIMIT)
            if tracker is not self._candles:  # rebuilt meanwhile: it fetches anew
                return
            self._queue(tracker.ingest(symbol, rows, asked, since=since))
            if len(rows) < PAGE_LIMIT or tracker.backfill()[symbol] <= since:
                return

    async def _check(self) -> None:
        """Every ``poll_interval``: the candles that ended unseen, and the staleness."""
        while True:
            await asyncio.sleep(self.poll_interval)
            assert self._candles is not None
            now = self.clock.wall()
            d = self._candles.tick(now)
            due, self._stuck = stuck_for_an_interval(self._stuck, d.backfill)
            self._want_fetch(due)
            self._queue(Delivery(d.closed, d.rejected, d.gaps))
            change = self._candles.health_change(now)
            if change is not None and not self._report.send(
                    LiveHealth(self.incarnation, change), quiet=True):
                self._rebuild()

    async def _retry(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(*args)``, retried on rate limits and network errors with the backoff by the
        runtime's :class:`~supervisor.retry.Retrier`; a failure after the retries is told as
        the poller tells it, and raised."""
        assert self._retrier is not None and self._handler is not None
        try:
            return await self._retrier.call_async(fn, *args)
        except Exception as exc:
            self._report.trouble(self._handler, exc)
            raise

    # -- telling the owner --------------------------------------------------------------------
    def _ok(self) -> None:
        """The stream works (a fetch alone does not say so: the socket may be down)."""
        self._worked = True
        self._report.works()

    def _want_fetch(self, symbols: set[str]) -> None:
        if symbols and self._fetch_wake is not None:
            self._want |= symbols
            self._fetch_wake.set()

    def _queue(self, d: Delivery) -> None:
        """Hold ``d`` for the flush at the end of this turn of the loop (one message for all
        the updates the loop took in at once); fetch what it asks for."""
        if d.backfill:
            self._want_fetch({s for s, _ in d.backfill})
        if d.closed or d.rejected or d.gaps:
            self._out.append(d)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._candles is None:
            return
        if self._out and self._owner_busy():  # these go with the next: one message, later
            self._flush_due = True
            asyncio.get_running_loop().call_later(HOLD_POLL, self._flush)
            return
        out, self._out = self._out, []
        formed, self._formed = self._formed, set()
        bars: list[Bar] = [b for d in out for b in d.closed]
        rejected: tuple[Rejected, ...] = tuple(r for d in out for r in d.rejected)
        gaps: tuple[Gap, ...] = tuple(g for d in out for g in d.gaps)
        if len(out) > 1:
            order = self._order
            bars.sort(key=lambda b: (b.at, order[b.symbol]))
        forming = self._candles.forming(formed) if formed else ()
        if not (bars or rejected or gaps or forming):
            return
        if not self._report.send(LiveCandles(self.incarnation, tuple(bars), rejected, gaps,
                                             forming)):
            self._rebuild()
        elif bars:
            # the hold is timed on the loop's own clock, as its timers are (a real-time
            # pacing of messages between two threads, not market time)
            self._told = [*self._told[-1:],
                          (bars[-1].symbol, bars[-1].at, asyncio.get_running_loop().time())]

    def _owner_busy(self) -> bool:
        """Two messages told are not delivered yet (``resume()`` is the owner's last
        delivered candle per symbol), the older for less than ``HOLD_MAX`` seconds: the
        owner works through one and has the next queued, and what came since waits to go
        with what comes next. So a message goes at once to an owner that keeps up (one may
        wait in its mailbox), and a slow owner gets fewer, larger messages instead of a
        growing queue."""
        told = self._told
        if told:
            now, delivered = asyncio.get_running_loop().time(), self._resume()
            told[:] = [(s, at, when) for s, at, when in told
                       if now - when < HOLD_MAX and delivered.get(s, -1.0) < at]
        return len(told) >= 2
