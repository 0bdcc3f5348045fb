"""The evaluator signals a sale once, not with every bar until the ledger shows it.

A strategy repeats its sell verdict bar after bar while it holds (the momentum strategy:
every close below the recent low), and the position snapshot shows the sale only once its
fill is committed. Real actors: the evaluator; a stand-in for the position actor that
publishes the snapshots the test gives it; a stand-in for the executor that keeps the
signals it is told.
"""

from __future__ import annotations

from pykka.messages import ProxyGetAttr

from actors.common.messages import Side
from actors.market.contract import Bar, ScannedBars
from actors.strategies.contract import Signal
from actors.strategies.evaluator import EvaluatorActor
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.standins import Collector, Ledger, Publish, snapshot

SYMBOL = "X/USDT"


class Script:
    """Drives the evaluator one bar at a time, a minute apart."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.at = 0.0

    def ledger(self, seq: int, quantity: str | None) -> None:
        held = {} if quantity is None else {SYMBOL: (quantity, 110.0)}
        self.rt.ask("positions", Publish(snapshot(seq, held)))

    def bars(self, *closes: float) -> None:
        for close in closes:
            self.at += 60.0
            bar = Bar(SYMBOL, self.at, close, close, close - 1.0, close, 1e6)  # low: 1 under
            self.rt.tell("evaluator", ScannedBars((bar,), frozenset({SYMBOL})))

    def signals(self) -> list[tuple[str, float]]:
        self.rt.ask("evaluator", ProxyGetAttr(attr_path=("signals",)))
        got: list[Signal] = self.rt.ask("executor", ProxyGetAttr(attr_path=("got",)))
        return [(s.side.value, s.price) for s in got]


def test_a_sale_is_signalled_once_until_the_position_changes_or_the_wait_lapses() -> None:
    settings = EvaluatorActor.Settings(
        strategies=({"class": "momentum", "params": {"lookback": 3, "exit_lookback": 2}},),
        entry_timeout_bars=3)
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("positions", factory=Ledger),
        ChildSpec("executor", factory=lambda: Collector(Signal)),
        ChildSpec("evaluator", factory=lambda: EvaluatorActor(settings)),
    )))
    try:
        script = Script(rt)
        script.ledger(1, None)
        script.bars(100, 100, 101, 102, 110)  # a breakout of the 3-bar high: buy
        assert script.signals() == [("buy", 110)]
        script.ledger(2, "1")  # the entry is in the ledger: momentum owns X
        # every close below the 2-bar low is a sell verdict; the sale is signalled once,
        # the next three verdicts (entry_timeout_bars) are held back, the fourth lapses
        script.bars(90, 85, 80, 75, 70)
        assert script.signals() == [("buy", 110), ("sell", 90), ("sell", 70)]
        script.ledger(3, "0.5")  # filled in part: what is left is sold at once
        script.bars(65)
        assert script.signals()[-1] == ("sell", 65)
        script.ledger(4, None)  # sold: nothing more to sell, nothing held back
        script.bars(60, 55)
        assert len(script.signals()) == 4
        assert rt.ask("evaluator", ProxyGetAttr(attr_path=("selling",))) == {}
        assert all(s == Side.SELL.value for s, _ in script.signals()[1:])
    finally:
        rt.stop()
