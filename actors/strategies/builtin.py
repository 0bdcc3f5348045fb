"""Trading strategies: pure, per-symbol state machines that turn bars into entries/exits."""

from __future__ import annotations

import math
from collections import deque

from actors.common.messages import Side
from actors.market.contract import Bar
from actors.strategies.contract import Verdict

__all__ = [
    "MeanReversion",
    "MomentumBreakout",
]


class MomentumBreakout:
    """Buy a close above the highest high of the last ``lookback`` bars; sell a close below
    the lowest low of the last ``exit_lookback`` bars. Stop distance: ``atr_stop`` ATRs.

    It sees every bar of its symbol, so it keeps the windows as plain floats (highs, lows,
    ranges) and lets ``max``/``min``/``sum`` run over them in C: the same numbers, in the
    same order, as over the bars themselves."""

    name = "momentum"

    def __init__(self, lookback: int = 20, exit_lookback: int = 10, atr_stop: float = 2.0):
        self.lookback = lookback
        self.exit_lookback = exit_lookback
        self.atr_stop = atr_stop
        self.seen = 0  # bars before the current one (the windows fill up first)
        self.highs: deque[float] = deque(maxlen=lookback)
        self.ranges: deque[float] = deque(maxlen=lookback)
        self.lows: deque[float] = deque(maxlen=exit_lookback)

    def on_bar(self, bar: Bar, holding: bool) -> Verdict:
        verdict: Verdict = None
        if self.seen >= self.lookback:
            if not holding and bar.close > max(self.highs):
                atr = sum(self.ranges) / self.lookback
                verdict = (Side.BUY, f"close {bar.close:.6g} broke the {self.lookback}-bar "
                                     "high", self.atr_stop * atr)
            elif holding and bar.close < min(self.lows):
                verdict = (Side.SELL, f"close {bar.close:.6g} fell below the "
                                      f"{self.exit_lookback}-bar low", 0.0)
        self.seen += 1
        self.highs.append(bar.high)
        self.ranges.append(bar.high - bar.low)
        self.lows.append(bar.low)
        return verdict


class MeanReversion:
    """Buy a close ``k`` standard deviations below the ``window``-bar mean; sell once the
    close is back at the mean. Stop distance: ``stop_k`` standard deviations.

    The mean and the variance come from running sums of the closes' distances to a
    reference close (O(1) a bar). The reference and the sums are renewed exactly
    (``math.fsum``) once per window, so rounding cannot build up, and being near the mean
    keeps the variance's subtraction well conditioned."""

    name = "mean_reversion"

    def __init__(self, window: int = 30, k: float = 2.0, stop_k: float = 1.5) -> None:
        self.window = window
        self.k = k
        self.stop_k = stop_k
        self.closes: deque[float] = deque(maxlen=window)
        self._ref = 0.0
        self._s1 = 0.0  # sum of (close - ref)
        self._s2 = 0.0  # sum of (close - ref) ** 2
        self._since_exact = 0

    def on_bar(self, bar: Bar, holding: bool) -> Verdict:
        closes = self.closes
        verdict: Verdict = None
        n = len(closes)
        if n == self.window:
            mean = self._ref + self._s1 / n
            if holding:
                if bar.close >= mean:
                    verdict = (Side.SELL, f"close {bar.close:.6g} is back at the mean "
                                          f"{mean:.6g}", 0.0)
            elif bar.close < mean:
                var = max(0.0, (self._s2 - self._s1 * self._s1 / n) / n)
                std = math.sqrt(var)
                if std > 0 and bar.close < mean - self.k * std:
                    verdict = (Side.BUY, f"close {bar.close:.6g} is {self.k:g} sd below the "
                                         f"{self.window}-bar mean {mean:.6g}", self.stop_k * std)
        self._push(bar.close)
        return verdict

    def _push(self, close: float) -> None:
        closes = self.closes
        if len(closes) == self.window:
            gone = closes[0] - self._ref
            self._s1 -= gone
            self._s2 -= gone * gone
        closes.append(close)
        self._since_exact += 1
        if self._since_exact >= self.window:
            self._ref = closes[-1]
            d = [c - self._ref for c in closes]
            self._s1 = math.fsum(d)
            self._s2 = math.fsum(x * x for x in d)
            self._since_exact = 0
        else:
            x = close - self._ref
            self._s1 += x
            self._s2 += x * x
