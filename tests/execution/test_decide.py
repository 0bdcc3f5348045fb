"""The executor's decision (actors/execution/decide.py), pure: a request, a snapshot, a gate
and what is in flight in; skip, hold, check, refuse or place out. No runtime."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pytest

from actors.common.messages import Fill, Side
from actors.execution.contract import ExitRequest, SkipReason, client_order_id
from actors.execution.decide import HOLD, Check, Limits, Place, Refuse, Skip, decide
from actors.execution.orders import OrderPhase
from actors.execution.sizing import InFlightBuy, RiskLimits
from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import BreakerGate, BreakerState
from actors.strategies.contract import Signal
from tests.support.standins import snapshot

pytestmark = pytest.mark.unit

LIMITS = Limits(RiskLimits(Decimal("100"), Decimal("2"), Decimal("30"), Decimal("100"),
                           Decimal("1"), Decimal("1")), max_open_positions=3)
CLOSED = BreakerGate(BreakerState.CLOSED)


@dataclass
class Flight:
    """What is in flight, as a test sets it (the decision's ``InFlight``)."""

    checked_through: float | None = -math.inf
    halt_pending: bool = False
    phases: dict[str, OrderPhase] = field(default_factory=dict)
    sales: set[str] = field(default_factory=set)
    busy_symbols: set[str] = field(default_factory=set)
    resolving_any: bool = False
    unsettled: set[str] = field(default_factory=set)
    buys_writing: list[Fill] = field(default_factory=list)
    buys_unanswered: list[InFlightBuy] = field(default_factory=list)

    def phase(self, coid: str) -> OrderPhase | None:
        return self.phases.get(coid)

    def has_sale(self, symbol: str) -> bool:
        return symbol in self.sales

    def busy(self, symbol: str) -> bool:
        return symbol in self.busy_symbols

    def resolving(self) -> bool:
        return self.resolving_any

    def unsettled_symbols(self) -> set[str]:
        return set(self.unsettled)

    def writing(self) -> list[Fill]:
        return list(self.buys_writing)

    def unanswered(self) -> list[InFlightBuy]:
        return list(self.buys_unanswered)


def buy(symbol: str = "AAA/USDT", price: float = 100.0, at: float = 60.0) -> Signal:
    return Signal(f"t:{symbol}:{at}:buy", "t", symbol, Side.BUY, price, at, "a test")


def sell(symbol: str = "AAA/USDT", at: float = 120.0) -> Signal:
    return Signal(f"t:{symbol}:{at}:sell", "t", symbol, Side.SELL, 100.0, at, "a test")


def stop(symbol: str = "AAA/USDT") -> ExitRequest:
    return ExitRequest(f"exit:stop_loss:{symbol}:180", symbol, "stop_loss", 90.0, 180.0)


HOLDING = snapshot(1, {"AAA/USDT": ("2", 100.0)})
FULL = replace(snapshot(1), gross_exposure=Decimal(1000))  # max_exposure_pct reached


def test_an_entry_is_sized_and_placed_with_the_gates_permission() -> None:
    d = decide(buy(), snapshot(1), CLOSED, Flight(), LIMITS)
    assert isinstance(d, Place), d
    # 30 % of equity 1,000 at 100 (risk 100 % over a 2 % stop would allow more)
    assert (d.side, d.quantity, d.reduces, d.price) == (Side.BUY, Decimal(3), False,
                                                        Decimal(100))
    assert d.coid == client_order_id(buy().signal_id) and d.exit_reason is None
    assert d.permission.allowed and d.permission.state is BreakerState.CLOSED


def test_a_sale_and_an_exit_sell_the_whole_position_reduce_only() -> None:
    d = decide(sell(), HOLDING, CLOSED, Flight(), LIMITS)
    assert isinstance(d, Place) and (d.side, d.quantity, d.reduces) == (Side.SELL,
                                                                        Decimal(2), True)
    e = decide(stop(), HOLDING, CLOSED, Flight(), LIMITS)
    assert isinstance(e, Place) and e.exit_reason == "stop_loss" and e.reduces


@pytest.mark.parametrize(("request_", "snap", "flight", "reason"), [
    (sell(), HOLDING, Flight(sales={"AAA/USDT"}), SkipReason.SALE_IN_FLIGHT),
    (stop(), HOLDING, Flight(sales={"AAA/USDT"}), SkipReason.SALE_IN_FLIGHT),
    (sell(), snapshot(1), Flight(), SkipReason.SELL_WITHOUT_POSITION),
    (sell(), None, Flight(), SkipReason.SELL_WITHOUT_POSITION),
    (stop(), snapshot(1), Flight(), SkipReason.EXIT_WITHOUT_POSITION),
    (buy(), None, Flight(), SkipReason.NO_PORTFOLIO),
    (buy(), HOLDING, Flight(), SkipReason.ALREADY_HOLDING),
    (buy(), snapshot(1, {"B": ("1", 1.0), "C": ("1", 1.0)}),
     Flight(buys_unanswered=[InFlightBuy("D", Decimal(1), Decimal(1))]),
     SkipReason.MAX_OPEN_POSITIONS),
    (buy(price=0.0), snapshot(1), Flight(), SkipReason.NO_EQUITY),
    (buy(), FULL, Flight(), SkipReason.BELOW_MINIMUM),
    (buy(), snapshot(1), Flight(unsettled={"BBB/USDT"}), SkipReason.UNSETTLED),
    (sell(), HOLDING, Flight(unsettled={"AAA/USDT"}), SkipReason.UNSETTLED),
    (buy(), snapshot(1), Flight(phases={client_order_id(buy().signal_id): OrderPhase.FILLED}),
     SkipReason.ALREADY_HANDLED),
    (sell(), HOLDING,
     Flight(phases={client_order_id(sell().signal_id): OrderPhase.CHECKING_LEDGER}),
     SkipReason.ALREADY_HANDLED),
])
def test_each_skip_reason_the_decision_gives(request_: Signal | ExitRequest,
                                             snap: PortfolioSnapshot | None, flight: Flight,
                                             reason: SkipReason) -> None:
    assert decide(request_, snap, CLOSED, flight, LIMITS) == Skip(reason)


def test_a_sale_with_another_symbol_unsettled_still_goes_out() -> None:
    d = decide(sell(), HOLDING, CLOSED, Flight(unsettled={"BBB/USDT"}), LIMITS)
    assert isinstance(d, Place)


def test_a_request_waits_while_its_symbol_is_busy_and_an_entry_while_anything_resolves() -> None:
    busy = Flight(busy_symbols={"AAA/USDT"})
    assert decide(buy(), snapshot(1), CLOSED, busy, LIMITS) is HOLD
    assert decide(sell(), HOLDING, CLOSED, busy, LIMITS) is HOLD
    resolving = Flight(resolving_any=True)
    assert decide(buy(), snapshot(1), CLOSED, resolving, LIMITS) is HOLD
    assert isinstance(decide(sell(), HOLDING, CLOSED, resolving, LIMITS), Place)


def test_a_signal_an_earlier_instance_may_have_sent_is_checked_first() -> None:
    coid = client_order_id(buy(at=60.0).signal_id)
    assert decide(buy(at=60.0), snapshot(1), CLOSED, Flight(checked_through=60.0),
                  LIMITS) == Check(coid)
    assert decide(buy(at=60.0), snapshot(1), CLOSED, Flight(checked_through=None),
                  LIMITS) == Check(coid)
    assert isinstance(decide(buy(at=61.0), snapshot(1), CLOSED, Flight(checked_through=60.0),
                             LIMITS), Place)
    # checked and found new: placed now, not checked again
    new = Flight(checked_through=60.0, phases={coid: OrderPhase.CHECKED_NEW})
    assert isinstance(decide(buy(at=60.0), snapshot(1), CLOSED, new, LIMITS), Place)


def test_the_breaker_refuses_and_a_halt_not_taken_yet_refuses_as_halted() -> None:
    opened = BreakerGate(BreakerState.OPEN, "too many errors")
    assert decide(buy(), snapshot(1), opened, Flight(), LIMITS) == Refuse(BreakerState.OPEN)
    assert isinstance(decide(sell(), HOLDING, opened, Flight(), LIMITS), Place)  # reduces
    assert decide(sell(), HOLDING, CLOSED, Flight(halt_pending=True), LIMITS) == \
        Refuse(BreakerState.HALTED)


def test_a_half_open_probe_slot_is_taken_only_by_an_order_placed() -> None:
    gate = BreakerGate(BreakerState.HALF_OPEN, "probing", since=5.0, probes=1)
    # skipped, held, checked, or refused for a halt: the gate is not asked
    assert decide(buy(), snapshot(1), gate, Flight(unsettled={"X"}), LIMITS) == \
        Skip(SkipReason.UNSETTLED)
    assert decide(buy(), snapshot(1), gate, Flight(busy_symbols={"AAA/USDT"}),
                  LIMITS) is HOLD
    assert isinstance(decide(buy(), snapshot(1), gate, Flight(checked_through=None), LIMITS),
                      Check)
    assert decide(buy(), snapshot(1), gate, Flight(halt_pending=True), LIMITS) == \
        Refuse(BreakerState.HALTED)
    assert decide(buy(), FULL, gate, Flight(), LIMITS) == \
        Skip(SkipReason.BELOW_MINIMUM)
    placed = decide(buy(), snapshot(1), gate, Flight(), LIMITS)
    assert isinstance(placed, Place) and placed.permission.probe
    # the one slot is taken: the next entry is refused
    assert decide(buy("BBB/USDT"), snapshot(1), gate, Flight(), LIMITS) == \
        Refuse(BreakerState.HALF_OPEN)


def test_an_order_placed_takes_one_probe_slot_only() -> None:
    gate = BreakerGate(BreakerState.HALF_OPEN, "probing", since=5.0, probes=2)
    for symbol in ("AAA/USDT", "BBB/USDT"):
        d = decide(buy(symbol), snapshot(1), gate, Flight(), LIMITS)
        assert isinstance(d, Place) and d.permission.probe, d
    assert decide(buy("CCC/USDT"), snapshot(1), gate, Flight(), LIMITS) == \
        Refuse(BreakerState.HALF_OPEN)


def test_an_entry_counts_the_buys_in_flight_against_cash() -> None:
    writing = Fill("f1", "bv-x", "BBB/USDT", Side.BUY, Decimal(6), Decimal(100))
    d = decide(buy(), snapshot(1), CLOSED, Flight(buys_writing=[writing]), LIMITS)
    assert isinstance(d, Place) and d.quantity == Decimal(3)  # 300 of the 400 left: capped
    more = Fill("f2", "bv-y", "CCC/USDT", Side.BUY, Decimal("9.5"), Decimal(100))
    d = decide(buy(), snapshot(1), CLOSED, Flight(buys_writing=[more]), LIMITS)
    assert isinstance(d, Place) and d.quantity == Decimal("0.49")  # 98 % of 50 cash left
