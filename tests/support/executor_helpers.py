"""Stand-ins and small helpers for the executor's tests: the real position actor and paper
exchange, made slow or lossy on purpose (a held write, a held order, a lost reply)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.common.messages import Side
from actors.execution.contract import (
    ExecutorStats,
    ExitRequest,
    GetExecutorStats,
    client_order_id,
)
from actors.execution.executor import ExecutorActor, ExecutorState
from actors.execution.orders import UNRESOLVED, OrderPhase
from actors.market.contract import Bar, Bars
from actors.portfolio.contract import RecordFill
from actors.portfolio.positions import PositionActor
from actors.risk.breaker import BreakerActor
from actors.strategies.contract import Signal
from actors.venues.contract import LookupOrder, OrderResult, PlaceOrder
from actors.venues.paper_exchange import PaperExchange
from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec
from supervisor.clock import Clock
from tests.support.bot_helpers import wait_until
from tests.support.breaker_helpers import breaker_settings
from tests.support.position_helpers import Inbox

WAIT = 10.0


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


class HeldExchange(PaperExchange):
    """The paper exchange, whose orders wait for ``release`` before they are filled."""

    def __init__(self, settings: PaperExchange.Settings, release: threading.Event,
                 holding: threading.Event) -> None:
        super().__init__(settings)
        self.release = release
        self.holding = holding

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PlaceOrder):
            self.holding.set()
            assert self.release.wait(WAIT), "the test never released the exchange"
        return super().on_receive(message)


class LosingExchange(PaperExchange):
    """The paper exchange, losing its first sale: never answered, never recorded (a reply
    lost on the way and the order with it)."""

    def __init__(self, settings: PaperExchange.Settings) -> None:
        super().__init__(settings)
        self.lost: list[str] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PlaceOrder) and message.side is Side.SELL and not self.lost:
            self.lost.append(message.client_order_id)
            self.defer_reply()
            return None
        return super().on_receive(message)


def buy_signal(symbol: str, price: float) -> Signal:
    """A test strategy's buy of ``symbol`` at ``price``, of bar time 60."""
    return Signal(f"test:{symbol}:60:buy", "test", symbol, Side.BUY, price, 60.0, "a test")


def placed(rt: Runtime, signal: Signal) -> OrderResult | None:
    """What the exchange made of ``signal``'s order (None: it has no such order)."""
    found = rt.ask("exchange", LookupOrder(client_order_id(signal.signal_id)))
    return found if isinstance(found, OrderResult) else None


def orders_in(rt: Runtime, *phases: OrderPhase) -> list[PlaceOrder]:
    """The executor's orders in one of ``phases``, as its published state lists them."""
    state = rt.peek("executor")
    assert isinstance(state, ExecutorState), state
    return [order for order, phase in state.unresolved if phase in phases]


def placing(rt: Runtime) -> list[PlaceOrder]:
    """The executor's orders sent and unanswered (published), in the order sent."""
    return orders_in(rt, OrderPhase.PLACING)


def unresolved(rt: Runtime) -> set[str]:
    """The client order ids of the executor's orders of unknown outcome or still open."""
    return {order.client_order_id for order in orders_in(rt, *UNRESOLVED)}


def bars(*prices: tuple[str, float]) -> Bars:
    """One bar (of time 60) per (symbol, price), to tell the exchange its prices."""
    return Bars(tuple(Bar(symbol, 60.0, p, p, p, p, 1e6) for symbol, p in prices))




def held(rt: Runtime) -> tuple[str, ...]:
    """The ids of the signals the executor holds, in order, as its published state lists
    them."""
    state = rt.peek("executor")
    return state.held if isinstance(state, ExecutorState) else ()


def wait_held(rt: Runtime, *signals: Signal | ExitRequest) -> None:
    """Wait until the executor holds exactly ``signals``, in that order (published)."""
    ids = tuple(s.signal_id for s in signals)
    wait_until(lambda: held(rt) == ids, timeout=WAIT, what=f"the executor holding {ids}")


def stats_now(rt: Runtime) -> ExecutorStats:
    """The executor's stats as things stand (not waiting for anything to settle; the ask
    goes through its mailbox: every message told before has been handled)."""
    stats = rt.ask("executor", GetExecutorStats(wait=False))
    assert isinstance(stats, ExecutorStats), stats
    return stats


class Mate(SupervisedActor):
    """A thread-mate of the executor: answers "ping" with "pong"; "block" holds the
    shared thread until ``unblock`` is set (a slow handler of another actor)."""

    def __init__(self, blocked: threading.Event | None = None,
                 unblock: threading.Event | None = None) -> None:
        super().__init__()
        self.blocked = blocked or threading.Event()
        self.unblock = unblock or threading.Event()

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.blocked.set()
            assert self.unblock.wait(WAIT), "the test never unblocked the thread"
            return None
        return "pong"


SHARED = "pipeline"


def shared_tree(tmp_path: Path, positions: Callable[[PositionActor.Settings], PositionActor],
                *, exchange: Callable[[PaperExchange.Settings], SupervisedActor] = PaperExchange,
                exchange_thread: str | None = SHARED, mate: Mate | None = None,
                clock: Clock | None = None,
                executor: Callable[[ExecutorActor.Settings], SupervisedActor] = ExecutorActor,
                executor_spec: dict[str, Any] | None = None, **settings: Any) -> Runtime:
    """Executor, exchange and breaker on one shared thread with a thread-mate ("mate"), as
    config.yaml places them (the exchange on a thread of its own with ``exchange_thread``
    None); the ledger ("positions") on its own thread; the executor's ``settings`` over a
    test account of 1,000."""
    ledger = PositionActor.Settings(database=str(tmp_path / "ledger.db"),
                                    starting_cash=Decimal("1000"), sources=(),
                                    reconcile_interval=3600)
    validated = ExecutorActor.Settings.model_validate({
        "risk_per_trade_pct": "100", "max_position_pct": "30", "max_exposure_pct": "100",
        "max_open_positions": 3, "min_notional": "1", **settings})
    venue = PaperExchange.Settings(database=str(tmp_path / "venue.db"))
    breaker = breaker_settings(tmp_path)
    rt = Runtime(ask_timeout=WAIT, clock=clock)
    rt.start(SupervisorSpec(children=(
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("breaker", factory=lambda: BreakerActor(breaker), thread=SHARED),
        ChildSpec("positions", factory=lambda: positions(ledger)),
        ChildSpec("exchange", factory=lambda: exchange(venue), thread=exchange_thread,
                  urgent=exchange_thread is not None),
        ChildSpec("executor", factory=lambda: executor(validated),
                  thread=SHARED, urgent=True, **(executor_spec or {})),
        ChildSpec("mate", factory=lambda: mate or Mate(), thread=SHARED),
    )))
    return rt


def hold_a_sale_behind_its_entry(rt: Runtime, written: threading.Event) -> tuple[Signal, Signal]:
    """Buy AAA/USDT at 100 and, once its fill is at the ledger (held there: ``written``),
    tell a sale of AAA; returns (buy, sale) once the executor holds the sale."""
    rt.tell("exchange", bars(("AAA/USDT", 100)))
    buy = buy_signal("AAA/USDT", 100.0)
    sell = Signal("test:AAA/USDT:120:sell", "test", "AAA/USDT", Side.SELL, 100.0, 120.0,
                  "a test")
    rt.tell("executor", buy)
    assert written.wait(WAIT), "the entry's fill never reached the ledger"
    rt.tell("executor", sell)
    wait_held(rt, sell)  # for the entry's fill
    return buy, sell


def sold_what_was_bought(rt: Runtime, buy: Signal, sell: Signal) -> None:
    """Wait for the sale's order and check it sold the entry's quantity."""
    sold = wait_until(lambda: placed(rt, sell), timeout=WAIT, what="the sale")
    bought = placed(rt, buy)
    assert bought is not None and sold.fills[0].quantity == bought.fills[0].quantity
