"""The market actor's live half (``source: ccxt``): its worker, its resume point, its alerts.

:class:`LiveSource` is owned by the :class:`~actors.market.feed.MarketActor` and called
only on the actor's thread. It owns the worker thread (built in :meth:`LiveSource.start`,
the one place a worker is constructed), the last delivered candle per symbol (the resume
point the worker refetches from after a refused delivery, also written to the resume file
after every delivery), what the worker's health and trouble reports turn into (the
breaker's ``FeedHealth``, alerts), and the newest candle still forming per symbol (a
latest price for the cursor and the marks, never a bar to act on). The actor stays the
only writer of its own state: it takes the closed candles grouped into steps
(:func:`candle_steps`) and emits them itself, then hands its last bars back through
:meth:`LiveSource.delivered`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from actors.common.latest_file import LatestFileWriter
from actors.common.messages import Alert
from actors.market.candles import timeframe_ms
from actors.market.contract import BadBar, Bar, FeedHealth
from actors.market.data import check_bar
from actors.market.live_feed import (
    PRIVATE_OPTIONS,
    LiveCandles,
    LiveTrouble,
    read_resume,
    resume_record,
)
from actors.market.worker_common import FeedWorker
from actors.market.ws_feed import make_worker, ws_capable
from supervisor.context import ActorContext

log = logging.getLogger(__name__)

# seconds between two writes of the resume file while candles come faster than that: a
# venue's close of a minute (every symbol's candle within milliseconds) is one write or two
RESUME_WRITE_INTERVAL = 0.05

__all__ = [
    "LiveSettings",
    "LiveSource",
    "candle_steps",
    "check_live",
]


class LiveSettings(Protocol):
    """What the live half reads of the market's settings (``MarketActor.Settings``)."""

    @property
    def exchange(self) -> str | None: ...
    @property
    def symbols(self) -> dict[str, float] | tuple[str, ...] | None: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def ws_venue(self) -> str: ...
    @property
    def ccxt_options(self) -> dict[str, Any]: ...
    @property
    def stale_after(self) -> float: ...
    @property
    def warmup(self) -> int: ...
    @property
    def breaker(self) -> str: ...
    @property
    def alerts(self) -> str: ...
    @property
    def live_symbols(self) -> tuple[str, ...]: ...
    @property
    def live_poll_interval(self) -> float: ...


class LiveSource:
    """Owns the live feed's worker and resume point (see the module docstring)."""

    def __init__(self, settings: LiveSettings, ctx: ActorContext,
                 clock_path: Path | None) -> None:
        assert settings.exchange is not None
        self.settings = settings
        self.exchange = settings.exchange
        self.ctx = ctx
        self.clock_path = clock_path
        self._worker: FeedWorker | None = None
        self._delivered: dict[str, float] = {}  # last delivered candle per symbol
        # the newest forming candle per symbol, while it is newer than the symbol's last
        # closed bar (a closed one that catches it up takes it out: see latest)
        self._ahead: dict[str, Bar] = {}
        self._file: LatestFileWriter | None = None  # the resume file's writer thread

    def start(self, last: Mapping[str, Bar] | None) -> None:
        """Start the worker after ``last`` (a restart: the last instance's bars), or after
        what the resume file holds (a new process)."""
        s = self.settings
        if last is not None:
            self._delivered = {sym: b.at for sym, b in last.items()}
        else:
            path = self.clock_path
            resume = {} if path is None else read_resume(path, self.exchange, s.timeframe)
            self._delivered = {sym: at for sym, at in resume.items() if sym in s.live_symbols}
        name, tell = self.ctx.name, self.ctx.tell
        self._worker = make_worker(
            s.transport, incarnation=self.ctx.incarnation, exchange=self.exchange,
            symbols=s.live_symbols,
            timeframe=s.timeframe, ccxt_options=s.ccxt_options,
            poll_interval=s.live_poll_interval, stale_after=s.stale_after,
            clock=self.ctx.clock, tell=lambda m: tell(name, m), resume=self.resume_point,
            warmup=s.warmup, process=s.ws_venue == "process")
        self._worker.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the worker, and write the resume file's last content. ``wait=False`` (a
        crash, the replacement comes at once) only tells the worker to stop: a request it
        has out ends by its own timeout on its thread, not on the actor's, and what it
        tells after is ignored by the replacement (another incarnation). The file's writer
        is always waited for (one write at most): two writers of one file must not
        overlap."""
        if self._worker is not None:
            self._worker.stop(5.0 if wait else 0.0)
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except Exception as exc:  # stopping (or failing) goes on: the file as it was
                log.warning("market feed %s: the resume file's last write failed: %s",
                            self.exchange, exc)

    def resume_point(self) -> dict[str, float]:
        """The last delivered candle per symbol (read by the worker thread: the dict is
        replaced, never changed, so reading it needs no lock)."""
        return dict(self._delivered)

    def problems(self, message: LiveCandles) -> tuple[BadBar, ...]:
        """The candles the worker rejected, as the actor counts them; gaps are logged."""
        for gap in message.gaps:
            log.warning("market feed %s: %s has %d candles missing between %s and %s "
                        "(the venue has none)", self.exchange, gap.symbol, gap.missing,
                        gap.after, gap.before)
        return tuple(BadBar(r.reason, f"{r.symbol} at {r.at}: {r.detail}")
                     for r in message.rejected)

    def forming(self, bars: Sequence[Bar], last: Mapping[str, Bar]) -> list[Bar]:
        """Take the worker's forming candles: those newer than the last closed bar of their
        symbol and passing the bad-bar rules (a bad one is left out, not counted: its
        closed version is, when it comes). Returns them, to mark positions with."""
        taken = []
        for bar in bars:
            before = last.get(bar.symbol)
            try:
                check_bar(bar, None if before is None else before.at)
            except BadBar:
                continue
            self._ahead[bar.symbol] = bar
            taken.append(bar)
        return taken

    def latest(self, last: Mapping[str, Bar], closed: Sequence[Bar] = ()) -> dict[str, Bar]:
        """Per symbol the newer of the last closed bar and the forming candle. ``closed``:
        the bars that became last since the previous call (a forming candle they reach is
        dropped), so a step costs what it changed, not what the feed holds."""
        ahead = self._ahead
        if ahead:
            for bar in closed:
                forming = ahead.get(bar.symbol)
                if forming is not None and forming.at <= bar.at:
                    del ahead[bar.symbol]
        return {**last, **ahead}

    def delivered(self, last: Mapping[str, Bar]) -> None:
        """The actor emitted closed candles and the last bars of the symbols they were of
        are now ``last``: the worker resumes after them, and so does a new process (the
        resume file).

        The file is written on a thread of its own (:class:`LatestFileWriter`: atomically,
        durably, the newest content only), so the actor's shared thread never waits for the
        disk, and writes it at most every ``RESUME_WRITE_INTERVAL`` while candles come
        faster. A process killed may leave the file behind by the candles delivered in its
        last moment (normally under a millisecond; up to that interval while they come
        faster, as in a catch-up or a minute's close); the next process delivers those again,
        and their signals carry the same ids, which the executor's checks refuse to order
        twice. A write that failed fails the actor at its next delivery, naming the file."""
        delivered = self._delivered = self._delivered | {sym: b.at for sym, b in last.items()}
        if self.clock_path is None:
            return
        if self._file is None:
            self._file = LatestFileWriter(self.clock_path, self.ctx.chaos,
                                          name=f"market-resume-{self.exchange}",
                                          min_interval=RESUME_WRITE_INTERVAL)
        # encoded on the writer's thread, for a content it writes (the dict is never changed:
        # the next delivery replaces it)
        exchange, timeframe = self.exchange, self.settings.timeframe
        self._file.put(lambda: resume_record(exchange, timeframe, delivered))

    def health(self, health: FeedHealth) -> None:
        s = self.settings
        self.ctx.try_tell(s.breaker, health)
        if health.stale:
            log.warning("market feed %s is stale: %s", health.source,
                        ", ".join(health.stale_symbols))
            self.ctx.try_tell(s.alerts, Alert(
                key="market.feed_stale", severity="warning",
                title=f"Market feed {health.source} is stale",
                body=f"no closed candle for {s.stale_after:g} timeframes: "
                     f"{', '.join(health.stale_symbols)}"))
        else:
            log.info("market feed %s is fresh again", health.source)
            self.ctx.try_tell(s.alerts, Alert(
                key="market.feed_fresh", severity="info",
                title=f"Market feed {health.source} is fresh again",
                body="closed candles arrive again"))

    def trouble(self, trouble: LiveTrouble) -> None:
        source = f"{self.exchange}:{self.settings.timeframe}"
        alerts = self.settings.alerts
        if trouble.failing:
            log.error("market feed %s fails (%s, %s): %s", source, trouble.error,
                      trouble.severity, trouble.detail)
            self.ctx.try_tell(alerts, Alert(
                key="market.feed_error", severity="error",
                title=f"Market feed {source} fails: {trouble.error}",
                body=f"{trouble.detail} ({trouble.severity}; retried with backoff, polling "
                     "goes on; the feed goes stale while it lasts)"))
        else:
            log.info("market feed %s works again", source)
            self.ctx.try_tell(alerts, Alert(
                key="market.feed_recovered", severity="info",
                title=f"Market feed {source} works again",
                body="the missed closed candles are fetched from the last delivered"))


def candle_steps(bars: Sequence[Bar]) -> list[list[Bar]]:
    """Closed candles (in time order) grouped into market steps, one per candle time."""
    steps: list[list[Bar]] = []
    for bar in bars:
        if steps and bar.at == steps[-1][0].at:
            steps[-1].append(bar)
        else:
            steps.append([bar])
    return steps


def check_live(s: LiveSettings) -> None:
    """``source: ccxt`` settings: a ccxt exchange id, symbols as a list, a timeframe, and no
    credentials (public endpoints only)."""
    try:
        import ccxt
    except ImportError:
        raise ValueError("source 'ccxt' needs the ccxt package: pip install "
                         "'botvisor[live]'") from None
    if not s.exchange:
        raise ValueError("exchange: source 'ccxt' needs a ccxt exchange id (binance, ...)")
    if s.exchange not in ccxt.exchanges:
        raise ValueError(f"exchange: {s.exchange!r} is not a ccxt exchange id")
    if not isinstance(s.symbols, tuple) or not s.symbols:
        raise ValueError("symbols: source 'ccxt' needs a list of symbols (BTC/USDT, ...)")
    if len(set(s.symbols)) != len(s.symbols):
        raise ValueError("symbols: a symbol is listed twice")
    timeframe_ms(s.timeframe)
    # auto asks too: ccxt.pro is imported here, at validation, not on the market's start
    capable = s.transport != "rest" and ws_capable(s.exchange)
    if s.transport == "ws" and not capable:
        raise ValueError(f"transport: 'ws' needs candles by websocket, and ccxt.pro has "
                         f"none for {s.exchange!r} (watchOHLCV); use 'rest' or 'auto'")
    secret = sorted(k for k in s.ccxt_options if k in PRIVATE_OPTIONS)
    if secret:
        raise ValueError(f"ccxt_options: {', '.join(secret)}: the live feed uses public "
                         "endpoints only; no API key belongs here")
