"""The live feed's prices and deliveries against the fake Binance (real ccxt, 127.0.0.1).

A small tree of real actors: the market (``source: ccxt``), the paper exchange (reading the
market's cursor), and Inboxes for a subscriber (the tape), the breaker, the position actor
and alerts, under a ManualClock whose wall time is the venue's. The fake serves candles
0..n from T0; the clock starts inside candle 10, so candle 10 is forming.

Covered: a forming candle moves the mark and the paper exchange's fill price, and reaches
no subscriber and no breaker sample until it closes; with no forming candle an order is
priced at the last closed one as before; a delivery the market refuses (its mailbox full
while its thread is held) is fetched again, and every candle reaches the tape once; after
a restart of the market, a late message of the old instance's worker is ignored; without
ccxt installed, the settings say how to install it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actors.common.messages import Side
from actors.market.contract import (
    Bar,
    GetMarketStats,
    MarketCursor,
    MarketSamples,
    MarketStats,
    MarkPrices,
)
from actors.market.feed import MarketActor
from actors.market.live_feed import LiveCandles
from actors.venues.contract import OrderResult, PlaceOrder
from actors.venues.paper_exchange import PaperExchange
from supervisor import (
    Backoff,
    ChildSpec,
    MailboxFull,
    ManualClock,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from tests.market.test_live_feed import market_settings, polls, tape, taped
from tests.support.bot_helpers import wait_until
from tests.support.fake_venues import MARKET_ID, MINUTE_MS, T0, FakeBinance, candles
from tests.support.position_helpers import Inbox

KLINES = "GET /api/v3/klines"
SYMBOL = "BTC/USDT"
WAIT = 20.0
TF = 60.0
SLIP = Decimal(5) / Decimal(10_000)  # the paper exchange's default slippage


@pytest.fixture
def venue() -> Iterator[FakeBinance]:
    fake = FakeBinance()
    fake.set_candles(MARKET_ID, candles(T0, 11))  # 0..10; 10 is forming at the start
    yield fake
    fake.close()
    assert fake.unserved == []


class Blocker(SupervisedActor):
    """Told ``"block"``, holds the thread it shares with the market until ``gate`` is set
    (bounded): the market's messages wait meanwhile."""

    def __init__(self, gate: threading.Event, holding: threading.Event) -> None:
        super().__init__()
        self.gate = gate
        self.holding = holding

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.holding.set()
            self.gate.wait(WAIT)
            return None
        return super().on_receive(message)


def start(settings: MarketActor.Settings, tmp_path: Path, clock: ManualClock, *,
          mailbox_limit: int | None = 100_000, gate: threading.Event | None = None,
          holding: threading.Event | None = None) -> Runtime:
    venue_db = PaperExchange.Settings(database=str(tmp_path / "paper_exchange.db"))
    children = [
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("positions", factory=Inbox),
        ChildSpec("tape", factory=Inbox),
        ChildSpec("breaker", factory=Inbox),
        ChildSpec("exchange", factory=lambda: PaperExchange(venue_db)),
        ChildSpec("market", factory=lambda: MarketActor(settings), thread="feed",
                  mailbox_limit=mailbox_limit),
    ]
    if gate is not None and holding is not None:
        children.append(ChildSpec("blocker", factory=lambda: Blocker(gate, holding),
                                  thread="feed"))
    rt = Runtime(clock=clock, monitor_interval=0)
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=tuple(children)))
    return rt


def clock_at(candle: float) -> ManualClock:
    return ManualClock(wall_start=T0 / 1000 + candle * TF)


def index(at: float) -> int:
    return round((at * 1000 - T0) / MINUTE_MS)


def marks(rt: Runtime) -> list[tuple[int, float]]:
    """The (candle, price) marks the position actor was told, in order."""
    got: list[Any] = rt.ask("positions", "get")
    return [(index(at), price) for m in got if isinstance(m, MarkPrices)
            for _, price, at in m.prices]


def sampled(rt: Runtime) -> list[int]:
    """The candles the breaker was given samples of."""
    got: list[Any] = rt.ask("breaker", "get")
    return [index(at) for m in got if isinstance(m, MarketSamples) for _, _, at, _ in m.samples]


def marked(rt: Runtime, candle: int, price: float) -> None:
    wait_until(lambda: (candle, price) in marks(rt) or None, timeout=WAIT,
               what=f"a mark of {price} on candle {candle}")


def stats(rt: Runtime) -> MarketStats:
    got = rt.ask("market", GetMarketStats())
    assert isinstance(got, MarketStats)
    return got


def roomy_stats(rt: Runtime) -> MarketStats | None:
    """The market's stats, or None while its one-message mailbox is taken (by the worker)."""
    try:
        return stats(rt)
    except MailboxFull:
        return None


def fill_price(rt: Runtime, coid: str, side: Side) -> Decimal:
    got = rt.ask("exchange", PlaceOrder(coid, SYMBOL, side, Decimal("0.1")))
    assert isinstance(got, OrderResult) and got.status == "filled", got
    return got.fills[0].price


def paper(close: str, side: Side) -> Decimal:
    """The paper exchange's price for a market order at ``close``."""
    slip = 1 + SLIP if side is Side.BUY else 1 - SLIP
    return (Decimal(close) * slip).quantize(Decimal("1e-8"))


def with_close(series: list[Any], i: int, close: str) -> list[Any]:
    series[i] = (*series[i][:4], close, series[i][5])
    return series


def test_a_forming_candle_moves_the_mark_and_the_fill_price_and_reaches_no_subscriber(
        venue: FakeBinance, tmp_path: Path) -> None:
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        assert taped(rt, 9) == [9]
        marked(rt, 10, 105.25)  # candle 10, forming, closes at 105.25 so far
        cursor = rt.peek("market")
        assert isinstance(cursor, MarketCursor)
        assert index(cursor.last[SYMBOL].at) == 9 and index(cursor.latest[SYMBOL].at) == 10
        assert fill_price(rt, "f-1", Side.BUY) == paper("105.25", Side.BUY)

        venue.set_candles(MARKET_ID, with_close(candles(T0, 11), 10, "105.60"))  # it moves
        marked(rt, 10, 105.6)
        assert fill_price(rt, "f-2", Side.SELL) == paper("105.60", Side.SELL)
        polls(venue, 3)
        assert tape(rt) == [9]  # the forming candle reached no subscriber...
        assert sampled(rt) == [9]  # ...and no breaker sample
        assert stats(rt).bars == 1 and stats(rt).rejected == {}

        venue.set_candles(MARKET_ID, with_close(candles(T0, 12), 10, "105.60"))
        clock.advance(TF)  # inside candle 11: 10 has closed
        assert taped(rt, 10) == [9, 10]
        got = [b for m in rt.ask("tape", "get") for b in m.bars]
        assert got[-1].close == 105.6
        wait_until(lambda: sampled(rt) == [9, 10] or None, timeout=WAIT,
                   what="the breaker's sample of candle 10 once it closed")
        marked(rt, 11, 105.75)  # and candle 11 is the one forming now
        assert fill_price(rt, "f-3", Side.BUY) == paper("105.75", Side.BUY)
    finally:
        rt.stop()


def test_with_no_forming_candle_an_order_is_priced_at_the_last_closed_one(
        venue: FakeBinance, tmp_path: Path) -> None:
    venue.set_candles(MARKET_ID, candles(T0, 10))  # 0..9: nothing of candle 10 yet
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        assert taped(rt, 9) == [9]
        polls(venue, 3)
        cursor = rt.peek("market")
        assert isinstance(cursor, MarketCursor)
        assert cursor.latest == cursor.last  # the latest price is the last closed one
        assert fill_price(rt, "c-1", Side.BUY) == paper("104.75", Side.BUY)
        assert marks(rt) == [(9, 104.75)]
    finally:
        rt.stop()


def test_a_refused_delivery_is_fetched_again_and_every_candle_arrives_once(
        venue: FakeBinance, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The market's mailbox holds one message; its thread is held by the Blocker while the
    worker delivers two rounds of candles: the first waits in the mailbox, the second is
    refused. Once the thread is free, the worker fetches again from what the market has
    delivered, and no candle is lost or repeated (nor counted as bad data)."""
    caplog.set_level(logging.WARNING, logger="actors.market.live_feed")
    gate, holding = threading.Event(), threading.Event()
    clock = clock_at(10.5)
    settings = market_settings(venue, tmp_path, stale_after=50)
    rt = start(settings, tmp_path, clock, mailbox_limit=1, gate=gate, holding=holding)
    try:
        assert taped(rt, 9) == [9]
        polls(venue, 2)  # the forming candle 10 told, and nothing else waits
        rt.tell("blocker", "block")
        assert holding.wait(WAIT)
        venue.set_candles(MARKET_ID, candles(T0, 14))
        clock.advance(3 * TF)  # inside 13: 10, 11, 12 closed, told, and waiting
        wait_until(lambda: len(rt.cell("market").mailbox) == 1 or None, timeout=WAIT,
                   what="the first delivery waiting in the market's mailbox")
        venue.set_candles(MARKET_ID, candles(T0, 17))
        clock.advance(3 * TF)  # inside 16: 13, 14, 15 closed, refused
        wait_until(lambda: any("refused LiveCandles" in r.getMessage()
                               for r in caplog.records) or None,
                   timeout=WAIT, what="the market refusing a delivery")
        gate.set()
        assert taped(rt, 15) == [9, 10, 11, 12, 13, 14, 15]
        polls(venue, 3)
        assert tape(rt) == [9, 10, 11, 12, 13, 14, 15]
        got = wait_until(lambda: s if (s := roomy_stats(rt)) and s.bars == 7 else None,
                         timeout=WAIT, what="the market's count")
        assert got.rejected == {}
    finally:
        gate.set()
        rt.stop()


def test_a_late_message_of_the_old_instances_worker_is_ignored_after_a_restart(
        venue: FakeBinance, tmp_path: Path) -> None:
    """After ``restart_child``, a LiveCandles of the previous incarnation arrives (what its
    worker fetched before it was stopped): candles already delivered, and candle 12 still
    forming at an old price. It is ignored: nothing is delivered twice, nothing counted as
    bad, and the old price neither marks the position nor prices an order."""
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        assert taped(rt, 9) == [9]
        venue.set_candles(MARKET_ID, candles(T0, 13))
        clock.advance(2 * TF)  # inside 12
        assert taped(rt, 11) == [9, 10, 11]
        old = rt.cell("market").incarnation
        delivered = tuple(b for m in rt.ask("tape", "get") for b in m.bars)
        rt.restart_child("market")
        assert rt.cell("market").incarnation != old
        stale = Bar(SYMBOL, (T0 + 12 * MINUTE_MS) / 1000, 106.0, 106.0, 106.0, 106.0, 1.0)
        rt.tell("market", LiveCandles(old, delivered[1:], forming=(stale,)))
        venue.set_candles(MARKET_ID, candles(T0, 15))
        clock.advance(2 * TF)  # inside 14
        assert taped(rt, 13) == [9, 10, 11, 12, 13]
        polls(venue, 3)
        assert tape(rt) == [9, 10, 11, 12, 13]
        assert stats(rt).rejected == {} and stats(rt).bars == 2  # this instance's: 12, 13
        assert (12, 106.0) not in marks(rt)
        assert fill_price(rt, "l-1", Side.BUY) == paper("107.25", Side.BUY)  # 14, forming
    finally:
        rt.stop()


@pytest.mark.unit
def test_without_ccxt_the_live_settings_say_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)  # makes `import ccxt` fail
    with pytest.raises(ValidationError) as err:
        MarketActor.Settings.model_validate({"source": "ccxt", "exchange": "binance",
                                             "symbols": [SYMBOL]})
    assert "pip install 'botvisor[live]'" in str(err.value)
