"""A strategy for the exit-plan tests, importable by path
(``tests.execution.planned:Planned``): it enters once, on the first close at or over
``trigger``, with a stop ``stop_pct`` under the close and a take-profit ``target_pct``
over it, and never exits itself (its exits' rules close the position)."""

from __future__ import annotations

from actors.strategies.api import Candle, Enter, Strategy, View, param


class Planned(Strategy):
    """One entry, with a stop distance and a take-profit (see the module docstring)."""

    name = "planned"

    class Params(Strategy.Params):
        trigger: float = param(100.0, low=0.01, high=1e9, doc="the close that enters")
        stop_pct: float = param(0.5, low=0.1, high=10.0, doc="stop under the close, in %")
        target_pct: float = param(1.0, low=0.1, high=50.0, doc="target over the close, in %")

    params: Params

    def setup(self) -> None:
        self.entered = False

    def on_candle(self, candle: Candle, view: View) -> Enter | None:
        p = self.params
        if self.entered or view.position is not None or candle.close < p.trigger:
            return None
        self.entered = True
        return Enter(candle.close * p.stop_pct / 100,
                     take_profit=candle.close * (1 + p.target_pct / 100),
                     reason=f"close {candle.close:g} at or over {p.trigger:g}")
