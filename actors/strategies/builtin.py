"""The built-in strategies, written on the strategy API as its examples (docs/strategies.md).

Registered as ``momentum`` and ``mean_reversion`` in the entry-point group
``botvisor.strategies``. Their indicators are ferro_ta's streaming ones (Rust: O(1) time
and memory per update, 0.2-0.4 µs), and they read rolling highs and lows from the runner's
window, where ``max``/``min`` run in C.
"""

from __future__ import annotations

import math
from itertools import islice

from ferro_ta import StreamingATR, StreamingBBands

from actors.strategies.api import Candle, Enter, Exit, Strategy, View, param

__all__ = [
    "MeanReversion",
    "MomentumBreakout",
]


class MomentumBreakout(Strategy):
    """Buy a close above the highest high of the ``lookback`` candles before it; sell a
    close below the lowest low of the ``exit_lookback`` candles before it. Stop distance:
    ``atr_stop`` times the ATR over ``lookback`` as of the candle before (ferro_ta's, as
    TA-Lib's: true ranges from the second candle on, the first ATR their mean over
    ``lookback`` of them, then Wilder's smoothing). Nothing until ``lookback + 1`` candles
    were seen before the current one."""

    name = "momentum"

    class Params(Strategy.Params):
        lookback: int = param(20, low=2, high=200, step=1,
                              doc="candles whose highest high a close must break")
        exit_lookback: int = param(10, low=2, high=200, step=1,
                                   doc="candles whose lowest low a close must fall under")
        atr_stop: float = param(2.0, low=0.25, high=10.0, doc="stop distance, in ATRs")

    params: Params

    def setup(self) -> None:
        self.atr = self.indicator(StreamingATR(self.params.lookback))
        self.last_atr = math.nan  # as of the candle before (NaN: not ready)

    def window(self) -> int:
        return max(self.params.lookback, self.params.exit_lookback) + 1

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        atr = self.last_atr
        self.last_atr = self.atr.update(candle.high, candle.low, candle.close)
        if math.isnan(atr):  # too few candles before this one
            return None
        p = self.params
        close = candle.close
        # the candle before is in both windows: a close that does not pass its high (low)
        # passes no window's, and most do not, so max (min) is rarely needed
        if view.position is None:
            highs = view.highs
            n = len(highs)
            if close > highs[-2] and close > max(islice(highs, n - 1 - p.lookback, n - 1)):
                return Enter(p.atr_stop * atr, reason=f"close {close:.6g} broke the "
                                                      f"{p.lookback}-bar high")
            return None
        lows = view.lows
        n = len(lows)
        if close < lows[-2] and close < min(islice(lows, max(0, n - 1 - p.exit_lookback), n - 1)):
            return Exit(f"close {close:.6g} fell below the {p.exit_lookback}-bar low")
        return None


class MeanReversion(Strategy):
    """Buy a close ``k`` standard deviations below the mean of the ``window`` closes
    before it; sell once the close is back at that mean. Stop distance: ``stop_k``
    standard deviations.

    The mean and the (population) standard deviation are ferro_ta's Bollinger bands over
    ``window`` at one deviation (the middle band, and the upper band's distance from it),
    as of the candle before."""

    name = "mean_reversion"

    class Params(Strategy.Params):
        window: int = param(30, low=3, high=300, step=1, doc="closes the mean is taken over")
        k: float = param(2.0, low=0.5, high=5.0, doc="standard deviations under the mean")
        stop_k: float = param(1.5, low=0.25, high=10.0,
                              doc="stop distance, in standard deviations")

    params: Params

    def setup(self) -> None:
        self.bands = self.indicator(StreamingBBands(self.params.window, 1.0, 1.0))
        self.last = (math.nan, math.nan, math.nan)  # upper, middle, lower before the candle

    def window(self) -> int:
        return self.params.window + 1

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        upper, mean, _ = self.last  # of the window before this candle
        close = candle.close
        self.last = self.bands.update(close)
        if math.isnan(mean):  # fewer than window closes before this one
            return None
        if view.position is not None:
            if close >= mean:
                return Exit(f"close {close:.6g} is back at the mean {mean:.6g}")
            return None
        if close >= mean:
            return None
        p = self.params
        sd = upper - mean
        if sd > 0 and close < mean - p.k * sd:
            return Enter(p.stop_k * sd, reason=f"close {close:.6g} is {p.k:g} sd below the "
                                               f"{p.window}-bar mean {mean:.6g}")
        return None
