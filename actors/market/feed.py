"""The market data actor: paces bars from a source (or takes a live feed's closed candles)
and fans them out; rejects bad data. The live half is in :mod:`actors.market.live_source`,
the clock file in :mod:`actors.market.clock_file`, the settings model in
:mod:`actors.market.feed_settings`."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from actors.common.messages import Alert
from actors.market.candles import timeframe_ms
from actors.market.clock_file import ClockError, read_clock, write_clock
from actors.market.contract import (
    BadBar,
    Bar,
    Bars,
    FeedBars,
    GetMarketStats,
    MarketCursor,
    MarketOrigin,
    MarketSamples,
    MarketSource,
    MarketStats,
    MarkPrices,
)
from actors.market.data import DEFAULT_SYMBOLS, CsvReplay, SyntheticMarket, check_bar
from actors.market.feed_settings import MarketSettings
from actors.market.live_feed import LiveCandles, LiveHealth, LiveTrouble
from actors.market.live_source import LiveSource, candle_steps
from actors.market.lockstep import Lockstep, stages
from supervisor import SupervisedActor
from supervisor.context import Replied

log = logging.getLogger(__name__)

_MAX_FEED_RUN = 256  # FeedBars merged into one emission at most

__all__ = [
    "ClockError",
    "MarketActor",
]


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: emit the next step. It names the instance that scheduled it: a tick already
    queued when that instance crashed is ignored by its replacement, which starts its own
    chain (two chains would run the market at twice its pace)."""

    incarnation: int


@dataclass(frozen=True, slots=True)
class _LockstepDue:
    """Timer: is the step in progress out of time? (See ``_Tick`` for the incarnation.)"""

    incarnation: int


@dataclass(frozen=True, slots=True)
class _FlushMarks:
    """Timer: send the prices held back by ``marks_interval`` (see ``_Tick`` for why it
    names the instance)."""

    incarnation: int


class MarketActor(SupervisedActor):
    """Owns the feed (synthetic, CSV replay, or a live ccxt feed), its pacing, the
    per-symbol last times, and the market clock file.

    ``source: ccxt``: its live half, a :class:`~actors.market.live_source.LiveSource`,
    starts a worker thread in ``on_start`` (stopped in ``on_stop`` and ``on_failure``) that
    watches or polls the venue and tells this actor the closed candles, which are checked
    and fanned out like replayed bars (one ``Bars`` per candle time), and the feed's health,
    which goes to the breaker (and an alert) on every change. Its candles still forming only
    go into the cursor's ``latest`` and the marks, never to a subscriber or the breaker; a
    candle at or before the last delivered of its symbol (a refetch after a refused
    delivery) is dropped. The clock file then holds the last delivered candle per symbol
    (written after every delivery): a restart resumes after it, losing and repeating none.

    The clock file keeps the feed's position across processes, so market (and so venue)
    time never runs backwards after a restart: before the feed passes the position last
    written, a new one ``clock_lease`` steps ahead is written (atomically). A new process
    resumes at that position (a jump of at most ``clock_lease`` bars), the synthetic
    market from the closes written with it. No file: the feed starts at its first bar (a
    warning is logged); a file that cannot be read fails the start, naming the file.
    """

    accepts: ClassVar[tuple[type, ...]] = (
        FeedBars, GetMarketStats)
    publishes: ClassVar[type] = MarketCursor

    Settings = MarketSettings  # its settings model, by the name configs and tests use

    def __init__(self, settings: MarketSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or MarketSettings()
        self.steps = 0
        self.bars = 0
        self.rejected: Counter[str] = Counter()
        self.last: dict[str, Bar] = {}  # the last good bar of each symbol
        self.finished = False
        self._feed: Iterator[Sequence[Bar | BadBar]] | None = None
        self._marks: dict[str, tuple[float, float]] = {}  # symbol -> (close, at), not sent
        self._marks_sent = -math.inf
        self._marks_timer = False
        self._origin = MarketOrigin()
        self._leased = 0  # the position (origin index + steps) the clock file allows
        self._live: LiveSource | None = None  # source: ccxt
        self._lockstep: Lockstep | None = None  # pace: lockstep
        self._lockstep_timer = False  # a _LockstepDue is scheduled
        self.late_steps = 0  # lockstep steps not done in time (sent on at the timed pace)

    def on_start(self) -> None:
        s = self.settings
        cursor = self.ctx.peek(self.ctx.name)
        if s.source == "ccxt":
            last = None
            if isinstance(cursor, MarketCursor):  # a restart: after what the last one sent
                self.last, self.steps = dict(cursor.last), cursor.steps
                last = self.last
            self._live = LiveSource(s, self.ctx, self._clock_path())
            self._live.start(last)
            return
        skip = 0
        if isinstance(cursor, MarketCursor):  # a restart: resume where the last one was
            skip, self.last, self.steps = cursor.steps, dict(cursor.last), cursor.steps
            self._origin = cursor.origin
        else:  # this process's first start: where the last process's clock got to
            self._origin = self._read_clock()
        self._leased = self._origin.index + skip
        if s.source == "csv":
            if not s.csv_dir:
                raise ValueError("market.settings.csv_dir is required for source 'csv'")
            source: MarketSource = CsvReplay(s.csv_dir)
            skip += self._origin.index
        else:
            symbols = dict(s.symbols if isinstance(s.symbols, dict) else DEFAULT_SYMBOLS)
            symbols.update((k, v) for k, v in self._origin.closes if k in symbols)
            market = SyntheticMarket(symbols, seed=s.seed + self._origin.index,
                                     bar_seconds=s.bar_seconds, crash_at_bar=s.crash_at_bar)
            market.index = self._origin.index
            source = market
        self._feed = iter(source.steps())
        for _ in range(skip):
            next(self._feed, None)
        if s.pace == "lockstep":
            self._lockstep = Lockstep(self.ctx, s.lockstep_timeout)
        self.ctx.schedule(0.0, _Tick(self.ctx.incarnation))

    # -- the clock file ------------------------------------------------------------------------
    def _clock_path(self) -> Path | None:
        return None if self.settings.clock_file is None else Path(self.settings.clock_file)

    def _read_clock(self) -> MarketOrigin:
        """Where the last process's feed may have got to (its last lease), or the start."""
        path = self._clock_path()
        return MarketOrigin() if path is None else read_clock(path, self.settings.source)

    def _renew_lease(self) -> None:
        """Before the feed passes the position the clock file allows, move it ahead."""
        path = self._clock_path()
        if path is None:
            return
        lease = self._origin.index + self.steps + self.settings.clock_lease
        write_clock(path, self.settings.source, lease,
                    {k: b.close for k, b in self.last.items()}, self.ctx.chaos)
        self._leased = lease

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Tick(incarnation):
                if incarnation == self.ctx.incarnation:
                    self._tick()
            case _FlushMarks(incarnation):
                if incarnation == self.ctx.incarnation:
                    self._marks_timer = False
                    self._send_marks(force=True)
            case Replied(token):
                lockstep = self._lockstep
                if lockstep is not None and lockstep.replied(token):
                    self._step_done()
            case _LockstepDue(incarnation) if incarnation == self.ctx.incarnation:
                self._lockstep_timer = False
                self._arm_lockstep()
            case _LockstepDue():
                return None  # an instance's that is gone
            case FeedBars():
                self._feed_run(message)
            case LiveCandles() if message.incarnation == self.ctx.incarnation:
                self._live_candles(message)
            case LiveHealth(incarnation, health) if incarnation == self.ctx.incarnation:
                assert self._live is not None
                self._live.health(health)
            case LiveTrouble() if message.incarnation == self.ctx.incarnation:
                assert self._live is not None
                self._live.trouble(message)
            case LiveCandles() | LiveHealth() | LiveTrouble():
                return None  # from the worker of an instance that is gone: ignored
            case GetMarketStats():
                return MarketStats(self.steps, self.bars, dict(self.rejected), self.finished,
                                   max((b.at for b in self.last.values()), default=None))
            case _:
                return super().on_receive(message)
        return None

    def _tick(self) -> None:
        s = self.settings
        if self._feed is None or self.finished:
            return
        step = next(self._feed, None)
        if step is None or (s.max_steps is not None and self.steps >= s.max_steps):
            self.finished = True
            log.info("market feed finished after %d steps", self.steps)
            return
        if self._origin.index + self.steps >= self._leased:
            self._renew_lease()
        self.steps += 1
        if self._lockstep is not None:
            self._lockstep_step(step)
            return
        self._emit(step)
        self.ctx.schedule(s.bar_seconds / s.speed, _Tick(self.ctx.incarnation))

    # -- pace: lockstep (actors.market.lockstep) -------------------------------------------
    def _lockstep_step(self, items: Sequence[Bar | BadBar]) -> None:
        """Emit one step in the backtest's order (docs/backtesting.md, "One step"): the
        marks and the samples first, answered, then the bars, then wait for the pipeline."""
        lockstep = self._lockstep
        assert lockstep is not None
        s = self.settings
        good, latest = self._accept(items)
        if not good:
            self.ctx.schedule(0.0, _Tick(self.ctx.incarnation))
            return
        self.bars += len(good)
        self._mark(good, latest)
        self._send_marks(force=True)
        self._sample(good)
        assert s.lockstep_idle is not None
        if lockstep.begin(self.steps, stages(
                Bars(tuple(good)), positions=s.positions, breaker=s.breaker,
                subscribers=s.subscribers, through=s.lockstep_through, idle=s.lockstep_idle)):
            self._step_done()
        else:
            self._arm_lockstep()

    def _arm_lockstep(self) -> None:
        """One timer for the step in progress: give it up once out of time, else look
        again when it would be (a later step's wait begins where this one's ends)."""
        lockstep = self._lockstep
        assert lockstep is not None
        left = lockstep.left()
        if left is None or self._lockstep_timer:
            return
        if left <= 0:
            self._step_late(f"waited {lockstep.timeout} s for {lockstep.give_up()}")
            return
        self._lockstep_timer = True
        self.ctx.schedule(left, _LockstepDue(self.ctx.incarnation))

    def _step_done(self) -> None:
        lockstep = self._lockstep
        assert lockstep is not None
        if lockstep.problem is not None:
            self._step_late(lockstep.problem)
        else:
            self.ctx.schedule(0.0, _Tick(self.ctx.incarnation))

    def _step_late(self, why: str) -> None:
        """The step could not be waited for: say so, and go on at the timed pace."""
        s = self.settings
        self.late_steps += 1
        log.warning("lockstep: step %d not done (%s); the next one follows at the timed "
                    "pace (%d late so far)", self.steps, why, self.late_steps)
        self.ctx.schedule(s.bar_seconds / s.speed, _Tick(self.ctx.incarnation))

    def _feed_run(self, first: FeedBars) -> None:
        """Emit ``first`` and the FeedBars queued right behind it, in order, merging
        consecutive feeds while no symbol repeats: bars fed faster than they are handled
        go out as one message per subscriber instead of one per feed, and a ``Bars``
        still holds at most one bar per symbol (one market step)."""
        group: list[Bar | BadBar] = list(first.bars)
        symbols = {b.symbol for b in first.bars}
        for feed, _ in self.ctx.take_run(FeedBars, _MAX_FEED_RUN):
            incoming = {b.symbol for b in feed.bars}
            if incoming & symbols or len(incoming) < len(feed.bars):
                self._emit(group)
                group, symbols = [], set()
            group.extend(feed.bars)
            symbols |= incoming
        self._emit(group)

    def _emit(self, items: Sequence[Bar | BadBar], *, catch_up: bool = False) -> None:
        good, latest = self._accept(items)
        if not good:
            return
        self.bars += len(good)
        batch = Bars(tuple(good), catch_up)
        for name in self.settings.subscribers:
            self.ctx.try_tell(name, batch)
        # one message each to the position actor and the breaker, however many bars
        self._mark(good, latest)
        self._send_marks()
        self._sample(good)

    def _accept(self, items: Sequence[Bar | BadBar]) -> tuple[list[Bar], dict[str, Bar]]:
        """The good bars of ``items`` (the bad ones rejected) and a live feed's latest
        candles; the cursor published."""
        good: list[Bar] = []
        last = self.last
        for item in items:
            try:
                if isinstance(item, BadBar):
                    raise item
                before = last.get(item.symbol)
                check_bar(item, None if before is None else before.at)
            except BadBar as bad:
                self._reject(bad)
                continue
            last[item.symbol] = item
            good.append(item)
        live = self._live
        latest = {} if live is None else live.latest(last, good)
        self.ctx.publish(MarketCursor(self.steps, dict(last), self._origin, latest))
        return good, latest

    def _mark(self, good: list[Bar], latest: dict[str, Bar]) -> None:
        """Keep the newest price of each symbol of ``good`` for the position actor."""
        live, marks = self._live, self._marks
        for b in good:  # a live feed: the forming candle when it is newer
            m = b if live is None else latest[b.symbol]
            marks[b.symbol] = (m.close, m.at)

    def _sample(self, good: list[Bar]) -> None:
        self.ctx.try_tell(self.settings.breaker, MarketSamples(
            tuple((b.symbol, b.close, b.at, b.volume * b.close) for b in good)))

    def _send_marks(self, *, force: bool = False) -> None:
        """Tell the position actor the latest prices, unless it was told less than
        ``marks_interval`` ago (then a timer sends them when the interval is up)."""
        if not self._marks:
            return
        now = self.ctx.clock.now()
        wait = self.settings.marks_interval - (now - self._marks_sent)
        if wait > 0 and not force:
            if not self._marks_timer:
                self._marks_timer = True
                self.ctx.schedule(wait, _FlushMarks(self.ctx.incarnation))
            return
        self.ctx.try_tell(self.settings.positions, MarkPrices(
            tuple((symbol, close, at) for symbol, (close, at) in self._marks.items())))
        self._marks = {}
        self._marks_sent = now

    def on_stop(self) -> None:
        if self._live is not None:
            self._live.stop()
        self._send_marks(force=True)

    def on_failure(self, exception_type: type[BaseException] | None,
                   exception_value: BaseException | None,
                   traceback: TracebackType | None) -> None:
        if self._live is not None:  # a crash ends this instance's worker too
            self._live.stop(wait=False)

    def _live_candles(self, message: LiveCandles) -> None:
        """The live feed's closed candles, emitted one step per candle time; its forming
        candles go only into the cursor's ``latest`` and the marks (never to a subscriber,
        the breaker's samples or the exits)."""
        live = self._live
        assert live is not None
        for bad in live.problems(message):
            self._reject(bad)
        last = self.last  # a refetch after a refused delivery repeats the ones still queued
        bars = [b for b in message.bars if (p := last.get(b.symbol)) is None or b.at > p.at]
        # a step older than the newest closed candle (its successor has closed too) is a
        # catch-up one: the warm-up, or candles fetched after an outage
        newest = self.ctx.clock.wall() - 2 * timeframe_ms(self.settings.timeframe) / 1000
        for step in candle_steps(bars):
            self.steps += 1
            self._emit(step, catch_up=self.settings.catch_up and step[0].at <= newest)
        if bars:
            live.delivered({s: self.last[s] for s in {b.symbol for b in bars}
                            if s in self.last})
        if message.forming:
            for bar in live.forming(message.forming, self.last):
                self._marks[bar.symbol] = (bar.close, bar.at)
            self.ctx.publish(MarketCursor(self.steps, dict(self.last), self._origin,
                                          live.latest(self.last)))
            self._send_marks()

    def _reject(self, bad: BadBar) -> None:
        self.rejected[bad.reason] += 1
        count = self.rejected[bad.reason]
        log.warning("rejected bar (%s), %d so far", bad, count)
        if count in (1, 10, 100, 1000):
            self.ctx.try_tell(self.settings.alerts, Alert(
                key=f"market.bad_data.{bad.reason}", severity="warning",
                title=f"Bad market data rejected: {bad.reason}",
                body=f"{bad} ({count} rejected so far)"))
