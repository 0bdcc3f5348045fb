"""The backtest engine: the bot's own pure cores over historical candles, in simulated time.

:func:`run_backtest` feeds steps of candles (one time each) through the cores the actors
wrap, never a copy of them: the bad-bar check (:func:`~actors.market.data.check_bar`), the
breaker (:class:`~actors.risk.machine.BreakerCore`, whose wall clock is the candle time:
its recovery timers come due when a step reaches them), the exit rules
(:class:`~actors.execution.exit_rules.ExitRules`), the scanner
(:class:`~actors.market.ranking.Scanner`), the strategies
(:class:`~actors.strategies.runner.Runner`), the executor's decision
(:func:`~actors.execution.decide.decide`, with nothing ever in flight), the paper
exchange's pricing (:class:`~actors.venues.paper_pricing.FillPricing`), the book
(:class:`~actors.portfolio.book.PositionBook`) and its valuation
(:class:`~actors.portfolio.valuation.Valuer`). Each step runs them in one fixed order
(docs/backtesting.md, "Running a backtest"), and the run ends in a
:class:`~actors.backtest.contract.BacktestResult`. No actor, thread, clock or file.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from itertools import pairwise

from actors.backtest.contract import (
    END_OF_DATA,
    BacktestResult,
    BreakerTrip,
    EquityCurve,
    TradeRecord,
)
from actors.backtest.in_flight import NothingInFlight
from actors.backtest.setup import BacktestSetup
from actors.common.messages import Fill, InvalidFill, Side
from actors.execution.decide import Place, Refuse, Skip, decide
from actors.execution.exit_rules import ExitPlan
from actors.execution.orders import Request
from actors.execution.watch_book import WatchBook
from actors.market.contract import BadBar, Bar
from actors.market.data import check_bar
from actors.market.ranking import Scanner
from actors.portfolio.book import PositionBook
from actors.portfolio.contract import EquitySample, LedgerEvent, PortfolioSnapshot
from actors.portfolio.ledger_judge import book_problems, impossible_book
from actors.portfolio.valuation import Valuation, Valuer, equity_sample, portfolio_snapshot
from actors.risk.contract import BreakerGate
from actors.risk.effects import Effect, RecoverAt, Remember, Transitioned
from actors.risk.machine import BreakerCore
from actors.strategies.contract import Signal
from actors.strategies.runner import Runner, StrategyFault
from actors.venues.paper_pricing import paper_fill

__all__ = ["Backtest", "CheckedStep", "run_backtest"]

ZERO = Decimal(0)
_NOTHING_HELD = Valuation({}, {}, ZERO, ZERO, ZERO)
PROGRESS_EVERY = 1000  # steps between two progress calls
_TRIPPED = ("open", "halted")  # a transition into one of these is a BreakerTrip


class CheckedStep(list[Bar]):
    """The bars of one time, each of which :func:`~actors.market.data.check_bar` has
    passed already against the candle before it of its symbol (the loader checks every
    series so, :func:`~actors.backtest.data.load_steps`). A step of them whose time is
    after every candle the run has seen passes the bad-bar check as it stands: the engine
    does not check it again; any other step is checked bar by bar."""

    __slots__ = ()


class Backtest:
    """Owns one run's cores and what it has produced so far: :meth:`step` takes one time's
    candles, :meth:`finish` closes what is still open and returns the result."""

    def __init__(self, setup: BacktestSetup) -> None:
        self.setup = setup
        self.scanner = Scanner(setup.ranking)
        self.runner = Runner(setup.strategies, entry_timeout_bars=setup.entry_timeout_bars,
                             handler=setup.handler)
        self.breaker = BreakerCore(setup.breaker)
        self.gate: BreakerGate = self.breaker.gate()
        self.book = PositionBook(setup.starting_cash, allow_short=setup.allow_short)
        self.valuer = Valuer()
        self.flight = NothingInFlight()
        self.seq = 0  # fills applied: the ledger's sequence number
        self.marks: dict[str, Decimal] = {}  # the held symbols' last closes
        self.exits = WatchBook(setup.exits)  # the exits actor's watches
        self.last: dict[str, Bar] = {}  # each symbol's last good candle
        self.opened: dict[str, tuple[str, float, Decimal]] = {}  # strategy, at, entry fee
        self.plans: dict[str, ExitPlan] = {}  # the entry's own exit levels, as the executor's
        self.trades: list[TradeRecord] = []
        self.trips: list[BreakerTrip] = []
        self.times = array("d")  # the curve, handed over as it is
        self.equity = array("d")
        self.candles = 0
        self.bad_candles = 0
        self.skipped: Counter[str] = Counter()  # SkipReason values, "refused", "rejected"
        self.faults: list[StrategyFault] = []
        self._timers: list[tuple[float, int]] = []  # the breaker's recoveries: (wall, token)
        self._seen_at = -math.inf  # the newest candle time of the run so far
        self._signals: list[Request] = []
        self._snap: PortfolioSnapshot | None = None
        self._valued: Valuation | None = None
        self._flat: EquitySample | None = None
        self._flat_seq = -1

    # -- the runner's sink ---------------------------------------------------------------
    def signal(self, signal: Signal) -> bool:
        self._signals.append(signal)
        return True

    def fault(self, fault: StrategyFault) -> None:
        self.faults.append(fault)

    # -- one step ------------------------------------------------------------------------
    def step(self, items: Sequence[Bar | BadBar]) -> None:
        """One time's candles, through every core in the documented order."""
        self.candles += len(items)
        last = self.last
        good: Sequence[Bar]
        if type(items) is CheckedStep and items and items[0].at > self._seen_at:
            good = items  # 1. checked by the loader, and after every candle seen
            for bar in good:
                last[bar.symbol] = bar
            at = self._seen_at = good[0].at
            samples = [(bar.symbol, bar.close, bar.at, bar.volume * bar.close)
                       for bar in good]
        else:
            good, samples = self._check(items)  # 1. the bad-bar check, bar by bar
            if not good:
                return
            at = good[0].at
        breaker = self.breaker
        timers = self._timers
        while timers and timers[0][0] <= at:  # 2. recoveries due, then the samples
            self._apply(breaker.recovery_due(heapq.heappop(timers)[1], at), at)
        effects = breaker.samples(samples, at)
        if effects:
            self._apply(effects, at)
        self._snap = self._valued = None  # the marks move with every step
        positions = self.book.positions
        requests = self._signals
        # 3. the held symbols marked at their closes and their watches stepped through the
        # exit rules (a watch whose symbol is no longer held is dropped)
        watching = self.exits
        if positions or watching.watches:
            marks = self.marks
            held = [bar for bar in good if bar.symbol in positions]
            for bar in held:
                marks[bar.symbol] = Decimal(repr(bar.close))
            exits, _ = watching.on_bars(held, positions, self.seq, self.plans.get)
            if exits:
                requests.extend(exits)
        candidates = self.scanner.push(good)  # 4. the scanner, 5. the strategies
        runner = self.runner
        runner.positions(self.seq, positions)
        runner.on_candles(good, candidates, positions, self)
        # 6. the equity sample on the step's marks, before anything is decided (the position
        # actor's, as the marks come); 7. each exit request, then each signal: decided,
        # priced, booked, each fill followed by a sample (the position actor's, after a commit)
        equity = self._sample(at)
        if requests:
            self._signals = []
            for request in requests:
                filled = self._execute(request, at)
                if filled:
                    equity = self._sample(at)
        self.times.append(at)  # 8. the curve point: the equity of the step's last sample
        self.equity.append(float(equity))

    def _check(self, items: Sequence[Bar | BadBar]
               ) -> tuple[list[Bar], list[tuple[str, float, float, float]]]:
        """The good bars of ``items`` (each through check_bar against its symbol's last good
        one, as the market actor checks them) and their breaker samples; the bad ones
        counted."""
        good: list[Bar] = []
        samples = []
        last = self.last
        for item in items:
            if type(item) is not Bar:
                self.bad_candles += 1
                continue
            symbol = item.symbol
            before = last.get(symbol)
            try:
                check_bar(item, None if before is None else before.at)
            except BadBar:
                self.bad_candles += 1
                continue
            last[symbol] = item
            good.append(item)
            samples.append((symbol, item.close, item.at, item.volume * item.close))
            self._seen_at = max(self._seen_at, item.at)
        return good, samples

    def _execute(self, request: Request, at: float) -> bool:
        """Decide ``request`` and carry out the decision; True when a fill was booked."""
        decision = decide(request, self._snapshot(), self.gate, self.flight,
                          self.setup.limits)
        if type(decision) is not Place:
            if type(decision) is Skip:
                self.skipped[decision.reason.value] += 1
            elif type(decision) is Refuse:
                self.skipped["refused"] += 1
            return False
        place = decision
        assert isinstance(place, Place)
        symbol = request.symbol
        pricing = self.setup.pricing
        refused = pricing.refusal(place.quantity)  # the venue's answer: filled, or refused
        breaker = self.breaker
        held = self.book.positions.get(symbol)
        filled = refused is None
        self.flight.answered(place.coid, filled=filled)
        # The breaker's inputs in the live tree's order: the executor's API result and probe
        # result as the venue answers, then the position actor's, as it records the fill
        # (a halt on an impossible book, the trade's pnl; its equity sample: step)
        self._apply(breaker.api_result(filled, now=at, wall=at), at)
        if place.permission.probe:
            self._apply(breaker.probe(filled, refused or "filled", at), at)
        if not filled:
            self.skipped["rejected"] += 1
            return False
        fill = paper_fill(place.coid, symbol, place.side, pricing.fill(
            place.side, place.quantity, Decimal(repr(request.price))), at)
        self.seq += 1
        problems = self._book(fill)
        self._snap = self._valued = None
        if problems:  # as the position actor halts trading on an impossible book
            self._apply(breaker.halt(impossible_book(problems), "positions", at), at)
        if place.side is Side.BUY:
            strategy = request.strategy if isinstance(request, Signal) else ""
            self.opened[symbol] = (strategy, at, fill.fee)
            if isinstance(request, Signal):  # its stop and take-profit, as the live tree
                self.plans[symbol] = ExitPlan.of(  # carries them to the exits
                    request.price, request.stop_distance, request.take_profit)
            self.marks[symbol] = Decimal(repr(request.price))
        else:
            assert held is not None
            realized = self.book.last_realized
            if realized != 0:
                self._apply(breaker.trade_closed(realized, at), at)
            self._closed(held.avg_price, fill, realized, request.reason)
        return True

    def _book(self, fill: Fill) -> list[str]:
        """Book a venue's fill as the ledger records one, as a fact, and judge the book as
        the ledger does (``book_problems``): what is impossible about it now (nothing, but
        for a fill that overspends or sells more than is held)."""
        try:
            self.book.apply(fill)  # the book's own check: refuses what would be impossible
        except InvalidFill:
            self.book.apply(fill, check=False)
            return book_problems(self.book, [LedgerEvent(self.seq, fill)],
                                 allow_short=self.setup.allow_short)
        return []

    def _closed(self, entry: Decimal, fill: Fill, realized: Decimal, reason: str) -> None:
        symbol, at, fee = fill.symbol, fill.at, fill.fee
        strategy, opened_at, entry_fee = self.opened.pop(symbol)
        if symbol not in self.book.positions:
            self.marks.pop(symbol, None)
            self.plans.pop(symbol, None)
        fees = entry_fee + fee
        self.trades.append(TradeRecord(symbol, strategy, opened_at, at, entry, fill.price,
                                       fill.quantity, realized - fees, fees, reason))

    def _snapshot(self) -> PortfolioSnapshot:
        """The portfolio as the position actor would publish it now (built only when a
        decision needs it, once per step and fill)."""
        snap = self._snap  # dropped with the valuation: at each step's marks and each fill
        if snap is None:
            snap = self._snap = portfolio_snapshot(self.seq, self.setup.starting_cash,
                                                   self.book, self._valuation(), self.marks)
        return snap

    def _valuation(self) -> Valuation:
        """The book valued at the marks, once for each state of them (the step's marks, a
        fill) however many samples and decisions read it."""
        valued = self._valued
        if valued is None:
            valued = self._valued = self.valuer.value(self.book.positions, self.marks)
        return valued

    def _sample(self, at: float) -> Decimal:
        """The equity sample to the breaker, as the position actor tells it; the equity."""
        book = self.book
        if book.positions:
            sample = equity_sample(book, self._valuation())
            equity = sample.equity
        else:
            if self._flat is None or self._flat_seq != self.seq:
                self._flat, self._flat_seq = equity_sample(book, _NOTHING_HELD), self.seq
            sample = self._flat
            equity = book.cash
        effects = self.breaker.equity(sample, at)
        if effects:
            self._apply(effects, at)
        return equity

    def _apply(self, effects: tuple[Effect, ...], at: float) -> None:
        """Carry out the breaker's effects in simulated time: a transition publishes a new
        gate (a trip into OPEN is recorded), a recovery is queued for its time; the state
        file and the alerts have no counterpart in a backtest."""
        for effect in effects:
            kind = type(effect)
            if kind is Transitioned:
                self.gate = self.breaker.gate().continuing(self.gate)
                transition = effect.transition  # type: ignore[union-attr]
                if transition.state in _TRIPPED and transition.previous != transition.state:
                    self.trips.append(BreakerTrip(at, transition.reason))
            elif kind is RecoverAt:
                heapq.heappush(self._timers, (effect.wall, effect.token))  # type: ignore[union-attr]
            elif kind is Remember and effect.publish:  # type: ignore[union-attr]
                self.gate = self.breaker.gate().continuing(self.gate)

    # -- the end -------------------------------------------------------------------------
    def finish(self, timeframe_s: float) -> BacktestResult:
        """Close each position still open at its symbol's last close (a mark, not a sale:
        no slippage and no fee on that leg, as the curve's last point values it) and hand
        back the result."""
        if not self.times:
            raise ValueError("the backtest had no good candle to run on")
        for symbol, pos in list(self.book.positions.items()):
            bar = self.last[symbol]
            close = Decimal(repr(bar.close))
            strategy, opened_at, entry_fee = self.opened.pop(symbol, ("", pos.opened_at, ZERO))
            realized = (close - pos.avg_price) * pos.quantity
            self.trades.append(TradeRecord(symbol, strategy, opened_at, bar.at, pos.avg_price,
                                           close, pos.quantity, realized - entry_fee,
                                           entry_fee, END_OF_DATA))
        return BacktestResult(
            trades=tuple(self.trades),
            curve=EquityCurve(self.times, self.equity),
            start_cash=self.setup.starting_cash,
            timeframe_s=timeframe_s,
            window=(self.times[0], self.times[-1]),
            symbols=tuple(sorted(self.last)),
            strategies=tuple(spec.name for spec in self.setup.strategies),
            breaker_trips=tuple(self.trips),
            candles=self.candles,
            bad_candles=self.bad_candles,
        )


def run_backtest(setup: BacktestSetup, steps: Iterable[Sequence[Bar | BadBar]], *,
                 timeframe_s: float | None = None,
                 progress: Callable[[int], None] | None = None) -> BacktestResult:
    """Run ``setup`` over ``steps`` (each the candles of one time, in time order) and
    return the result. ``timeframe_s``: the candles' length (None: the smallest gap between
    two steps); ``progress`` is called with the candles done every
    :data:`PROGRESS_EVERY` steps and at the end."""
    run = Backtest(setup)
    step = run.step
    for n, items in enumerate(steps, 1):
        step(items)
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(run.candles)
    if progress is not None:
        progress(run.candles)
    if timeframe_s is None:
        times = run.times
        gaps = [b - a for a, b in pairwise(times)]
        if not gaps:
            raise ValueError("one step of candles gives no timeframe: pass timeframe_s")
        timeframe_s = min(gaps)
    return run.finish(timeframe_s)
