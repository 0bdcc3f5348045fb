"""A fill the venue made is a fact: the start-up venue sync cannot miss it, and the ledger
records it even late, judged in venue order; a book it makes impossible halts trading with a
critical alert instead of being refused.

The tree tests build the shipped tree in-process from a copy of ``config.yaml`` (as in
tests/portfolio/test_rel_state_lost_state.py: state in the test's directory, a market of
three steps,
alerts to a local HTTP server), in two runs on one directory, as two processes would be. The
first run leaves what the issue describes: a fill the venue made early in a process (venue
time of its third bar) that never reached the ledger (orders placed at the exchange directly,
as a crash between fill and record leaves them), and a later fill (venue time pushed on by a
fed bar) that did. With ``venue_sync_lookback`` at 600 s the later fill's window excludes the
early one, as the shipped day-long window excludes a fill of a market clock started again.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from actors.common.messages import Fill, Side
from actors.market.contract import Bar, FeedBars
from actors.portfolio.contract import RecordFill
from actors.portfolio.ledger import Ledger
from actors.risk.contract import BreakerState
from actors.venues.contract import OrderResult, PlaceOrder
from supervisor import Runtime
from tests.portfolio.test_rel_state_lost_state import (
    WAIT,
    AlertInbox,
    alert_server,
    bot_config,
    critical,
    status,
    synced,
)
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    bar_time,
    executor_stats,
    ledger_fills,
    market_stats,
    start_tree,
    venue_fills,
    wait_until,
)

__all__ = ["alert_server"]  # the fixture, shared with the lost-state tests

LOOKBACK = 600.0  # venue seconds: ten bars


def _place(rt: Runtime, coid: str, side: Side, quantity: str) -> Fill:
    result = rt.ask("exchange", PlaceOrder(coid, "BTC/USDT", side, Decimal(quantity)))
    assert isinstance(result, OrderResult) and result.status == "filled", result
    return result.fills[0]


def _leave_an_early_fill_unrecorded(config: Path, early_quantity: str) -> tuple[Fill, Fill]:
    """Run 1: an early venue fill lost before the ledger got it, then a later one recorded."""
    rt = start_tree(config)
    try:
        synced(rt)
        wait_until(lambda: market_stats(rt).finished, timeout=WAIT, what="three bars")
        early = _place(rt, "bv-early-lost", Side.BUY, early_quantity)  # never recorded
        price = float(early.price)
        rt.tell("market", FeedBars((Bar("BTC/USDT", bar_time(200), price, price * 1.001,
                                        price * 0.999, price, 100.0),)))
        wait_until(lambda: market_stats(rt).last_at == bar_time(200), timeout=WAIT,
                   what="the fed bar")
        later = _place(rt, "bv-later", Side.BUY, "0.001")
        rt.ask("positions", RecordFill(later))
    finally:
        rt.stop()
    assert early.at == bar_time(2) and later.at - early.at > LOOKBACK
    return early, later


def test_a_fill_lost_early_in_a_process_is_recorded_at_the_next_start(
        tmp_path: Path, alert_server: tuple[int, AlertInbox]) -> None:
    port, inbox = alert_server
    config = bot_config(tmp_path, port, venue_sync_lookback=LOOKBACK)
    early, _ = _leave_an_early_fill_unrecorded(config, "0.001")
    rt = start_tree(config)
    try:
        synced(rt)
        assert executor_stats(rt).recovered == 1
        assert status(rt).state is BreakerState.CLOSED  # a possible book: trading goes on
    finally:
        rt.stop()
    ledger = ledger_fills(tmp_path / "ledger.db")
    assert_ledger_matches_venue(ledger, venue_fills(tmp_path / "paper_exchange.db"))
    assert ledger[-1].fill_id == early.fill_id  # recorded last, with its venue time
    assert not any("CRITICAL" in t for t in inbox.titles()), inbox.titles()


def test_a_late_fill_that_makes_the_book_impossible_is_recorded_and_halts(
        tmp_path: Path, alert_server: tuple[int, AlertInbox]) -> None:
    """The lost early buy spent more cash than the account has (10,000): a fact all the
    same. With ``venue_sync: full`` the sync finds it; it must be recorded, the breaker
    HALTED and a critical alert sent (before, the ledger refused it: ledger and venue
    disagreed for good)."""
    port, inbox = alert_server
    config = bot_config(tmp_path, port, venue_sync="full")
    early, _ = _leave_an_early_fill_unrecorded(config, "0.4")  # about 12,000 USDT
    rt = start_tree(config)
    try:
        synced(rt)
        assert executor_stats(rt).recovered == 1
        s = status(rt)
        assert s.state is BreakerState.HALTED and s.by == "positions", s
        assert "impossible" in s.reason and "cash is -" in s.reason, s.reason
        alert = inbox.wait_for("the impossible book", critical("book impossible"))
        assert early.fill_id in str(alert.get("message"))
    finally:
        rt.stop()
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"),
                                venue_fills(tmp_path / "paper_exchange.db"))


def test_a_late_fill_is_judged_at_its_venue_time_place(tmp_path: Path) -> None:
    """Recorded after a buy but made before it, a sale of what was not yet held is
    impossible in venue order (though the book after both looks flat)."""
    ledger = Ledger(tmp_path / "ledger.db", starting_cash=Decimal("1000"))
    ledger.open()
    try:
        buy = Fill("buy-1", "o-1", "BTC/USDT", Side.BUY, Decimal("1"), Decimal("100"),
                   at=bar_time(10))
        sale = Fill("sell-1", "o-2", "BTC/USDT", Side.SELL, Decimal("1"), Decimal("100"),
                    at=bar_time(5))
        ledger.record([buy], now=1.0)
        assert ledger.impossible == ()
        _, events = ledger.record([sale], now=2.0)
        assert [e.fill.fill_id for e in events] == ["sell-1"]  # recorded, not refused
        assert "BTC/USDT" not in ledger.book.positions  # flat in recording order...
        assert ledger.impossible and "in venue order" in ledger.impossible[0]  # ...not so
        assert "sell-1" in ledger.impossible[0]
    finally:
        ledger.close()
    reopened = Ledger(tmp_path / "ledger.db", starting_cash=Decimal("1000"))
    reopened.open()
    try:
        assert reopened.fill_count() == 2  # on disk, once each
    finally:
        reopened.close()
