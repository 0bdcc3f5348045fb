"""Strategies for the tests, importable by path (``tests.strategies.scripted:Raiser``):
one that buys and sells on set closes, ones that raise (on a set close, always) or return
what is not a decision, and a class a config must refuse."""

from __future__ import annotations

from talipp.indicators import SMA

from actors.strategies.api import Candle, Enter, Exit, Strategy, View, param

BUY_AT = 7.0  # a close of 7 is an entry for Scripted
SELL_AT = 3.0  # a close of 3 is an exit
BOOM = 13.0  # a close of 13 makes Raiser raise


class Scripted(Strategy):
    """Enter on a close of 7 (stop 0.5, take-profit 9), exit on a close of 3; it records
    every candle it sees and the position it was shown."""

    name = "scripted"

    class Params(Strategy.Params):
        span: int = param(3, low=1, high=50, step=1)

    params: Params

    def setup(self) -> None:
        self.seen: list[tuple[float, float | None]] = []  # close, position quantity
        self.sma = self.indicator(SMA(self.params.span))

    def window(self) -> int:
        return self.params.span

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        self.sma.add(candle.close)
        self.seen.append((candle.close, None if view.position is None
                          else view.position.quantity))
        if candle.close == BUY_AT:
            return Enter(0.5, take_profit=9.0, reason="seven")
        if candle.close == SELL_AT:
            return Exit("three")
        return None


class Raiser(Scripted):
    """Scripted, except that a close of 13 raises ``error`` (a class attribute a test sets
    on a subclass), or a ValueError."""

    name = "raiser"
    error: type[BaseException] = ValueError

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        if candle.close == BOOM:
            raise self.error(f"close {candle.close:g}")
        return super().on_candle(candle, view)


class Broken(Scripted):
    """Raises a ValueError on every candle."""

    name = "broken"

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        raise ValueError(f"broken on {candle.close:g}")


class Unready(Scripted):
    """Its setup raises on B/USDT (a KeyError); on C/USDT its window is no number."""

    name = "unready"

    def setup(self) -> None:
        if self.symbol == "B/USDT":
            raise KeyError(self.symbol)
        super().setup()

    def window(self) -> int:
        return "three" if self.symbol == "C/USDT" else 3  # type: ignore[return-value]


class Wrong(Scripted):
    """Returns something that is not a decision on a close of 13."""

    name = "wrong"

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        if candle.close == BOOM:
            return "buy"  # type: ignore[return-value]
        return super().on_candle(candle, view)


class NotAStrategy:
    """A class a config must refuse as a strategy."""
