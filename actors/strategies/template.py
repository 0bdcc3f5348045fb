"""The files ``botvisor new-strategy NAME`` writes: a strategy on the API (params with
ranges, a ferro_ta streaming indicator) and a pytest that runs it through the runner core. The same
example is the one docs/strategies.md teaches; a test runs the command and then pytest on
what it wrote."""

from __future__ import annotations

__all__ = ["class_name", "strategy_source", "strategy_test_source"]

STRATEGY = '''"""{name}: a strategy on botvisor's strategy API (see docs/strategies.md)."""

from __future__ import annotations

import math

from ferro_ta import StreamingEMA

from actors.strategies.api import Candle, Enter, Exit, Strategy, View, param


class {cls}(Strategy):
    """Buy a close that crosses above the ``period``-candle EMA (the close before was at
    or under it); sell one that crosses back under it. Stop distance: ``stop_pct`` percent
    of the close."""

    name = "{name}"

    class Params(Strategy.Params):
        period: int = param(20, low=5, high=200, step=1, doc="candles the EMA spans")
        stop_pct: float = param(2.0, low=0.2, high=10.0, log=True,
                                doc="stop distance, in percent of the close")

    params: Params

    def setup(self) -> None:
        self.ema = self.indicator(StreamingEMA(self.params.period))
        self.last = math.nan  # the EMA as of the candle before (NaN: not ready)

    def window(self) -> int:
        return 2  # this candle and the one before

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        ema, self.last = self.last, self.ema.update(candle.close)
        if math.isnan(ema) or len(view) < 2:  # fewer than period closes before this one
            return None
        before, close = view.closes[-2], candle.close
        if view.position is None:
            if before <= ema < close:
                return Enter(close * self.params.stop_pct / 100,
                             reason=f"close {{close:.6g}} crossed above the EMA {{ema:.6g}}")
        elif before >= ema > close:
            return Exit(f"close {{close:.6g}} crossed under the EMA {{ema:.6g}}")
        return None
'''

TEST = '''"""{name}: candles through the runner core, the code the evaluator runs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from {name} import {cls}
from actors.market.contract import Bar
from actors.portfolio.contract import PositionView
from actors.strategies.contract import Signal
from actors.strategies.runner import Runner, StrategyFault, StrategySpec

SYMBOL = "X/USDT"


def candles(closes: list[float], start: int = 0) -> list[Bar]:
    """One-minute candles with these closes, from minute ``start``."""
    return [Bar(SYMBOL, 60.0 * (start + i), c, c * 1.001, c * 0.999, c, 1.0)
            for i, c in enumerate(closes)]


class Signals:
    """The runner's sink: keeps the signals; a failing strategy fails the test."""

    def __init__(self) -> None:
        self.got: list[Signal] = []

    def signal(self, signal: Signal) -> bool:
        self.got.append(signal)
        return True

    def fault(self, fault: StrategyFault) -> None:
        raise AssertionError(fault)


def test_it_buys_a_cross_above_its_ema_and_sells_the_cross_back() -> None:
    params = {cls}.Params(period=10)
    runner = Runner([StrategySpec("{name}", {cls}, params)], entry_timeout_bars=20)
    sink = Signals()
    falling = [100.0 - i for i in range(30)]  # under its EMA all the way: no entry
    runner.on_candles(candles([*falling, 80.0]), {{SYMBOL}}, {{}}, sink)
    (buy,) = sink.got
    assert buy.side.value == "buy" and buy.price == 80.0
    assert buy.stop_distance == pytest.approx(80.0 * 0.02)

    held = {{SYMBOL: PositionView(Decimal(1), Decimal(80))}}  # the entry filled
    runner.positions(1, held)
    runner.on_candles(candles([60.0], start=31), {{SYMBOL}}, held, sink)
    assert [s.side.value for s in sink.got] == ["buy", "sell"]


def test_its_params_keep_to_their_ranges() -> None:
    with pytest.raises(ValidationError):
        {cls}.Params(period=1)
'''


def class_name(name: str) -> str:
    """``my_idea`` -> ``MyIdea``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Idea"


def strategy_source(name: str) -> str:
    return STRATEGY.format(name=name, cls=class_name(name))


def strategy_test_source(name: str) -> str:
    return TEST.format(name=name, cls=class_name(name))
