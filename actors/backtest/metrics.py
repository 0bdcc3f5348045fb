"""The result table's figures, pure: :func:`summarize` turns a :class:`BacktestResult` into
a frozen :class:`Summary`.

Conventions (docs/backtesting.md gives the reasoning):

- The curve is read with the start cash prepended at the window's start: per-step returns
  are ``equity[i] / equity[i-1] - 1`` (the first against the start cash), one per step.
- Total return is ``last equity / start cash - 1``. CAGR compounds it over the window at
  365 days a year; it is None for a window shorter than a day (or a figure beyond a float).
- Max drawdown is the largest fall from a running peak, ``1 - equity / peak``, in [0, 1]
  (a negative equity counts as 1); its duration runs from that peak to the step that
  regained it, or to the last step when none did.
- Sharpe is ``mean / sample stdev`` of the per-step returns, Sortino ``mean / downside
  deviation`` (``sqrt(mean(min(r, 0)^2))`` over every step), both times
  ``sqrt(steps per year)`` with ``steps per year = 365 days / timeframe``; the risk-free
  rate is 0. Each is None when undefined: fewer than two steps, a zero deviation (a flat
  curve; for Sortino, no losing step) or an equity that reached 0.
- A trade wins when its pnl (after fees) is > 0 and loses when < 0. Profit factor is gross
  profit / gross loss: ``inf`` with profit and no loss, None with neither.
- Exposure is the fraction of steps whose return a position carried: a step at time ``t``
  counts when some trade has ``entry_at < t <= exit_at``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate, chain, islice
from operator import mul, truediv

from actors.backtest.contract import BacktestResult, EquityCurve, TradeRecord

__all__ = [
    "MIN_CAGR_WINDOW_S",
    "SECONDS_PER_YEAR",
    "Breakdown",
    "Summary",
    "profit_factor",
    "summarize",
]

SECONDS_PER_YEAR = 365 * 86400
# CAGR over a shorter window is an extrapolation too wild to print.
MIN_CAGR_WINDOW_S = 86400


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The trades of one symbol or one strategy."""

    name: str
    trades: int
    wins: int
    win_rate: float | None
    pnl: Decimal
    profit_factor: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one run (module docstring: how each is computed)."""

    trades: int
    wins: int
    losses: int
    win_rate: float | None
    total_pnl: Decimal
    fees: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: float | None
    start_cash: Decimal
    final_equity: float
    total_return: float
    cagr: float | None
    max_drawdown: float
    max_drawdown_duration_s: float
    sharpe: float | None
    sortino: float | None
    exposure: float
    breaker_trips: int
    steps: int
    timeframe_s: float
    window: tuple[float, float]
    candles: int
    bad_candles: int
    symbols: tuple[str, ...]
    strategies: tuple[str, ...]
    by_symbol: tuple[Breakdown, ...]
    by_strategy: tuple[Breakdown, ...]


def summarize(result: BacktestResult) -> Summary:
    """The figures of ``result``; never raises on a valid result (no trades, one step, a
    flat or empty curve, all losses each give their documented value)."""
    curve = result.curve
    start = float(result.start_cash)
    final = curve.equity[-1] if len(curve) else start
    drawdown, drawdown_s = _drawdown(curve, start, result.window[0])
    sharpe, sortino = _sharpe_sortino(curve, start, SECONDS_PER_YEAR / result.timeframe_s)
    trades = result.trades
    overall = _breakdown("", trades)
    gross_profit = sum((t.pnl for t in trades if t.pnl > 0), Decimal(0))
    gross_loss = -sum((t.pnl for t in trades if t.pnl < 0), Decimal(0))
    return Summary(
        trades=len(trades),
        wins=overall.wins,
        losses=sum(1 for t in trades if t.pnl < 0),
        win_rate=overall.win_rate,
        total_pnl=overall.pnl,
        fees=sum((t.fees for t in trades), Decimal(0)),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=overall.profit_factor,
        start_cash=result.start_cash,
        final_equity=final,
        total_return=final / start - 1.0,
        cagr=_cagr(final / start, result.window[1] - result.window[0]),
        max_drawdown=drawdown,
        max_drawdown_duration_s=drawdown_s,
        sharpe=sharpe,
        sortino=sortino,
        exposure=_exposure(curve, trades),
        breaker_trips=len(result.breaker_trips),
        steps=len(curve),
        timeframe_s=result.timeframe_s,
        window=result.window,
        candles=result.candles,
        bad_candles=result.bad_candles,
        symbols=result.symbols,
        strategies=result.strategies,
        by_symbol=_breakdowns(trades, lambda t: t.symbol),
        by_strategy=_breakdowns(trades, lambda t: t.strategy),
    )


def profit_factor(gross_profit: Decimal, gross_loss: Decimal) -> float | None:
    """Gross profit over gross loss (a magnitude); ``inf`` with no loss, None with neither."""
    if gross_loss > 0:
        return float(gross_profit / gross_loss)
    return math.inf if gross_profit > 0 else None


def _breakdown(name: str, trades: Iterable[TradeRecord]) -> Breakdown:
    count = wins = 0
    pnl = profit = loss = Decimal(0)
    for trade in trades:
        count += 1
        pnl += trade.pnl
        if trade.pnl > 0:
            wins += 1
            profit += trade.pnl
        elif trade.pnl < 0:
            loss -= trade.pnl
    return Breakdown(name, count, wins, wins / count if count else None, pnl,
                     profit_factor(profit, loss))


def _breakdowns(trades: Iterable[TradeRecord],
                key: Callable[[TradeRecord], str]) -> tuple[Breakdown, ...]:
    groups: dict[str, list[TradeRecord]] = {}
    for trade in trades:
        groups.setdefault(key(trade), []).append(trade)
    return tuple(_breakdown(name, groups[name]) for name in sorted(groups))


def _cagr(growth: float, window_s: float) -> float | None:
    if window_s < MIN_CAGR_WINDOW_S:
        return None
    if growth <= 0:
        return -1.0
    try:
        return float(growth ** (SECONDS_PER_YEAR / window_s) - 1.0)
    except OverflowError:
        return None


def _drawdown(curve: EquityCurve, start: float, start_at: float) -> tuple[float, float]:
    """The deepest fall from a running peak (start cash included) and its duration (s)."""
    equity, times = curve.equity, curve.times
    if not equity:
        return 0.0, 0.0
    peaks = accumulate(chain((start,), equity), max)
    # equity / its running peak, one per point: 1.0 exactly at a (new or equalled) peak.
    ratios = list(map(truediv, equity, islice(peaks, 1, None)))
    lowest = min(ratios)
    if lowest >= 1.0:
        return 0.0, 0.0
    trough = ratios.index(lowest)
    try:
        peak_at = times[trough - ratios[trough::-1].index(1.0)]
    except ValueError:
        peak_at = start_at
    try:
        recovered_at = times[ratios.index(1.0, trough + 1)]
    except ValueError:
        recovered_at = times[-1]
    return min(1.0, 1.0 - lowest), max(0.0, recovered_at - peak_at)


def _sharpe_sortino(curve: EquityCurve, start: float,
                    steps_per_year: float) -> tuple[float | None, float | None]:
    equity = curve.equity
    steps = len(equity)
    if steps < 2 or start <= 0 or min(equity[:-1]) <= 0:
        return None, None
    # Each step's return is ratio - 1; the lists hold ratios (1 + return) to save a pass.
    ratios = list(map(truediv, equity, chain((start,), equity)))
    mean_ratio = math.fsum(ratios) / steps
    mean = math.fsum(chain(ratios, (-float(steps),))) / steps
    centred = [ratio - mean_ratio for ratio in ratios]
    variance = sum(map(mul, centred, centred)) / (steps - 1)
    losses = [ratio - 1.0 for ratio in ratios if ratio < 1.0]
    downside = sum(map(mul, losses, losses)) / steps
    scale = math.sqrt(steps_per_year)
    sharpe = mean / math.sqrt(variance) * scale if variance > 0 else None
    sortino = mean / math.sqrt(downside) * scale if downside > 0 else None
    return sharpe, sortino


def _exposure(curve: EquityCurve, trades: Iterable[TradeRecord]) -> float:
    times = curve.times
    if not times:
        return 0.0
    # Each trade carries the steps in (entry_at, exit_at]: a run of indexes [lo, hi).
    spans = sorted((bisect_right(times, t.entry_at), bisect_right(times, t.exit_at))
                   for t in trades)
    covered = end = 0
    for lo, hi in spans:
        first = max(lo, end)
        if hi > first:
            covered += hi - first
            end = hi
    return covered / len(times)
