"""The built-in strategies, written on the strategy API as its examples (docs/strategies.md).

Registered as ``momentum`` and ``mean_reversion`` in the entry-point group
``botvisor.strategies``. Both keep to the cheap parts of talipp (ATR, SMA: about a
microsecond an add) and read rolling highs, lows and closes from the runner's window,
where ``max``/``min`` run in C.
"""

from __future__ import annotations

import math
from itertools import islice

from talipp.indicators import ATR, SMA

from actors.strategies.api import Candle, Enter, Exit, Strategy, View, param

__all__ = [
    "MeanReversion",
    "MomentumBreakout",
]


class MomentumBreakout(Strategy):
    """Buy a close above the highest high of the ``lookback`` candles before it; sell a
    close below the lowest low of the ``exit_lookback`` candles before it. Stop distance:
    ``atr_stop`` times talipp's ATR (true range, Wilder's smoothing over ``lookback``) as of
    the candle before. Nothing until ``lookback`` candles were seen."""

    name = "momentum"

    class Params(Strategy.Params):
        lookback: int = param(20, low=2, high=200, step=1,
                              doc="candles whose highest high a close must break")
        exit_lookback: int = param(10, low=2, high=200, step=1,
                                   doc="candles whose lowest low a close must fall under")
        atr_stop: float = param(2.0, low=0.25, high=10.0, doc="stop distance, in ATRs")

    params: Params

    def setup(self) -> None:
        self.atr = self.indicator(ATR(self.params.lookback))

    def window(self) -> int:
        return max(self.params.lookback, self.params.exit_lookback) + 1

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        atr_values = self.atr.output_values
        atr = atr_values[-1] if atr_values else None  # as of the candle before
        self.atr.add(candle)
        if atr is None:  # fewer than lookback candles before this one
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

    The mean is talipp's SMA; the (population) standard deviation is computed from the
    window's closes around it (``math.dist``), only when a close is under the mean and
    nothing is held (about half the candles), which costs less than talipp's StdDev on
    every candle."""

    name = "mean_reversion"

    class Params(Strategy.Params):
        window: int = param(30, low=3, high=300, step=1, doc="closes the mean is taken over")
        k: float = param(2.0, low=0.5, high=5.0, doc="standard deviations under the mean")
        stop_k: float = param(1.5, low=0.25, high=10.0,
                              doc="stop distance, in standard deviations")

    params: Params

    def setup(self) -> None:
        self.sma = self.indicator(SMA(self.params.window))

    def window(self) -> int:
        return self.params.window + 1

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        sma_values = self.sma.output_values
        mean = sma_values[-1] if sma_values else None  # of the window before this candle
        close = candle.close
        self.sma.add(close)
        if mean is None:
            return None
        if view.position is not None:
            if close >= mean:
                return Exit(f"close {close:.6g} is back at the mean {mean:.6g}")
            return None
        if close >= mean:
            return None
        p = self.params
        w = p.window
        n = len(view.closes)
        # math.dist: the root of the summed squares, in C, with care for rounding
        sd = math.dist(list(islice(view.closes, n - 1 - w, n - 1)), [mean] * w) / math.sqrt(w)
        if sd > 0 and close < mean - p.k * sd:
            return Enter(p.stop_k * sd, reason=f"close {close:.6g} is {p.k:g} sd below the "
                                               f"{w}-bar mean {mean:.6g}")
        return None
