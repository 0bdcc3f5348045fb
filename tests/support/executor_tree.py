"""The executor's tree for its entry tests: the real breaker, paper exchange, position actor
and executor, the ledger's writes held back on events (and, if asked, the exchange's orders)."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from actors.execution.executor import ExecutorActor
from actors.portfolio.positions import PositionActor
from actors.risk.breaker import BreakerActor
from actors.strategies.contract import Signal
from actors.venues.paper_exchange import PaperExchange
from supervisor import ChildSpec, Runtime, SupervisorSpec
from supervisor.clock import Clock
from tests.support.breaker_helpers import breaker_settings
from tests.support.executor_helpers import WAIT, HeldExchange, HeldPositions, bars, buy_signal
from tests.support.standins import Sink


def executor_tree(tmp_path: Path, release: threading.Event, holding: threading.Event, *,
                  serial: bool = False, max_open_positions: int = 2,
                  max_exposure_pct: str = "100",
                  venue: tuple[threading.Event, threading.Event] | None = None,
                  exchange_class: type[PaperExchange] | None = None,
                  order_timeout: float = 5.0, clock: Clock | None = None) -> Runtime:
    """Start the tree: 1000 of cash, 100 % risk a trade and 60 % a position at most; the
    ledger's writes held by ``release``/``holding`` (``HeldPositions``) and, with ``venue``
    (release, holding), the exchange's orders too (``HeldExchange``), or an
    ``exchange_class`` instead of the paper exchange."""
    positions = PositionActor.Settings(database=str(tmp_path / "ledger.db"),
                                       starting_cash=Decimal("1000"), sources=(),
                                       reconcile_interval=3600)
    executor = ExecutorActor.Settings(risk_per_trade_pct=Decimal("100"),
                                      max_position_pct=Decimal("60"),
                                      max_exposure_pct=Decimal(max_exposure_pct),
                                      max_open_positions=max_open_positions,
                                      min_notional=Decimal("1"),
                                      order_timeout=order_timeout, serial=serial)
    exchange = PaperExchange.Settings(database=str(tmp_path / "venue.db"))
    breaker: BreakerActor.Settings = breaker_settings(tmp_path)
    rt = Runtime(ask_timeout=WAIT, clock=clock)
    rt.start(SupervisorSpec(children=(
        ChildSpec("alerts", factory=Sink),
        ChildSpec("breaker", factory=lambda: BreakerActor(breaker)),
        ChildSpec("positions", factory=lambda: HeldPositions(positions, release, holding)),
        ChildSpec("exchange", factory=lambda: HeldExchange(exchange, *venue) if venue
                  else (exchange_class or PaperExchange)(exchange)),
        ChildSpec("executor", factory=lambda: ExecutorActor(executor)),
    )))
    return rt


def three_buys_the_first_held(rt: Runtime, holding: threading.Event
                              ) -> tuple[Signal, Signal, Signal]:
    """Price AAA, BBB and CCC (100, 50, 20), tell the executor a buy of AAA and wait until
    its fill is held at the ledger (``holding``); return the buys of AAA, BBB and CCC (the
    last two not told yet)."""
    rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50), ("CCC/USDT", 20)))
    a, b, c = (buy_signal("AAA/USDT", 100.0), buy_signal("BBB/USDT", 50.0),
               buy_signal("CCC/USDT", 20.0))
    rt.tell("executor", a)
    assert holding.wait(WAIT), "the fill of AAA never reached the ledger"
    return a, b, c
