"""An entry does not wait for another symbol's order to be answered or its fill to be
written to the ledger, and still counts them: the executor sizes against cash, exposure and
open positions less the buys the exchange has not answered and the ledger has not
acknowledged yet.

Real actors: the executor, the breaker, the paper exchange and the position actor; the
test holds back the ledger's writes (a slow disk, made on purpose: ``RecordFill`` waits for
an event before the real handler runs) or the exchange's orders (a slow venue: the same,
for ``PlaceOrder``).
"""

from __future__ import annotations

import threading
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from pykka.messages import ProxyGetAttr

from actors.common.messages import Side
from actors.execution.contract import (
    ExecutorStats,
    ExitRequest,
    GetExecutorStats,
    SkipReason,
    client_order_id,
)
from actors.execution.executor import SyncVenue
from actors.portfolio.contract import GetPortfolio, PortfolioSnapshot
from actors.strategies.contract import Signal
from actors.venues.contract import GetVenueFills
from supervisor import Runtime
from supervisor.clock import ManualClock
from tests.support.bot_helpers import wait_until
from tests.support.executor_helpers import (
    WAIT,
    LosingExchange,
    bars,
    buy_signal,
    placed,
    placing,
    stats_now,
    wait_held,
)
from tests.support.executor_tree import executor_tree, three_buys_the_first_held

EIGHT = Decimal("0.00000001")


def _skipped(rt: Runtime) -> dict[SkipReason, int]:
    """The executor's skip counts, read without making it settle anything (the ask goes
    through its mailbox: every message told before has been handled)."""
    return stats_now(rt).skipped


def test_an_entry_counts_a_fill_the_ledger_is_still_writing_and_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, release, holding)
    try:
        a, b, c = three_buys_the_first_held(rt, holding)
        # AAA's fill is being written (held until release). BBB is decided and sent
        # meanwhile: the wait below ends before the ledger is released.
        rt.tell("executor", b)
        first = wait_until(lambda: placed(rt, a), timeout=WAIT, what="AAA's order")
        second = wait_until(lambda: placed(rt, b), timeout=WAIT, what="BBB's order")
        # AAA: 60 % of equity 1000 at 100 -> 6. BBB: what is left once AAA's cost counts
        # (1000 - 600.3 notional - 0.6 fee, 98 % of it), not the 600 a stale cash of 1000
        # would allow.
        fill_a = first.fills[0]
        assert fill_a.quantity == Decimal("6")
        left = (Decimal(1000) - fill_a.quantity * fill_a.price - fill_a.fee) * Decimal("0.98")
        assert second.fills[0].quantity == (left / 50).quantize(EIGHT, ROUND_DOWN)
        # max_open_positions=2: with AAA and BBB both in flight (neither in the ledger
        # yet), CCC is refused.
        rt.tell("executor", c)
        assert _skipped(rt).get(SkipReason.MAX_OPEN_POSITIONS) == 1
        assert placed(rt, c) is None
        release.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.fills_recorded == 2 and stats.unrecorded == 0
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert set(snap.positions) == {"AAA/USDT", "BBB/USDT"}
        fill_b = second.fills[0]
        assert snap.cash == (Decimal(1000) - fill_a.quantity * fill_a.price - fill_a.fee
                             - fill_b.quantity * fill_b.price - fill_b.fee)
        assert len(rt.ask("exchange", GetVenueFills())) == 2
    finally:
        release.set()
        rt.stop()


def test_an_entry_counts_a_fill_in_flight_against_the_exposure_limit(tmp_path: Path) -> None:
    """max_exposure_pct=70: AAA takes 600 of the 700 allowed; BBB, decided while AAA's fill
    is unwritten, gets what is left of the limit (less AAA's fee off equity), and once
    both are in the ledger the account is within the limit."""
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, release, holding, max_exposure_pct="70")
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50)))
        a, b = buy_signal("AAA/USDT", 100.0), buy_signal("BBB/USDT", 50.0)
        rt.tell("executor", a)
        assert holding.wait(WAIT)
        rt.tell("executor", b)
        first = wait_until(lambda: placed(rt, a), timeout=WAIT, what="AAA's order")
        second = wait_until(lambda: placed(rt, b), timeout=WAIT, what="BBB's order")
        fill_a = first.fills[0]
        equity = Decimal(1000) - fill_a.fee
        room = equity * Decimal("0.70") - fill_a.quantity * fill_a.price
        assert second.fills[0].quantity == (room / 50).quantize(EIGHT, ROUND_DOWN)
        release.set()
        rt.ask("executor", GetExecutorStats())  # every fill acknowledged
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert set(snap.positions) == {"AAA/USDT", "BBB/USDT"}
        # within the limit, but for BBB's own slippage and fee (an entry is sized at its
        # signal's price, before the venue fills it)
        fill_b = second.fills[0]
        own = (fill_b.price - 50) * fill_b.quantity
        assert snap.gross_exposure <= (snap.equity + fill_b.fee) * Decimal("0.70") + own
    finally:
        release.set()
        rt.stop()


def _tell_while_aaa_is_unwritten(rt: Runtime, holding: threading.Event,
                                 signal: Signal) -> Signal:
    """Buy AAA/USDT at 100 (6 of it, see executor_tree), and tell ``signal`` to the executor
    while that fill is held at the ledger; returns the buy."""
    rt.tell("exchange", bars(("AAA/USDT", 100)))
    buy = buy_signal("AAA/USDT", 100.0)
    rt.tell("executor", buy)
    assert holding.wait(WAIT), "the fill of AAA never reached the ledger"
    wait_until(lambda: placed(rt, buy), timeout=WAIT, what="the entry")
    rt.tell("executor", signal)
    return buy


def test_a_second_entry_of_the_same_symbol_waits_for_the_first_fill(tmp_path: Path) -> None:
    """Another strategy's buy of AAA while AAA's first fill is unwritten: the snapshot does
    not show AAA yet, so the executor waits for that fill, then sees AAA held and skips."""
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, release, holding)
    try:
        again = Signal("other:AAA/USDT:60:buy", "other", "AAA/USDT", Side.BUY, 100.0, 60.0,
                       "a test")
        _tell_while_aaa_is_unwritten(rt, holding, again)
        wait_held(rt, again)  # for the first fill
        release.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())  # once all is in
        assert stats.skipped.get(SkipReason.ALREADY_HOLDING) == 1, stats.skipped
        assert all(type(why) is SkipReason for why in stats.skipped), stats.skipped
        assert placed(rt, again) is None
    finally:
        release.set()
        rt.stop()


def test_a_sale_waits_for_its_entry_fill(tmp_path: Path) -> None:
    """A sale right after its entry: the executor reads the entry's acknowledgement (waits
    for the write) before it decides, so the sale sells what was bought."""
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, release, holding)
    try:
        sell = Signal("test:AAA/USDT:60:sell", "test", "AAA/USDT", Side.SELL, 100.0, 60.0,
                      "a test")
        _tell_while_aaa_is_unwritten(rt, holding, sell)
        wait_held(rt, sell)  # for the entry's fill
        release.set()
        sold = wait_until(lambda: placed(rt, sell), timeout=WAIT, what="the sale")
        assert sold.fills[0].quantity == Decimal("6")
    finally:
        release.set()
        rt.stop()


def test_a_venue_sync_does_not_count_this_executors_own_fill_in_flight(tmp_path: Path) -> None:
    """A sync asked for right after an order (its reply not read yet, its fill not sent):
    the fill is this executor's own, not one the ledger lacks; nothing is recovered."""
    release, holding = threading.Event(), threading.Event()
    release.set()  # the ledger writes at once here
    rt = executor_tree(tmp_path, release, holding)
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        assert rt.ask("executor", SyncVenue()) == 0
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.recovered == 0 and stats.fills_recorded == 1, stats
    finally:
        rt.stop()


def test_an_entry_counts_an_order_the_exchange_has_not_answered_and_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    """AAA's order is held at the exchange. BBB is decided meanwhile (the executor answers
    an ask while AAA is still unanswered), sized with AAA counted at its signal's price
    plus ``in_flight_margin_pct`` (1 %); CCC is refused by max_open_positions=2."""
    ledger = threading.Event()
    ledger.set()  # the ledger writes at once here
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, ledger, threading.Event(), venue=(release, holding))
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50), ("CCC/USDT", 20)))
        a, b, c = (buy_signal("AAA/USDT", 100.0), buy_signal("BBB/USDT", 50.0),
                   buy_signal("CCC/USDT", 20.0))
        rt.tell("executor", a)
        assert holding.wait(WAIT), "AAA's order never reached the exchange"
        rt.tell("executor", b)
        rt.tell("executor", c)
        # handled while AAA is unanswered: an executor waiting for the reply would not
        # answer this ask before the exchange is released
        assert _skipped(rt).get(SkipReason.MAX_OPEN_POSITIONS) == 1
        out = placing(rt)
        assert [o.symbol for o in out] == ["AAA/USDT", "BBB/USDT"]
        qty_a, qty_b = out[0].quantity, out[1].quantity
        assert qty_a == Decimal("6")  # 60 % of equity 1000 at 100
        # AAA counts 606 (600 and 1 %): cash 394, equity 994, exposure 606 of 994 allowed;
        # cash is the tightest (98 % of it)
        reserved = qty_a * 100 * Decimal("1.01")
        cash, equity = Decimal(1000) - reserved, Decimal(1000) - (reserved - qty_a * 100)
        cap = min(equity * Decimal("0.6"), equity - reserved, cash * Decimal("0.98"))
        assert qty_b == (cap / 50).quantize(EIGHT, ROUND_DOWN)
        release.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.filled == 2 and stats.fills_recorded == 2, stats
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert set(snap.positions) == {"AAA/USDT", "BBB/USDT"}
        assert snap.cash > 0
        assert placed(rt, c) is None
    finally:
        release.set()
        rt.stop()


def test_a_sale_with_a_sale_of_its_symbol_in_flight_is_skipped_without_waiting(
    tmp_path: Path,
) -> None:
    """AAA is held; a strategy's sale of it is held at the exchange. An exit of AAA that
    comes meanwhile is skipped at once (the executor answers an ask while the sale is
    unanswered): the first sale sells everything, and waiting for it would hold up every
    order behind. One sale reaches the exchange."""
    ledger = threading.Event()
    ledger.set()
    release, holding = threading.Event(), threading.Event()
    rt = executor_tree(tmp_path, ledger, threading.Event(), venue=(release, holding))
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100)))
        buy = buy_signal("AAA/USDT", 100.0)
        release.set()  # the entry fills at once
        rt.tell("executor", buy)
        assert rt.ask("executor", GetExecutorStats()).fills_recorded == 1
        release.clear()
        holding.clear()
        sell = Signal("test:AAA/USDT:120:sell", "test", "AAA/USDT", Side.SELL, 100.0, 120.0,
                      "a test")
        rt.tell("executor", sell)
        assert holding.wait(WAIT), "the sale never reached the exchange"
        rt.tell("executor", ExitRequest("exit:stop_loss:AAA/USDT:120", "AAA/USDT",
                                        "stop_loss", 100.0, 120.0))
        assert _skipped(rt).get(SkipReason.SALE_IN_FLIGHT) == 1
        release.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert [side for _, side, _, _ in stats.sent] == ["buy", "sell"]
        assert stats.exits == ()
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert snap.positions == {}
    finally:
        release.set()
        rt.stop()


def test_a_sale_whose_reply_is_lost_does_not_block_the_symbols_next_sales(
    tmp_path: Path,
) -> None:
    """The exchange loses AAA's first sale (no reply, no record). An exit right behind it
    is skipped (a sale is in flight). Once the sale is ``order_timeout`` old (the clock is
    the test's), the executor looks it up (the venue never had it); the next exit is held
    until that answer and then sells, and the one after it finds the sale out (or done):
    a lost reply holds the symbol's sales up for a while, not for good."""
    ledger = threading.Event()
    ledger.set()
    clock = ManualClock()
    rt = executor_tree(tmp_path, ledger, threading.Event(), exchange_class=LosingExchange,
                       order_timeout=0.5, clock=clock)

    def exit_at(at: float) -> ExitRequest:
        return ExitRequest(f"exit:stop_loss:AAA/USDT:{at:g}", "AAA/USDT", "stop_loss",
                           100.0, at)

    try:
        rt.tell("exchange", bars(("AAA/USDT", 100)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        assert rt.ask("executor", GetExecutorStats()).fills_recorded == 1
        rt.tell("executor", Signal("test:AAA/USDT:120:sell", "test", "AAA/USDT", Side.SELL,
                                   100.0, 120.0, "a test"))
        rt.tell("executor", exit_at(180))
        assert _skipped(rt).get(SkipReason.SALE_IN_FLIGHT) == 1
        assert len(rt.ask("exchange", ProxyGetAttr(attr_path=("lost",)))) == 1
        clock.advance(1.0)  # the sale is now order_timeout old: looked up
        rt.tell("executor", exit_at(240))  # sells once the lookup said never placed
        rt.tell("executor", exit_at(300))  # a sale is out (or done) by then: skipped
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.exits == ((client_order_id(exit_at(240).signal_id), "stop_loss"),), stats
        assert [side for _, side, _, _ in stats.sent] == ["buy", "sell", "sell"]
        skipped = stats.skipped
        assert skipped[SkipReason.SALE_IN_FLIGHT] \
            + skipped.get(SkipReason.EXIT_WITHOUT_POSITION, 0) == 2, skipped
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert snap.positions == {}
    finally:
        rt.stop()
