"""An entry does not wait for another symbol's fill to be written to the ledger, and still
counts it: the executor sizes against cash, exposure and open positions less the buys the
ledger has not acknowledged yet.

Real actors: the executor, the breaker, the paper exchange and a position actor whose
writes are held back by the test (a slow disk, made on purpose: ``RecordFill`` waits for
an event before the real handler runs).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.breaker import BreakerActor
from actors.executor import ExecutorActor, ExecutorStats, GetExecutorStats
from actors.market import Bars
from actors.messages import Side
from actors.paper_exchange import GetVenueFills, PaperExchange
from actors.pipeline_messages import Bar, LookupOrder, OrderResult, Signal, client_order_id
from actors.position_messages import GetPortfolio, PortfolioSnapshot, RecordFill
from actors.positions import PositionActor
from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec
from tests.bot_helpers import wait_until
from tests.breaker_helpers import breaker_settings

WAIT = 10.0


class _Sink(SupervisedActor):
    """The alerts actor's place: takes what it is told."""

    def on_receive(self, message: Any) -> Any:
        return None


class HeldPositions(PositionActor):
    """The position actor, whose fills wait for ``release`` before they are written."""

    def __init__(self, settings: PositionActor.Settings, release: threading.Event,
                 holding: threading.Event) -> None:
        super().__init__(settings)
        self.release = release
        self.holding = holding

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RecordFill):
            self.holding.set()
            assert self.release.wait(WAIT), "the test never released the ledger"
        return super().on_receive(message)


def _tree(tmp_path: Path, release: threading.Event, holding: threading.Event) -> Runtime:
    positions = PositionActor.Settings(database=str(tmp_path / "ledger.db"),
                                       starting_cash=Decimal("1000"), sources=(),
                                       reconcile_interval=3600)
    executor = ExecutorActor.Settings(risk_per_trade_pct=Decimal("100"),
                                      max_position_pct=Decimal("60"),
                                      max_exposure_pct=Decimal("100"), max_open_positions=2,
                                      min_notional=Decimal("1"))
    exchange = PaperExchange.Settings(database=str(tmp_path / "venue.db"))
    breaker: BreakerActor.Settings = breaker_settings(tmp_path)
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("alerts", factory=_Sink),
        ChildSpec("breaker", factory=lambda: BreakerActor(breaker)),
        ChildSpec("positions", factory=lambda: HeldPositions(positions, release, holding)),
        ChildSpec("exchange", factory=lambda: PaperExchange(exchange)),
        ChildSpec("executor", factory=lambda: ExecutorActor(executor)),
    )))
    return rt


def _buy(symbol: str, price: float) -> Signal:
    return Signal(f"test:{symbol}:60:buy", "test", symbol, Side.BUY, price, 60.0, "a test")


def _placed(rt: Runtime, signal: Signal) -> OrderResult | None:
    found = rt.ask("exchange", LookupOrder(client_order_id(signal.signal_id)))
    return found if isinstance(found, OrderResult) else None


def test_an_entry_counts_a_fill_the_ledger_is_still_writing_and_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    release, holding = threading.Event(), threading.Event()
    rt = _tree(tmp_path, release, holding)
    try:
        rt.tell("exchange", Bars((Bar("AAA/USDT", 60.0, 100, 100, 100, 100, 1e6),
                                  Bar("BBB/USDT", 60.0, 50, 50, 50, 50, 1e6),
                                  Bar("CCC/USDT", 60.0, 20, 20, 20, 20, 1e6))))
        a, b, c = _buy("AAA/USDT", 100.0), _buy("BBB/USDT", 50.0), _buy("CCC/USDT", 20.0)
        rt.tell("executor", a)
        assert holding.wait(WAIT), "the fill of AAA never reached the ledger"
        # AAA's fill is being written (held); BBB is decided and sent meanwhile.
        rt.tell("executor", b)
        first = wait_until(lambda: _placed(rt, a), timeout=WAIT, what="AAA's order")
        second = wait_until(lambda: _placed(rt, b), timeout=WAIT, what="BBB's order")
        assert not release.is_set()  # BBB went out while AAA's fill was still unwritten
        # AAA: 60 % of equity 1000 at 100 -> 6. BBB: what is left once AAA's cost counts
        # (1000 - 600.3 notional - 0.6 fee, 98 % of it), not the 600 a stale cash of 1000
        # would allow.
        bought = first.fills[0].quantity * first.fills[0].price
        assert first.fills[0].quantity == Decimal("6")
        left = (Decimal(1000) - bought - first.fills[0].fee) * Decimal("0.98")
        assert second.fills[0].quantity == (left / Decimal(50)).quantize(Decimal("0.00000001"),
                                                                        rounding="ROUND_DOWN")
        # max_open_positions=2: with AAA and BBB both in flight, CCC is refused.
        rt.tell("executor", c)
        release.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.skipped.get("max open positions") == 1, stats.skipped
        assert stats.fills_recorded == 2 and stats.unrecorded == 0
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert set(snap.positions) == {"AAA/USDT", "BBB/USDT"}
        assert snap.cash >= 0
        venue = rt.ask("exchange", GetVenueFills())
        assert len(venue) == 2
    finally:
        release.set()
        rt.stop()


def test_a_second_order_of_the_same_symbol_waits_for_the_first_fill(tmp_path: Path) -> None:
    """A sale right after its entry: the executor reads the entry's acknowledgement (waits
    for the write) before it decides, so the sale sells what was bought."""
    release, holding = threading.Event(), threading.Event()
    rt = _tree(tmp_path, release, holding)
    try:
        rt.tell("exchange", Bars((Bar("AAA/USDT", 60.0, 100, 100, 100, 100, 1e6),)))
        buy = _buy("AAA/USDT", 100.0)
        sell = Signal("test:AAA/USDT:60:sell", "test", "AAA/USDT", Side.SELL, 100.0, 60.0,
                      "a test")
        rt.tell("executor", buy)
        assert holding.wait(WAIT)
        rt.tell("executor", sell)
        wait_until(lambda: _placed(rt, buy), timeout=WAIT, what="the entry")
        assert _placed(rt, sell) is None  # the sale waits for the entry's write
        release.set()
        sold = wait_until(lambda: _placed(rt, sell), timeout=WAIT, what="the sale")
        assert sold.fills[0].quantity == Decimal("6")
    finally:
        release.set()
        rt.stop()
