"""The result table's figures (actors/backtest/metrics.py), pure: small hand-computed runs,
the edge cases (no trades, one step, a flat curve, a short window, all losses, no loss, an
equity that goes to 0 or below), and hypothesis properties against plain references
(Sharpe and Sortino with ``statistics``, the drawdown with a loop)."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from actors.backtest.contract import (
    BacktestResult,
    BreakerTrip,
    EquityCurve,
    InvalidResult,
    TradeRecord,
)
from actors.backtest.metrics import SECONDS_PER_YEAR, summarize

pytestmark = pytest.mark.unit

DAY = 86400.0


def _trade(pnl: str | Decimal, symbol: str = "BTC/USDT", strategy: str = "breakout", *,
           entry_at: float = 0.0, exit_at: float = 60.0, fees: str = "0.1") -> TradeRecord:
    return TradeRecord(symbol, strategy, entry_at, exit_at, Decimal(100), Decimal(101),
                       Decimal(1), Decimal(pnl), Decimal(fees), "take_profit")


def _result(equity: list[float], trades: tuple[TradeRecord, ...] = (), *, step: float = 60.0,
            start: float = 100.0, window: tuple[float, float] | None = None,
            trips: tuple[BreakerTrip, ...] = ()) -> BacktestResult:
    times = [step * (i + 1) for i in range(len(equity))]
    span = window if window is not None else (0.0, step * len(equity))
    return BacktestResult(trades, EquityCurve(times, equity), Decimal(str(start)), step, span,
                          ("BTC/USDT",), ("breakout",), trips, candles=len(equity))


def test_a_hand_computed_run() -> None:
    trades = (_trade("10"), _trade("-5"), _trade("0"), _trade("20"))
    summary = summarize(_result([110.0, 99.0, 121.0], trades))
    assert (summary.trades, summary.wins, summary.losses) == (4, 2, 1)
    assert summary.win_rate == 0.5
    assert summary.total_pnl == Decimal(25)
    assert summary.fees == Decimal("0.4")
    assert (summary.gross_profit, summary.gross_loss) == (Decimal(30), Decimal(5))
    assert summary.profit_factor == 6.0
    assert summary.total_return == pytest.approx(0.21)
    assert summary.final_equity == 121.0
    # The peak 110 (t=60) falls to 99 (t=120) and is regained at 121 (t=180).
    assert summary.max_drawdown == pytest.approx(0.1)
    assert summary.max_drawdown_duration_s == 120.0
    returns = [0.1, -0.1, 121 / 99 - 1]
    scale = math.sqrt(SECONDS_PER_YEAR / 60)
    assert summary.sharpe == pytest.approx(
        statistics.mean(returns) / statistics.stdev(returns) * scale)
    assert summary.sortino == pytest.approx(
        statistics.mean(returns) / math.sqrt(0.01 / 3) * scale)
    assert summary.steps == 3
    assert summary.cagr is None  # three minutes: shorter than a day


def test_no_trades_gives_undefined_rates_not_errors() -> None:
    summary = summarize(_result([100.0, 100.0]))
    assert (summary.trades, summary.wins, summary.losses) == (0, 0, 0)
    assert summary.win_rate is None
    assert summary.profit_factor is None
    assert summary.exposure == 0.0
    assert summary.by_symbol == () and summary.by_strategy == ()
    assert summary.total_pnl == Decimal(0)


def test_a_flat_curve_has_no_sharpe_or_sortino_and_no_drawdown() -> None:
    summary = summarize(_result([100.0] * 50))
    assert summary.sharpe is None and summary.sortino is None
    assert summary.max_drawdown == 0.0 and summary.max_drawdown_duration_s == 0.0
    assert summary.total_return == 0.0


def test_one_step_and_an_empty_curve() -> None:
    one = summarize(_result([105.0]))
    assert one.sharpe is None and one.sortino is None
    assert one.total_return == pytest.approx(0.05)
    assert one.max_drawdown == 0.0
    empty = summarize(_result([]))
    assert (empty.steps, empty.total_return, empty.max_drawdown, empty.exposure) == (0, 0, 0, 0)
    assert empty.final_equity == 100.0


def test_no_losing_step_has_a_sharpe_but_no_sortino() -> None:
    summary = summarize(_result([101.0, 103.0, 104.0]))
    assert summary.sharpe is not None and summary.sharpe > 0
    assert summary.sortino is None


def test_all_losses() -> None:
    trades = (_trade("-1"), _trade("-2.5", symbol="ETH/USDT"))
    summary = summarize(_result([99.0, 96.5], trades))
    assert summary.win_rate == 0.0
    assert summary.profit_factor == 0.0
    assert summary.gross_loss == Decimal("3.5")
    assert [(b.name, b.pnl, b.profit_factor) for b in summary.by_symbol] == [
        ("BTC/USDT", Decimal(-1), 0.0), ("ETH/USDT", Decimal("-2.5"), 0.0)]
    # Never regained: the drawdown lasts from the start cash (t=0) to the last step.
    assert summary.max_drawdown == pytest.approx(0.035)
    assert summary.max_drawdown_duration_s == 120.0
    assert summary.sharpe is not None and summary.sharpe < 0


def test_no_loss_gives_an_infinite_profit_factor() -> None:
    summary = summarize(_result([101.0], (_trade("1"), _trade("0"))))
    assert summary.profit_factor == math.inf
    assert summary.by_strategy[0].profit_factor == math.inf


def test_cagr_compounds_over_the_window_and_is_none_under_a_day() -> None:
    year = float(SECONDS_PER_YEAR)
    assert summarize(_result([121.0], window=(0.0, year))).cagr == pytest.approx(0.21)
    assert summarize(_result([121.0], window=(0.0, 2 * year))).cagr == pytest.approx(0.1)
    assert summarize(_result([121.0], window=(0.0, DAY - 1))).cagr is None
    assert summarize(_result([121.0], window=(0.0, DAY))).cagr == pytest.approx(
        1.21 ** 365 - 1)
    assert summarize(_result([0.0], window=(0.0, year))).cagr == -1.0
    # A hundredfold in a day compounds beyond a float: None, not an overflow.
    assert summarize(_result([1e4], window=(0.0, DAY))).cagr is None


def test_an_equity_at_or_below_zero_is_a_total_drawdown() -> None:
    summary = summarize(_result([50.0, 0.0, -10.0, 5.0]))
    assert summary.max_drawdown == 1.0
    assert summary.sharpe is None and summary.sortino is None


def test_exposure_counts_the_steps_a_position_carried_once() -> None:
    # Steps at 60, 120, ..., 600. (60, 180] carries 120 and 180; (120, 240] adds 240;
    # an entry and exit on the same candle carries none.
    trades = (_trade("1", entry_at=60, exit_at=180), _trade("1", entry_at=120, exit_at=240),
              _trade("1", entry_at=300, exit_at=300))
    summary = summarize(_result([100.0] * 10, trades))
    assert summary.exposure == pytest.approx(0.3)


def test_breakdowns_are_per_symbol_and_per_strategy_sorted_by_name() -> None:
    trades = (_trade("3", "ETH/USDT", "reversion"), _trade("-1", "BTC/USDT", "breakout"),
              _trade("2", "BTC/USDT", "reversion"))
    summary = summarize(_result([104.0], trades))
    assert [(b.name, b.trades, b.wins, b.win_rate, b.pnl) for b in summary.by_symbol] == [
        ("BTC/USDT", 2, 1, 0.5, Decimal(1)), ("ETH/USDT", 1, 1, 1.0, Decimal(3))]
    assert [(b.name, b.trades, b.pnl, b.profit_factor) for b in summary.by_strategy] == [
        ("breakout", 1, Decimal(-1), 0.0), ("reversion", 2, Decimal(5), math.inf)]


def test_breaker_trips_and_the_run_are_carried_over() -> None:
    trips = (BreakerTrip(60.0, "drawdown"), BreakerTrip(120.0, "stale feed"))
    summary = summarize(_result([100.0, 100.0], trips=trips))
    assert summary.breaker_trips == 2
    assert (summary.candles, summary.timeframe_s, summary.window) == (2, 60.0, (0.0, 120.0))


def test_the_records_refuse_inconsistent_values() -> None:
    with pytest.raises(InvalidResult, match="exit_at"):
        _trade("1", entry_at=120, exit_at=60)
    with pytest.raises(InvalidResult, match="2 times but 1"):
        EquityCurve([1.0, 2.0], [1.0])
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidResult, match="not finite"):
            EquityCurve([60.0, 120.0], [100.0, bad])
        with pytest.raises(InvalidResult, match="not finite"):
            EquityCurve([60.0, bad], [100.0, 100.0])
    with pytest.raises(InvalidResult, match="start_cash"):
        _result([1.0], start=0.0)
    with pytest.raises(InvalidResult, match="timeframe_s"):
        _result([1.0], step=0.0)
    with pytest.raises(InvalidResult, match="window"):
        _result([1.0], window=(10.0, 5.0))


# -- properties ------------------------------------------------------------------------

_equities = st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=1, max_size=80)
_trades = st.lists(st.tuples(st.sampled_from(["A", "B", "C<x>"]), st.sampled_from(["s", "t"]),
                             st.decimals(min_value=-1000, max_value=1000, places=2,
                                         allow_nan=False, allow_infinity=False),
                             st.integers(0, 100), st.integers(0, 100)), max_size=30)


def _reference_drawdown(start: float, equity: list[float]) -> float:
    peak, worst = start, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
    return worst


@settings(max_examples=200, deadline=None)
@given(_equities, _trades)
def test_properties_of_any_run(equity: list[float],
                               raw: list[tuple[str, str, Decimal, int, int]]) -> None:
    trades = tuple(TradeRecord(symbol, strategy, 60.0 * min(a, b), 60.0 * max(a, b),
                               Decimal(1), Decimal(1), Decimal(1), pnl, Decimal(0), "x")
                   for symbol, strategy, pnl, a, b in raw)
    start = equity[0]
    summary = summarize(_result(equity, trades, start=start))
    assert 0.0 <= summary.max_drawdown <= 1.0
    assert summary.max_drawdown == pytest.approx(_reference_drawdown(start, equity))
    assert summary.max_drawdown_duration_s >= 0.0
    assert summary.total_return == pytest.approx(equity[-1] / equity[0] - 1)
    assert sum((b.pnl for b in summary.by_symbol), Decimal(0)) == summary.total_pnl
    assert sum((b.pnl for b in summary.by_strategy), Decimal(0)) == summary.total_pnl
    assert sum(b.trades for b in summary.by_symbol) == summary.trades
    assert summary.total_pnl == sum((t.pnl for t in trades), Decimal(0))
    for rate in [summary.win_rate] + [b.win_rate for b in summary.by_symbol]:
        assert rate is None or 0.0 <= rate <= 1.0
    assert 0.0 <= summary.exposure <= 1.0
    assert summary.profit_factor is None or summary.profit_factor >= 0.0


@settings(max_examples=200, deadline=None)
@given(_equities, st.sampled_from([60.0, 300.0, 3600.0, 86400.0]))
def test_sharpe_and_sortino_match_a_statistics_reference(equity: list[float],
                                                         step: float) -> None:
    start = 1000.0
    summary = summarize(_result(equity, step=step, start=start))
    returns = [b / a - 1 for a, b in zip([start, *equity[:-1]], equity, strict=True)]
    scale = math.sqrt(SECONDS_PER_YEAR / step)
    if len(returns) < 2 or statistics.pstdev(returns) == 0:
        assert summary.sharpe is None
    else:
        assert summary.sharpe == pytest.approx(
            statistics.mean(returns) / statistics.stdev(returns) * scale, rel=1e-6, abs=1e-9)
    downside = [min(r, 0.0) ** 2 for r in returns]
    if len(returns) < 2 or not any(downside):
        assert summary.sortino is None
    else:
        assert summary.sortino == pytest.approx(
            statistics.mean(returns) / math.sqrt(statistics.mean(downside)) * scale,
            rel=1e-6, abs=1e-9)
