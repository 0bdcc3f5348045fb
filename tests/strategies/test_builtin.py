"""The built-in strategies (actors/strategies/builtin.py), pure: hand-built candle series
where the breakout and the reversion must fire and must not, the stop distance they give, no
signal before the window is full, the exits while holding. Each is fed as the runner feeds
it (its window, the candle last; its position while holding). Hypothesis: on any series of
candles the market lets through (positive finite prices, low <= open, close <= high) a
strategy raises nothing and gives a valid decision, the one a plain reference gives.

The momentum stop is ferro_ta's ATR as of the candle before the breakout (as TA-Lib's: true
ranges from the second candle on, the first ATR their mean, then Wilder's smoothing); the
reversion's mean and deviation are ferro_ta's Bollinger bands of the closes before."""

from __future__ import annotations

import math
from collections.abc import Sequence

import hypothesis.strategies as st
import pytest
from hypothesis import given

from actors.common.messages import Side
from actors.market.contract import Bar
from actors.strategies.api import Enter, Exit, Position, Strategy, View
from actors.strategies.builtin import MeanReversion, MomentumBreakout

pytestmark = pytest.mark.unit

Verdict = Enter | Exit | None
HELD = Position(1.0, 10.0)


def _bar(at: int, high: float, low: float, close: float | None = None) -> Bar:
    return Bar("A", float(at), low, high, low, low if close is None else close, 1.0)


class Driver:
    """Feeds one strategy as the runner does: the candle pushed on the window first, the
    position shown while holding."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.view = View(strategy.window())

    def on_bar(self, bar: Bar, holding: bool) -> Verdict:
        self.view.push(bar)
        self.view.position = HELD if holding else None
        return self.strategy.on_candle(bar, self.view)


def momentum(lookback: int, exit_lookback: int, atr_stop: float) -> Driver:
    return Driver(MomentumBreakout(MomentumBreakout.Params(
        lookback=lookback, exit_lookback=exit_lookback, atr_stop=atr_stop)))


def reversion(window: int, k: float, stop_k: float) -> Driver:
    return Driver(MeanReversion(MeanReversion.Params(window=window, k=k, stop_k=stop_k)))


def _feed(strategy: Driver, bars: Sequence[Bar], holding: bool = False) -> list[Verdict]:
    return [strategy.on_bar(bar, holding) for bar in bars]


def _side_and_stop(verdict: Verdict) -> tuple[Side, float] | None:
    if verdict is None:
        return None
    if isinstance(verdict, Enter):
        return Side.BUY, verdict.stop_distance
    return Side.SELL, 0.0


# -- MomentumBreakout -------------------------------------------------------------------------

# four bars: highs 10, 11, 12, 13, lows 8, 7, 6, 11 (the lowest of the last two 6); true
# ranges from the second bar on 4, 6, 2 (an ATR of 4 as of the fourth, the first ATR of
# three); the fourth closes above the first three's highs, before the ATR is ready
WINDOW = [_bar(0, 10, 8, 9), _bar(1, 11, 7, 10), _bar(2, 12, 6, 11.5), _bar(3, 13, 11, 12.5)]
BREAKOUT = _bar(4, 14, 13, 13.5)  # over 13, the highest of the three highs before


def _momentum(*bars: Bar, holding: bool = False) -> Verdict:
    strategy = momentum(lookback=3, exit_lookback=2, atr_stop=2.0)
    *_, verdict = _feed(strategy, [*WINDOW, *bars], holding)
    return verdict


def test_momentum_buys_a_close_above_the_highest_high_with_two_atrs_of_stop() -> None:
    verdict = _momentum(BREAKOUT)
    assert _side_and_stop(verdict) == (Side.BUY, 8.0)
    assert isinstance(verdict, Enter) and "broke the 3-bar high" in verdict.reason


def test_momentum_does_not_buy_a_close_at_the_high() -> None:
    assert _momentum(_bar(4, 14, 12, 13)) is None


def test_momentum_gives_no_signal_before_its_window_is_full() -> None:
    strategy = momentum(lookback=3, exit_lookback=2, atr_stop=2.0)
    # the fourth bar closes above every high before it, the ATR is not ready yet
    assert _feed(strategy, WINDOW) == [None, None, None, None]
    held = momentum(lookback=5, exit_lookback=2, atr_stop=2.0)
    # holding, the third bar closes under the last two lows: still no exit
    assert _feed(held, [*WINDOW[:2], _bar(2, 7, 5, 5)], holding=True) == [None, None, None]


def test_momentum_looks_back_only_lookback_bars() -> None:
    strategy = momentum(lookback=3, exit_lookback=2, atr_stop=1.0)
    bars = [_bar(0, 20, 18, 19), _bar(1, 20, 18, 19), _bar(2, 11, 7, 10),
            _bar(3, 12, 6, 11.5), _bar(4, 12, 10, 11), _bar(5, 16, 15, 15)]
    verdicts = _feed(strategy, bars)
    assert verdicts[4] is None  # under the 20 of the second bar
    # that bar has left the window: 15 is over 12. The ATR still remembers it: true ranges
    # 2, 12 (the low 7 against the close 19 before), 6, 2; the first ATR (of three) 20/3,
    # then Wilder's (20/3 * 2 + 2) / 3 = 46/9 as of the bar before the breakout
    assert _side_and_stop(verdicts[5]) == (Side.BUY, pytest.approx(46 / 9))


def test_momentum_does_not_buy_while_holding() -> None:
    assert _momentum(BREAKOUT, holding=True) is None


def test_momentum_sells_a_close_below_the_exit_lookbacks_lowest_low() -> None:
    verdict = _momentum(_bar(4, 7, 5, 5.5), holding=True)
    assert _side_and_stop(verdict) == (Side.SELL, 0.0)
    assert isinstance(verdict, Exit) and "fell below the 2-bar low" in verdict.reason
    assert _momentum(_bar(4, 7, 6, 6), holding=True) is None  # at the low, not below
    assert _momentum(_bar(4, 7, 5, 5.5), holding=False) is None  # nothing to sell


def test_momentum_sells_against_the_last_exit_lookback_lows_only() -> None:
    # lows ..., 11, 6 and then 9: the last two are 6 and 9, so 6.5 is no exit
    strategy = momentum(lookback=3, exit_lookback=2, atr_stop=2.0)
    verdicts = _feed(strategy, [*WINDOW, _bar(4, 12, 6, 10), _bar(5, 10, 9, 10),
                                _bar(6, 10, 9, 6.5)], holding=True)
    assert verdicts[4:] == [None, None, None]
    # lows ..., 6, 9, 9: the last two are 9 and 9 (the 6 is still within the last three)
    strategy = momentum(lookback=3, exit_lookback=2, atr_stop=2.0)
    verdicts = _feed(strategy, [*WINDOW, _bar(4, 12, 6, 10), _bar(5, 10, 9, 10),
                                _bar(6, 10, 9, 9.5), _bar(7, 10, 8, 8.5)], holding=True)
    assert verdicts[4:7] == [None, None, None]
    assert _side_and_stop(verdicts[7]) == (Side.SELL, 0.0)


# -- MeanReversion ----------------------------------------------------------------------------

# four closes 10, 12, 10, 12: a mean of 11 and a standard deviation of 1, so 2 sd below
# the mean is 9
CLOSES = [10.0, 12.0, 10.0, 12.0]


def _closes(*closes: float) -> list[Bar]:
    return [_bar(i, c, c, c) for i, c in enumerate(closes)]


def _reversion(close: float, holding: bool = False, before: Sequence[float] = CLOSES) -> Verdict:
    """The verdict on ``close`` of a 4-close window after the closes ``before``."""
    strategy = reversion(window=4, k=2.0, stop_k=1.5)
    assert _feed(strategy, _closes(*before)) == [None] * len(before)
    return strategy.on_bar(_bar(len(before), close, close, close), holding)


def test_reversion_buys_a_close_k_sd_below_the_mean_with_stop_k_sd_of_stop() -> None:
    verdict = _reversion(8.5)
    assert _side_and_stop(verdict) == (Side.BUY, 1.5)
    assert isinstance(verdict, Enter) and "2 sd below the 4-bar mean 11" in verdict.reason


@pytest.mark.parametrize("close", [9.0, 9.5, 11.0, 15.0])
def test_reversion_does_not_buy_above_k_sd_below_the_mean(close: float) -> None:
    assert _reversion(close) is None


def test_reversion_gives_no_signal_before_its_window_is_full() -> None:
    strategy = reversion(window=4, k=2.0, stop_k=1.5)
    # the fourth close is far under the first three, but only three are in
    assert _feed(strategy, _closes(10, 12, 10, 1)) == [None] * 4
    held = reversion(window=4, k=2.0, stop_k=1.5)
    assert _feed(held, _closes(10, 12, 10, 20), holding=True) == [None] * 4


def test_reversion_does_not_buy_without_spread() -> None:
    assert _reversion(1.0, before=[10.0] * 4) is None


def test_reversion_sells_once_the_close_is_back_at_the_mean() -> None:
    assert _side_and_stop(_reversion(11.0, holding=True)) == (Side.SELL, 0.0)
    assert _side_and_stop(_reversion(30.0, holding=True)) == (Side.SELL, 0.0)
    assert _reversion(math.nextafter(11.0, 0), holding=True) is None
    assert _reversion(8.5, holding=True) is None  # holding: no buy


def test_reversion_looks_back_only_window_closes() -> None:
    # 100 before the four has left the window: the mean is 11 again, the sd 1
    assert _side_and_stop(_reversion(8.5, before=[100.0, *CLOSES])) == (
        Side.BUY, pytest.approx(1.5, rel=1e-9))
    # while it was in, the mean was 33 and the sd about 38.7: no buy at 8.5
    assert _reversion(8.5, before=[100.0, *CLOSES[:3]]) is None


def test_reversion_keeps_its_precision_over_a_long_run() -> None:
    """After 10,000 closes near 60,000 that move by cents, the threshold 2 sd under the
    mean of the last four is where an exact sum puts it, to within 1e-5 (running sums
    that were never renewed would be off by about 5e-4 here)."""
    closes = [60000 + 0.1 * math.sin(i * 0.7) + 0.01 * (i % 7) for i in range(10_000)]
    last = closes[-4:]
    mean = math.fsum(last) / 4
    sd = math.sqrt(math.fsum((c - mean) ** 2 for c in last) / 4)
    for close, buys in ((mean - 2 * sd - 1e-5, True), (mean - 2 * sd + 1e-5, False)):
        strategy = reversion(window=4, k=2.0, stop_k=1.5)
        for i, c in enumerate(closes):
            strategy.on_bar(_bar(i, c, c, c), False)
        verdict = strategy.on_bar(_bar(10_000, close, close, close), False)
        if buys:
            assert isinstance(verdict, Enter)
            assert verdict.stop_distance == pytest.approx(1.5 * sd, rel=1e-6)
        else:
            assert verdict is None


# -- any bar series ---------------------------------------------------------------------------

# positive finite prices up to 1e150, far above any market's
PRICE = st.floats(min_value=0.0, max_value=1e150, exclude_min=True, allow_nan=False)


@st.composite
def bars(draw: st.DrawFn, price: st.SearchStrategy[float] = PRICE) -> tuple[Bar, bool]:
    """A bar the market lets through, and whether its symbol is held."""
    low, a, b, high = sorted(draw(st.lists(price, min_size=4, max_size=4)))
    open_, close = (a, b) if draw(st.booleans()) else (b, a)
    return Bar("A", 0.0, open_, high, low, close, 1.0), draw(st.booleans())


series = st.lists(bars(), max_size=60)


def _valid(verdict: Verdict, holding: bool) -> None:
    if verdict is None:
        return
    assert isinstance(verdict.reason, str) and verdict.reason
    if isinstance(verdict, Enter):
        stop = verdict.stop_distance
        assert isinstance(stop, float) and math.isfinite(stop) and stop >= 0
        assert not holding
    else:
        assert isinstance(verdict, Exit) and holding


@given(series, st.integers(2, 30), st.integers(2, 30), st.floats(0.25, 5))
def test_momentum_gives_a_valid_verdict_on_any_series(
        rows: list[tuple[Bar, bool]], lookback: int, exit_lookback: int, atr_stop: float) -> None:
    strategy = momentum(lookback, exit_lookback, atr_stop)
    for bar, holding in rows:
        _valid(strategy.on_bar(bar, holding), holding)


@given(series, st.integers(3, 30), st.floats(0.5, 5), st.floats(0.25, 5))
def test_reversion_gives_a_valid_verdict_on_any_series(
        rows: list[tuple[Bar, bool]], window: int, k: float, stop_k: float) -> None:
    strategy = reversion(window, k, stop_k)
    for bar, holding in rows:
        verdict = strategy.on_bar(bar, holding)
        _valid(verdict, holding)
        if isinstance(verdict, Enter):
            assert verdict.stop_distance > 0  # a standard deviation's multiple, never none


def _momentum_reference(rows: Sequence[tuple[Bar, bool]], lookback: int, exit_lookback: int,
                        atr_stop: float) -> list[tuple[Side, float] | None]:
    """From the docstring: a close over the highest high of the last ``lookback`` bars (not
    held) buys with ``atr_stop`` ATRs of stop, the ATR as of the bar before (true ranges
    from the second bar on, the first ATR their mean over ``lookback`` of them, then
    Wilder's smoothing); a close under the lowest low of the last ``exit_lookback`` bars
    (held) sells; nothing until ``lookback + 1`` bars were seen before."""
    out: list[tuple[Side, float] | None] = []
    ranges: list[float] = []
    atr: list[float] = []  # atr[j]: as of bar j + lookback
    for i, (bar, holding) in enumerate(rows):
        verdict: tuple[Side, float] | None = None
        if i > lookback:
            window = [b for b, _ in rows[i - lookback:i]]
            lows = [b.low for b, _ in rows[max(0, i - exit_lookback):i]]
            if not holding and bar.close > max(b.high for b in window):
                verdict = (Side.BUY, atr_stop * atr[-1])
            elif holding and bar.close < min(lows):
                verdict = (Side.SELL, 0.0)
        out.append(verdict)
        if i:
            before = rows[i - 1][0].close
            ranges.append(max(bar.high - bar.low, abs(bar.high - before),
                              abs(bar.low - before)))
        if len(ranges) == lookback and not atr:
            atr.append(sum(ranges) / lookback)
        elif len(ranges) > lookback:
            atr.append((atr[-1] * (lookback - 1) + ranges[-1]) / lookback)
    return out


@st.composite
def walks(draw: st.DrawFn) -> list[tuple[Bar, bool]]:
    """A market that moves: each close a step from the last, highs and lows around it,
    whether the symbol is held changing now and then (breakouts up and down are common)."""
    steps = draw(st.lists(st.tuples(st.floats(-5, 5), st.floats(0, 2), st.floats(0, 2),
                                    st.integers(0, 3)), max_size=80))
    close, holding, rows = 100.0, False, []
    for step, up, down, flip in steps:
        close += step
        holding = holding != (flip == 0)
        rows.append((Bar("A", 0.0, close, close + up, close - down, close, 1.0), holding))
    return rows


@given(walks(), st.integers(2, 10), st.integers(2, 10), st.floats(0.25, 5))
def test_momentum_is_its_reference(
        rows: list[tuple[Bar, bool]], lookback: int, exit_lookback: int, atr_stop: float) -> None:
    strategy = momentum(lookback, exit_lookback, atr_stop)
    got = [_side_and_stop(strategy.on_bar(bar, holding)) for bar, holding in rows]
    want = _momentum_reference(rows, lookback, exit_lookback, atr_stop)
    # the same verdicts; the stops to rounding (Wilder's step is summed in another order)
    assert [None if v is None else v[0] for v in got] == \
        [None if v is None else v[0] for v in want]
    assert [v[1] for v in got if v] == pytest.approx([v[1] for v in want if v], rel=1e-9,
                                                      abs=1e-9)


# prices of one market: from 1 to 2 (so that the reference's rounding is far below the
# tolerance), checked away from the thresholds
CLOSE = st.floats(1.0, 2.0)


@given(st.lists(st.tuples(CLOSE, st.booleans()), max_size=120), st.integers(3, 12),
       st.floats(0.5, 3))
def test_reversion_is_its_reference_away_from_the_thresholds(
        rows: list[tuple[float, bool]], window: int, k: float) -> None:
    """From the docstring: with ``window`` closes before it, a close (not held) more than
    ``k`` standard deviations under their mean buys with ``1.5`` sd of stop; a held close
    at the mean or over it sells. Closes within 1e-9 of a threshold, and buys against a
    spread under 1e-4, are not compared."""
    strategy = reversion(window, k, stop_k=1.5)
    closes = [c for c, _ in rows]
    for i, (close, holding) in enumerate(rows):
        got = _side_and_stop(strategy.on_bar(_bar(i, close, close, close), holding))
        if i < window:
            assert got is None
            continue
        before = closes[i - window:i]
        mean = math.fsum(before) / window
        sd = math.sqrt(math.fsum((c - mean) ** 2 for c in before) / window)
        edges = [mean] if holding else [mean, mean - k * sd]
        if any(abs(close - edge) < 1e-9 for edge in edges) or (not holding and sd < 1e-4):
            continue
        if holding:
            assert got == ((Side.SELL, 0.0) if close >= mean else None)
        elif close < mean - k * sd:
            assert got is not None and got[0] is Side.BUY
            assert got[1] == pytest.approx(1.5 * sd, rel=1e-6)
        else:
            assert got is None
