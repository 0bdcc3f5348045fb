"""The live market source over a websocket against the fake Binance (real ccxt.pro, 127.0.0.1).

The tree of tests/market/test_live_feed.py (the market, a tape, the real breaker with
``stale_data`` on, alerts and positions Inboxes, a ManualClock whose wall time is the
venue's), with ``transport: ws``: candles come from :class:`FakeBinanceStream` and the
missed ones from :class:`FakeBinance`'s klines. The REST fake serves candles 0..n from T0;
the clock starts inside candle 10, so candle 10 is forming.

Covered: closed candles reach the tape in order, each once, and a forming update never,
while the worker reports it as ``forming``; an exchange keeping its candles in caches of
its own is watched symbol by symbol, losing none; a dropped websocket reconnects and
fetches the candles closed while it was down, none missed or doubled; a stall makes the
feed stale and trips the breaker (``stale_data``), and candles flowing again clear it; a
crash of the market repeats and loses none; ``stop()`` is prompt, leaving no thread; the
transport settings (``auto``, ``rest``, ``ws`` refused where ccxt.pro watches no candles).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actors.market.contract import Bars, MarketCursor
from actors.market.feed import MarketActor
from actors.market.live_feed import LiveCandles, LiveTrouble, RestPoller
from actors.market.ws_feed import WsStreamer, make_worker
from actors.risk.contract import BreakerState
from supervisor import ManualClock, Runtime
from tests.market import test_live_feed
from tests.market.test_live_feed import (
    TF,
    WAIT,
    alerts,
    clears_when_fresh,
    clock_at,
    start,
    stats,
    status,
    tape,
    taped,
    trips_on_stale_data,
)
from tests.support.bot_helpers import crash, wait_until
from tests.support.fake_venues import (
    MARKET_ID,
    MINUTE_MS,
    T0,
    Candle,
    FakeBinance,
    FakeBinanceStream,
    candles,
)
from tests.support.own_cache_binance import OwnCacheBinance

SYMBOL = "BTC/USDT"
KLINES = "GET /api/v3/klines"


venue = test_live_feed.venue  # the fixture: the fake's REST klines, candles 0..10


def ccxt_options(venue: FakeBinance, stream: FakeBinanceStream | str) -> dict[str, Any]:
    api = venue.url + "/api/v3"
    ws = stream if isinstance(stream, str) else stream.url
    return {"urls": {"api": {"public": api, "private": api, "ws": {"spot": ws}}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                        "fetchMargins": False, "defaultType": "spot"},
            "timeout": 3000}


def ws_settings(venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path,
                **extra: Any) -> MarketActor.Settings:
    return MarketActor.Settings.model_validate({
        "source": "ccxt", "exchange": "binance", "symbols": [SYMBOL], "timeframe": "1m",
        "transport": "ws", "warmup": 1, "poll_interval": 0.05, "subscribers": ["tape"],
        "marks_interval": 0, "clock_file": str(tmp_path / "market_feed.json"),
        "ccxt_options": ccxt_options(venue, stream), **extra})


@contextlib.contextmanager
def ws_tree(venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path
            ) -> Iterator[tuple[Runtime, ManualClock]]:
    """The tree with a ws feed, its clock inside candle 10: candle 9 (fetched on start) is
    on the tape and the stream is subscribed; stopped at the end."""
    clock = clock_at(10.5)
    rt = start(ws_settings(venue, stream, tmp_path), tmp_path, clock)
    try:
        assert taped(rt, 9) == [9]  # fetched on start: the last closed candle, not 10
        stream.wait_subscribed(MARKET_ID)
        yield rt, clock
    finally:
        rt.stop()


def closes(venue: FakeBinance, stream: FakeBinanceStream, clock: ManualClock, n: int
           ) -> None:
    """Candles 0..n-1 are closed at the venue (REST), the clock moves inside candle n, and
    the stream sends candle n-1 closed and candle n forming."""
    series = candles(T0, n + 1)
    venue.set_candles(MARKET_ID, series)
    clock.advance(T0 / 1000 + (n + 0.5) * TF - clock.wall())
    stream.push(MARKET_ID, series[n - 1], closed=True)
    stream.push(MARKET_ID, series[n], closed=False)


def took_forming(rt: Runtime, candle: Candle) -> None:
    """Wait until the market has taken ``candle`` as the one forming (its cursor's
    ``latest``). The stream is in order, so every update streamed before it has been
    handled by then, and what the market told the tape meanwhile is in the tape's mailbox
    ahead of the next ask."""
    def taken() -> bool:
        cursor = rt.peek("market")
        bar = cursor.latest.get(SYMBOL) if isinstance(cursor, MarketCursor) else None
        return bar is not None and (bar.at * 1000, bar.close) == (candle[0],
                                                                  float(candle[4]))
    wait_until(taken, timeout=WAIT, what=f"candle {index(candle[0] / 1000)} taken as forming")


def streamed_last(rt: Runtime, stream: FakeBinanceStream, n: int) -> None:
    """Stream one more update of candle ``n`` (forming), with a close only the stream has
    (not the REST klines), and wait until the market took it (:func:`took_forming`): all
    that was streamed before it has been handled."""
    t, o, h, lo, _, v = candles(T0, n + 1)[n]
    last: Candle = (t, o, h, lo, f"{float(o) + 0.125:.3f}", v)
    stream.push(MARKET_ID, last, closed=False)
    took_forming(rt, last)


def bars_seen(rt: Runtime) -> list[Any]:
    return [b for m in rt.ask("tape", "get") if isinstance(m, Bars) for b in m.bars]


def index(at: float) -> int:
    return round((at * 1000 - T0) / MINUTE_MS)


def test_closed_candles_reach_the_tape_in_order_once_and_a_forming_one_never(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    with ws_tree(venue, stream, tmp_path) as (rt, clock):
        series = candles(T0, 14)
        forming = (*series[10][:4], "104.75", series[10][5])  # between its low and high
        assert stream.push(MARKET_ID, forming, closed=False) == 1
        took_forming(rt, forming)
        assert tape(rt) == [9]  # a forming update never reaches the tape
        final: Candle = (*series[10][:4], "105.5", series[10][5])
        series[10] = final
        venue.set_candles(MARKET_ID, series[:11])
        clock.advance(TF)  # inside candle 11: 10 has closed
        stream.push(MARKET_ID, final, closed=True)
        assert taped(rt, 10) == [9, 10]
        assert bars_seen(rt)[1].close == 105.5  # the final version, not the forming one
        for n in (12, 13):
            closes(venue, stream, clock, n)
        assert taped(rt, 12) == [9, 10, 11, 12]
        streamed_last(rt, stream, 13)
        assert tape(rt) == [9, 10, 11, 12]  # 13 is forming


def test_a_burst_of_updates_is_taken_whole_from_the_stream(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    with ws_tree(venue, stream, tmp_path) as (rt, clock):
        fetched = venue.count(KLINES)
        series = candles(T0, 61)
        clock.advance(50 * TF)  # inside candle 60; the REST klines still end at 10
        for n in range(10, 60):  # faster than the watcher wakes: most come in together
            stream.push(MARKET_ID, series[n], closed=True)
        stream.push(MARKET_ID, series[60], closed=False)
        assert taped(rt, 59) == list(range(9, 60))
        assert venue.count(KLINES) == fetched  # none was fetched: the stream had them all


def test_the_worker_reports_the_forming_candle(venue: FakeBinance,
                                               stream: FakeBinanceStream) -> None:
    clock = clock_at(10.5)
    told: list[object] = []
    worker = WsStreamer(
        incarnation=1, exchange="binance", symbols=[SYMBOL], timeframe="1m",
        ccxt_options=ccxt_options(venue, stream), poll_interval=0.05, stale_after=3,
        clock=clock, tell=told.append, resume=dict)
    worker.start()
    try:
        stream.wait_subscribed(MARKET_ID)

        def closed() -> list[int]:
            return [index(b.at) for m in list(told) if isinstance(m, LiveCandles)
                    for b in m.bars]
        wait_until(lambda: closed() or None, timeout=WAIT, what="candle 9 fetched")
        c10 = (*candles(T0, 11)[10][:4], "104.0", "3.5")
        stream.push(MARKET_ID, c10, closed=False)

        def forming() -> list[Any] | None:
            got = [b for m in list(told) if isinstance(m, LiveCandles) for b in m.forming]
            return got if any(b.close == 104.0 for b in got) else None
        got = wait_until(forming, timeout=WAIT, what="the forming candle reported")
        assert {index(b.at) for b in got} == {10}
        assert closed() == [9]  # the forming candle is never among the closed ones
    finally:
        worker.stop()
    assert not worker.alive


def test_an_exchange_keeping_its_candles_elsewhere_is_watched_symbol_by_symbol(
        stream: FakeBinanceStream, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """An exchange whose handler stores candles in caches of its own (the worker's never
    sees an update): the worker says so and watches each symbol, and every closed candle of
    each still comes by the stream, in order, once (none fetched: REST ends at 10)."""
    import ccxt.pro

    monkeypatch.setattr(ccxt.pro, "binance", OwnCacheBinance)  # what the worker builds
    caplog.set_level(logging.WARNING, logger="actors.market.ws_venue")
    other, other_id = "ETH/USDT", "ETHUSDT"
    venue = FakeBinance(extra_markets=(("ETH", "USDT"),))
    for market_id in (MARKET_ID, other_id):
        venue.set_candles(market_id, candles(T0, 11))  # 0..10; 10 is forming at the start
    told: list[object] = []
    clock = clock_at(10.5)
    worker = WsStreamer(
        incarnation=1, exchange="binance", symbols=[SYMBOL, other], timeframe="1m",
        ccxt_options=ccxt_options(venue, stream), poll_interval=0.5, stale_after=3,
        clock=clock, tell=told.append, resume=dict)
    worker.start()
    try:
        for market_id in (MARKET_ID, other_id):
            stream.wait_subscribed(market_id)

        def closed() -> dict[str, list[int]]:
            got: dict[str, list[int]] = {SYMBOL: [], other: []}
            for m in list(told):
                if isinstance(m, LiveCandles):
                    for b in m.bars:
                        got[b.symbol].append(index(b.at))
            return got
        wait_until(lambda: closed() == {SYMBOL: [9], other: [9]} or None, timeout=WAIT,
                   what="candle 9 of each fetched")
        fetched = venue.count(KLINES)
        series = candles(T0, 15)
        for n in range(10, 14):
            clock.advance(TF)  # inside candle n + 1: n has closed
            for market_id in (MARKET_ID, other_id):
                stream.push(market_id, series[n], closed=True)
                stream.push(market_id, series[n + 1], closed=False)
        wait_until(lambda: all(c and c[-1] >= 13 for c in closed().values()) or None,
                   timeout=WAIT, what="candle 13 of each told")
        assert closed() == {SYMBOL: list(range(9, 14)), other: list(range(9, 14))}
        assert venue.count(KLINES) == fetched  # none was fetched: the stream had them all
        warned = [r for r in caplog.records if r.levelno == logging.WARNING
                  and "keeps its candles elsewhere; watching each symbol" in r.getMessage()]
        assert warned, "the fallback was not logged"
    finally:
        worker.stop()
        venue.close()
    assert not worker.alive
    assert venue.unserved == []


@pytest.mark.parametrize("acks", [True, False])
def test_a_slow_owner_gets_every_candle_in_fewer_messages(
        venue: FakeBinance, stream: FakeBinanceStream, acks: bool) -> None:
    """The worker holds candles while the owner has not delivered the last it was told
    (``resume()``), up to HOLD_MAX: an owner that takes 0.2 s per message gets a few large
    ones; one that never reports a delivery still gets every candle, in order, once."""
    told: list[LiveCandles] = []
    delivered: dict[str, float] = {}
    timers: list[threading.Timer] = []

    def tell(message: object) -> None:
        if isinstance(message, LiveCandles) and message.bars:
            told.append(message)
            if acks:
                last = message.bars[-1]
                timers.append(threading.Timer(0.2, delivered.__setitem__,
                                              (last.symbol, last.at)))
                timers[-1].start()

    clock = clock_at(10.5)
    worker = WsStreamer(
        incarnation=1, exchange="binance", symbols=[SYMBOL], timeframe="1m",
        ccxt_options=ccxt_options(venue, stream), poll_interval=0.05, stale_after=3,
        clock=clock, tell=tell, resume=lambda: dict(delivered))
    worker.start()
    try:
        stream.wait_subscribed(MARKET_ID)
        wait_until(lambda: told or None, timeout=WAIT, what="candle 9 fetched")
        series = candles(T0, 41)
        clock.advance(30 * TF)  # inside candle 40
        for n in range(10, 40):
            stream.push(MARKET_ID, series[n], closed=True)
            # paces the stream (no time logic waits on it): one candle a frame, not a burst
            # the worker would take whole at once, so the owner's hold is what coalesces
            time.sleep(0.003)
        wait_until(lambda: told[-1].bars[-1].at >= series[39][0] / 1000 or None,
                   timeout=WAIT, what="candle 39 told")
        assert [index(b.at) for m in told for b in m.bars] == list(range(9, 40))
        assert len(told) < 10  # 31 candles, streamed one by one
    finally:
        worker.stop()
        for timer in timers:
            timer.join()


def test_without_a_websocket_the_candles_still_come_by_rest(venue: FakeBinance) -> None:
    """A venue whose websocket cannot be reached: each session's fetches end before it does,
    so the closed candles still arrive (at the backoff's pace), and the trouble is told."""
    told: list[object] = []
    clock = clock_at(10.5)
    worker = WsStreamer(
        incarnation=1, exchange="binance", symbols=[SYMBOL], timeframe="1m",
        ccxt_options=ccxt_options(venue, "ws://127.0.0.1:9/stream"),  # refused
        poll_interval=0.05, stale_after=3, clock=clock, tell=told.append, resume=dict)
    worker.start()
    try:
        def closed() -> list[int]:
            return [index(b.at) for m in list(told) if isinstance(m, LiveCandles)
                    for b in m.bars]
        wait_until(lambda: closed() == [9] or None, timeout=WAIT, what="candle 9 fetched")
        venue.set_candles(MARKET_ID, candles(T0, 13))
        clock.advance(2 * TF)
        wait_until(lambda: closed() == [9, 10, 11] or None, timeout=WAIT,
                   what="candles 10 and 11 fetched by a later session")
        wait_until(lambda: any(isinstance(m, LiveTrouble) and m.failing for m in told),
                   timeout=WAIT, what="the trouble told")
        assert not any(isinstance(m, LiveTrouble) and not m.failing for m in told)
    finally:
        worker.stop()


def test_a_dropped_websocket_reconnects_and_fetches_the_gap(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    with ws_tree(venue, stream, tmp_path) as (rt, clock):
        series = candles(T0, 11)
        venue.set_candles(MARKET_ID, series)
        clock.advance(TF)
        stream.push(MARKET_ID, series[10], closed=True)  # and no update of 11 yet
        assert taped(rt, 10) == [9, 10]
        assert stream.drop() == 1
        # while it is down, 11, 12 and 13 close at the venue; nothing is streamed
        venue.set_candles(MARKET_ID, candles(T0, 15))
        clock.advance(3 * TF)  # inside candle 14
        stream.wait_subscribed(MARKET_ID, times=2)
        assert taped(rt, 13) == [9, 10, 11, 12, 13]  # fetched, before any stream update
        closes(venue, stream, clock, 15)
        closes(venue, stream, clock, 16)
        assert taped(rt, 15) == [9, 10, 11, 12, 13, 14, 15]
        streamed_last(rt, stream, 16)
        assert tape(rt) == [9, 10, 11, 12, 13, 14, 15]  # none doubled; 16 is forming


def test_a_429_storm_on_the_fetch_after_a_reconnect_is_retried_and_loses_no_candle(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    """The fetch of the gap after a reconnect meets rate limits: the runtime's retry helper
    waits them out with the backoff, and every candle still arrives once, in order."""
    with ws_tree(venue, stream, tmp_path) as (rt, clock):
        series = candles(T0, 11)
        venue.set_candles(MARKET_ID, series)
        clock.advance(TF)
        stream.push(MARKET_ID, series[10], closed=True)
        assert taped(rt, 10) == [9, 10]
        fetched = venue.count(KLINES)
        venue.storm(2)  # within one fetch's retries (ATTEMPTS)
        assert stream.drop() == 1
        venue.set_candles(MARKET_ID, candles(T0, 15))
        clock.advance(3 * TF)  # inside candle 14: 11, 12 and 13 closed while it was down
        stream.wait_subscribed(MARKET_ID, times=2)
        assert taped(rt, 13) == [9, 10, 11, 12, 13]
        assert venue.count(KLINES) >= fetched + 3  # two refused, then the page
        closes(venue, stream, clock, 15)
        assert taped(rt, 14) == [9, 10, 11, 12, 13, 14]
        assert "market.feed_error" not in alerts(rt)  # the retries took the storm


def test_a_stall_makes_the_feed_stale_trips_the_breaker_and_candles_clear_it(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    with ws_tree(venue, stream, tmp_path) as (rt, clock):
        assert status(rt).state is BreakerState.CLOSED
        stream.stall()  # the socket stays open, nothing arrives
        clock.advance(4.1 * TF)  # candle 10 (closed now) is the last: it ended 3.6 ago
        trips_on_stale_data(rt)
        stream.resume()  # candles flow again, by the stream
        series = candles(T0, 15)
        venue.set_candles(MARKET_ID, series)
        for n in (11, 12, 13):
            stream.push(MARKET_ID, series[n], closed=True)
        stream.push(MARKET_ID, series[14], closed=False)
        assert taped(rt, 13) == [9, 10, 11, 12, 13]  # 10 when it closed, then the rest
        clears_when_fresh(rt, clock, tmp_path)


def test_a_crash_of_the_market_neither_loses_nor_repeats_a_candle(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    with ws_tree(venue, stream, tmp_path) as (rt, clock):
        closes(venue, stream, clock, 11)
        closes(venue, stream, clock, 12)
        assert taped(rt, 11) == [9, 10, 11]
        crash(rt, "market")
        stream.wait_subscribed(MARKET_ID, times=2)  # the new instance's worker
        wait_until(lambda: len(workers()) == 1, timeout=WAIT,
                   what="the crashed instance's worker ended")
        closes(venue, stream, clock, 13)
        closes(venue, stream, clock, 14)
        assert taped(rt, 13) == [9, 10, 11, 12, 13]
        streamed_last(rt, stream, 14)
        assert tape(rt) == [9, 10, 11, 12, 13]  # none repeated; 14 is forming
        assert stats(rt).rejected == {}  # the new worker fetched after 11: no repeat


def test_stop_is_prompt_and_leaves_no_thread(venue: FakeBinance,
                                             stream: FakeBinanceStream) -> None:
    def worker(options: dict[str, Any], tell: Any = lambda m: None) -> WsStreamer:
        return WsStreamer(
            incarnation=1, exchange="binance", symbols=[SYMBOL], timeframe="1m",
            ccxt_options=options, poll_interval=0.05, stale_after=3,
            clock=clock_at(10.5), tell=tell, resume=dict)

    streaming = worker(ccxt_options(venue, stream))
    streaming.start()
    stream.wait_subscribed(MARKET_ID)
    # a venue that refuses every connection: the worker waits in its backoff
    nowhere = "http://127.0.0.1:9/api/v3"
    down = {"urls": {"api": {"public": nowhere, "private": nowhere,
                             "ws": {"spot": "ws://127.0.0.1:9/stream"}}}, "timeout": 500}
    told: list[object] = []
    backing_off = worker(down, told.append)
    backing_off.start()
    # its connection failed through a request's retries: it goes on to back off
    wait_until(lambda: any(isinstance(m, LiveTrouble) and m.failing for m in told),
               timeout=WAIT, what="the refused connection told as trouble")
    for w in (streaming, backing_off):
        w.stop(timeout=2.0)  # far less than a backoff's wait (up to 30 s) or a request's
        assert not w.alive
    assert not workers()


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("market-ws-")]


def _kwargs(exchange: str) -> dict[str, Any]:
    return {"incarnation": 1, "exchange": exchange, "symbols": [SYMBOL], "timeframe": "1m",
            "ccxt_options": {}, "poll_interval": 1.0, "stale_after": 3.0,
            "clock": ManualClock(), "tell": lambda m: None, "resume": dict}


@pytest.mark.unit
def test_auto_picks_the_websocket_where_ccxt_pro_watches_candles() -> None:
    assert isinstance(make_worker("auto", **_kwargs("binance")), WsStreamer)
    assert isinstance(make_worker("rest", **_kwargs("binance")), RestPoller)
    assert isinstance(make_worker("ws", **_kwargs("binance")), WsStreamer)
    for exchange in ("bitstamp", "bigone"):  # no watchOHLCV; not in ccxt.pro at all
        assert isinstance(make_worker("auto", **_kwargs(exchange)), RestPoller)


@pytest.mark.unit
@pytest.mark.parametrize("exchange", ["bitstamp", "bigone"])
def test_ws_on_a_venue_without_candles_by_websocket_is_refused(exchange: str) -> None:
    settings = {"source": "ccxt", "exchange": exchange, "symbols": [SYMBOL]}
    with pytest.raises(ValidationError, match="transport: 'ws'") as info:
        MarketActor.Settings.model_validate(settings | {"transport": "ws"})
    assert exchange in str(info.value)
    for transport in ("auto", "rest"):
        assert MarketActor.Settings.model_validate(
            settings | {"transport": transport}).transport == transport
