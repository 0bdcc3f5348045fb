"""The executor's ``serial`` setting (a lockstep replay's, docs/backtesting.md, "Parity with
the live tree"): a signal is decided only once no order and no fill is out, so it is sized
on a ledger that holds every earlier fill, as a backtest's decision is.

Real actors: the executor, the breaker, the paper exchange and the position actor, whose
writes the test holds back (``HeldPositions``: ``RecordFill`` waits for an event). The
same tree without ``serial`` places the second entry while the first fill is held
(``test_executor_entries.py``).
"""

from __future__ import annotations

import threading
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from actors.execution.executor import ExecutorActor
from actors.portfolio.contract import GetPortfolio, PortfolioSnapshot
from actors.portfolio.positions import PositionActor
from actors.risk.breaker import BreakerActor
from actors.venues.paper_exchange import PaperExchange
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.bot_helpers import wait_until
from tests.support.breaker_helpers import breaker_settings
from tests.support.executor_helpers import (
    WAIT,
    HeldPositions,
    bars,
    buy_signal,
    held,
    placed,
    wait_held,
)
from tests.support.standins import Sink

EIGHT = Decimal("0.00000001")


def _tree(tmp_path: Path, release: threading.Event, holding: threading.Event) -> Runtime:
    positions = PositionActor.Settings(database=str(tmp_path / "ledger.db"),
                                       starting_cash=Decimal("1000"), sources=(),
                                       reconcile_interval=3600)
    executor = ExecutorActor.Settings(risk_per_trade_pct=Decimal("100"),
                                      max_position_pct=Decimal("60"),
                                      max_exposure_pct=Decimal("100"), max_open_positions=3,
                                      min_notional=Decimal("1"), serial=True)
    exchange = PaperExchange.Settings(database=str(tmp_path / "venue.db"))
    breaker: BreakerActor.Settings = breaker_settings(tmp_path)
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("alerts", factory=Sink),
        ChildSpec("breaker", factory=lambda: BreakerActor(breaker)),
        ChildSpec("positions", factory=lambda: HeldPositions(positions, release, holding)),
        ChildSpec("exchange", factory=lambda: PaperExchange(exchange)),
        ChildSpec("executor", factory=lambda: ExecutorActor(executor)),
    )))
    return rt


def test_serial_decides_the_next_entry_only_once_the_fill_before_is_in_the_ledger(
    tmp_path: Path,
) -> None:
    release, holding = threading.Event(), threading.Event()
    rt = _tree(tmp_path, release, holding)
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50), ("CCC/USDT", 20)))
        a, b, c = (buy_signal("AAA/USDT", 100.0), buy_signal("BBB/USDT", 50.0),
                   buy_signal("CCC/USDT", 20.0))
        rt.tell("executor", a)
        assert holding.wait(WAIT), "the fill of AAA never reached the ledger"
        rt.tell("executor", b)
        rt.tell("executor", c)
        wait_held(rt, b, c)  # AAA's fill is out: both wait, in their order
        assert placed(rt, b) is None and placed(rt, c) is None
        release.set()
        second = wait_until(lambda: placed(rt, b), timeout=WAIT, what="BBB's order")
        third = wait_until(lambda: placed(rt, c), timeout=WAIT, what="CCC's order")
        assert held(rt) == ()
        # each sized on the ledger's cash once the fills before it were in: 98 % of it
        first = placed(rt, a)
        assert first is not None
        cash = Decimal(1000)
        for result, price in ((first, 100), (second, 50), (third, 20)):
            fill = result.fills[0]
            if price != 100:
                assert fill.quantity == (cash * Decimal("0.98") / price).quantize(
                    EIGHT, ROUND_DOWN)
            cash -= fill.quantity * fill.price + fill.fee
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert snap.cash == cash
    finally:
        release.set()
        rt.stop()
