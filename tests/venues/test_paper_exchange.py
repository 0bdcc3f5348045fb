"""The paper exchange plays the venue: one answer per client order id, its own durable record,
written off the actor's thread.

A real actor with its real SQLite file, restarted between sends.
"""

from __future__ import annotations

import decimal
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from pykka.messages import ProxyGetAttr

from actors.common.messages import Side
from actors.market.contract import Bar, Bars, GetMarketStats, MarketCursor
from actors.market.feed import MarketActor
from actors.venues.contract import GetVenueFills, LookupOrder, OrderResult, PlaceOrder
from actors.venues.paper_exchange import PaperExchange
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.bot_helpers import wait_until
from tests.support.standins import Sink
from tests.support.venue_contract import assert_answers_as_a_venue

WAIT = 10.0


def _exchange(db: Path) -> Runtime:
    settings = PaperExchange.Settings(database=str(db))
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("exchange", factory=lambda: PaperExchange(settings)),)))
    return rt


def test_the_same_client_order_id_fills_once_even_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "venue.db"
    order = PlaceOrder("sig-1", "BTC/USDT", Side.BUY, Decimal("0.5"))
    rt = _exchange(db)
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 60.0, 100, 101, 99, 100, 5),)))
        first = rt.ask("exchange", order)
        assert isinstance(first, OrderResult) and first.status == "filled"
        assert rt.ask("exchange", order) == first  # resent: the first answer, no new fill
        rejected = rt.ask("exchange", PlaceOrder("sig-2", "ETH/USDT", Side.BUY, Decimal(1)))
        assert rejected.status == "rejected" and rejected.reason == "no market price yet"
    finally:
        rt.stop()
    rt = _exchange(db)  # a new instance on the same file (a restart of the process)
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 120.0, 200, 201, 199, 200, 5),)))
        again = rt.ask("exchange", order)
        assert again == first  # not refilled at the new price
        assert rt.ask("exchange", LookupOrder("sig-1")) == first
        assert rt.ask("exchange", PlaceOrder("sig-2", "ETH/USDT", Side.BUY, Decimal(1))) \
            == rejected
        fills = rt.ask("exchange", GetVenueFills())
        assert [f.fill_id for f in fills] == ["sig-1-1"]
        assert fills[0].price == Decimal("100.05")  # 5 bps of slippage on the first price
    finally:
        rt.stop()


def test_an_order_is_answered_once_its_record_is_committed_and_the_actor_goes_on(
    tmp_path: Path,
) -> None:
    """The test holds the database's write lock (a slow disk, made on purpose): the order's
    record cannot be committed, so the order is not answered yet, nor a lookup of it; the
    exchange meanwhile goes on with its next messages (on the pipeline's thread it would
    otherwise hold up every tick). Once the lock goes, the record lands and then the
    answers come."""
    db = tmp_path / "venue.db"
    rt = _exchange(db)
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 60.0, 100, 101, 99, 100, 5),)))
        blocker.execute("BEGIN IMMEDIATE")  # the writer's INSERT waits for this lock
        reply = rt.ask_future("exchange", PlaceOrder("sig-1", "BTC/USDT", Side.BUY,
                                                     Decimal("0.5")))
        lookup = rt.ask_future("exchange", LookupOrder("sig-1"))
        rt.tell("exchange", Bars((Bar("BTC/USDT", 120.0, 200, 201, 199, 200, 5),)))
        prices = rt.ask("exchange", ProxyGetAttr(attr_path=("prices",)))  # handled meanwhile
        assert prices["BTC/USDT"].close == 200
        assert not reply.done(), "answered before its record was committed"
        assert not lookup.done(), "a lookup answered before the order it follows was written"
        blocker.execute("ROLLBACK")
        result = reply.get(timeout=WAIT)
        assert result.status == "filled" and result.fills[0].price == Decimal("100.05")
        assert lookup.get(timeout=WAIT) == result
        row = blocker.execute("SELECT price FROM fills WHERE client_order_id = 'sig-1'")
        assert [Decimal(p) for p, in row.fetchall()] == [Decimal("100.05")]
    finally:
        blocker.close()
        rt.stop()


def test_lookups_see_every_order_handed_over(tmp_path: Path) -> None:
    """Orders told (no one waits for the answers) and a lookup right behind them: the
    lookup waits for their records, so it never answers "unknown" for an accepted order."""
    rt = _exchange(tmp_path / "venue.db")
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 60.0, 100, 101, 99, 100, 5),)))
        for k in range(50):
            rt.tell("exchange", PlaceOrder(f"sig-{k}", "BTC/USDT", Side.BUY, Decimal("0.1")))
        found = rt.ask("exchange", LookupOrder("sig-49"))
        assert isinstance(found, OrderResult) and found.status == "filled"
        assert len(rt.ask("exchange", GetVenueFills())) == 50
    finally:
        rt.stop()


def test_an_order_it_cannot_price_is_answered_with_the_error_and_the_next_one_fills(
    tmp_path: Path,
) -> None:
    """A quantity too large to round to the venue's 8 decimals (28 significant digits):
    the ask gets the error at once, not silence; the exchange goes on."""
    rt = _exchange(tmp_path / "venue.db")
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 60.0, 100, 101, 99, 100, 5),)))
        with pytest.raises(decimal.InvalidOperation):
            rt.ask("exchange", PlaceOrder("sig-huge", "BTC/USDT", Side.BUY, Decimal("1e30")))
        rt.tell("exchange", Bars((Bar("BTC/USDT", 120.0, 100, 101, 99, 100, 5),)))
        result = rt.ask("exchange", PlaceOrder("sig-1", "BTC/USDT", Side.BUY, Decimal(1)))
        assert result.status == "filled"
        assert rt.ask("exchange", LookupOrder("sig-huge")) is None  # nothing recorded
    finally:
        rt.stop()


def test_orders_are_priced_at_the_markets_published_bars(tmp_path: Path) -> None:
    """No bars are told to the exchange: it prices an order at the market actor's latest
    published bar (plus slippage); a bar told to it directly counts when it is newer."""
    market = MarketActor.Settings(symbols={"BTC/USDT": 100.0}, max_steps=1,
                                  crash_at_bar=None, subscribers=(), positions="sink",
                                  breaker="sink", alerts="sink", clock_file=None)
    exchange = PaperExchange.Settings(database=str(tmp_path / "venue.db"))
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("sink", factory=Sink),
        ChildSpec("market", factory=lambda: MarketActor(market)),
        ChildSpec("exchange", factory=lambda: PaperExchange(exchange)),
    )))
    try:
        wait_until(lambda: rt.ask("market", GetMarketStats()).finished, timeout=WAIT,
                   what="the market's step")
        cursor = rt.peek("market")
        assert isinstance(cursor, MarketCursor)
        bar = cursor.last["BTC/USDT"]
        first = rt.ask("exchange", PlaceOrder("sig-1", "BTC/USDT", Side.BUY, Decimal(1)))
        slip = Decimal(repr(bar.close)) * Decimal("1.0005")
        assert first.fills[0].price == slip.quantize(Decimal("0.00000001"))
        assert first.fills[0].at == bar.at
        rt.tell("exchange", Bars((Bar("BTC/USDT", bar.at + 60, 150, 151, 149, 150, 5),)))
        second = rt.ask("exchange", PlaceOrder("sig-2", "BTC/USDT", Side.BUY, Decimal(1)))
        assert second.fills[0].price == Decimal("150.075")
    finally:
        rt.stop()


def test_the_paper_exchange_answers_as_the_venue_contract_says(tmp_path: Path) -> None:
    rt = _exchange(tmp_path / "venue.db")
    try:
        rt.tell("exchange", Bars((Bar("BTC/USDT", 60.0, 100, 101, 99, 100, 5),)))
        assert_answers_as_a_venue(rt, "exchange",
                                  PlaceOrder("sig-1", "BTC/USDT", Side.BUY, Decimal("0.5")))
    finally:
        rt.stop()
