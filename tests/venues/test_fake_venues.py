"""The fake venues of tests/support/fake_venues.py, each against the real client that will
trade with it: ccxt's ``binance`` over REST klines, ``ccxt.pro.binance`` over the kline
websocket stream, ccxt's ``kraken`` over OHLC and ticker. What a fake serves is what ccxt
parses; its controls (a 429 storm, a malformed candle, a gap, a dropped or stalled stream)
reach ccxt as the real venue's would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import ccxt
import ccxt.pro
import pytest

from tests.support.fake_venues import (
    MARKET_ID,
    MINUTE_MS,
    T0,
    FakeBinance,
    FakeBinanceStream,
    FakeKraken,
    candles,
)

BINANCE_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                   "fetchMargins": False, "defaultType": "spot"}


@pytest.fixture
def binance() -> Iterator[FakeBinance]:
    fake = FakeBinance(extra_markets=(("ETH", "USDT"),))
    yield fake
    fake.close()
    assert fake.unserved == []


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    fake = FakeKraken()
    yield fake
    fake.close()
    assert fake.unserved == []


def rest_client(venue: FakeBinance) -> Any:
    api = venue.url + "/api/v3"
    return ccxt.binance({"urls": {"api": {"public": api, "private": api}},
                         "options": dict(BINANCE_OPTIONS), "enableRateLimit": False,
                         "timeout": 2000})


def as_floats(rows: list[Any]) -> list[list[float]]:
    return [[float(x) for x in row] for row in rows]


# -- Binance over REST -------------------------------------------------------------------------
def test_binance_klines_page_through_fetch_ohlcv(binance: FakeBinance) -> None:
    series = candles(T0, 1500)
    binance.set_candles(MARKET_ID, series)
    ex = rest_client(binance)
    first = ex.fetch_ohlcv("BTC/USDT", "1m", since=T0, limit=1000)
    second = ex.fetch_ohlcv("BTC/USDT", "1m", since=first[-1][0] + MINUTE_MS, limit=1000)
    assert len(first) == 1000 and len(second) == 500
    assert as_floats(first + second) == as_floats([list(c) for c in series])
    assert binance.count("GET /api/v3/klines") == 2
    assert ex.fetch_ohlcv("ETH/USDT", "1m", since=T0) == []  # listed, no candles


def test_binance_storm_gap_and_malformed_candle_reach_ccxt(binance: FakeBinance) -> None:
    series = candles(T0, 10)
    bad = series[3]
    series[3] = (bad[0], bad[1], "x", bad[3], bad[4], bad[5])  # high is not a number
    del series[6]  # a gap
    binance.set_candles(MARKET_ID, series)
    binance.storm(2)
    ex = rest_client(binance)
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection):  # ccxt's class for an HTTP 429
            ex.fetch_ohlcv("BTC/USDT", "1m", since=T0)
    rows = ex.fetch_ohlcv("BTC/USDT", "1m", since=T0)
    assert [r[0] for r in rows] == [T0 + i * MINUTE_MS for i in (0, 1, 2, 3, 4, 5, 7, 8, 9)]
    assert rows[3][2] is None  # ccxt parses a non-number as None
    with pytest.raises(ccxt.BadSymbol):
        ex.fetch_ohlcv("DOGE/USDT", "1m")


# -- Binance's kline stream, with ccxt.pro ---------------------------------------------------
def test_binance_stream_feeds_watch_ohlcv_and_can_drop_and_stall(binance: FakeBinance) -> None:
    stream = FakeBinanceStream()
    try:
        asyncio.run(_watch(binance, stream))
    finally:
        stream.close()


async def _watch(venue: FakeBinance, stream: FakeBinanceStream) -> None:
    api = venue.url + "/api/v3"
    ex = ccxt.pro.binance({"urls": {"api": {"public": api, "private": api,
                                            "ws": {"spot": stream.url}}},
                           "options": dict(BINANCE_OPTIONS), "enableRateLimit": False,
                           "timeout": 2000})
    c0, c1, c2, c3 = candles(T0, 4)
    try:
        watch = asyncio.create_task(ex.watch_ohlcv("BTC/USDT", "1m"))
        await asyncio.to_thread(stream.wait_subscribed, MARKET_ID)
        assert stream.push(MARKET_ID, c0, closed=False) == 1  # forming
        got = await asyncio.wait_for(watch, 5)
        assert as_floats(got) == as_floats([list(c0)])
        for candle, closed in ((c0, True), (c1, False)):
            watch = asyncio.create_task(ex.watch_ohlcv("BTC/USDT", "1m"))
            await _waiting(ex)
            stream.push(MARKET_ID, candle, closed=closed)
            got = await asyncio.wait_for(watch, 5)
            assert as_floats(got[-1:]) == as_floats([list(candle)])

        # a stall: the connection stays, nothing arrives
        stream.stall()
        assert stream.push(MARKET_ID, c1, closed=True) == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(
                watch := asyncio.create_task(ex.watch_ohlcv("BTC/USDT", "1m"))), 0.5)
        stream.resume()
        stream.push(MARKET_ID, c2, closed=False)
        got = await asyncio.wait_for(watch, 5)
        assert got[-1][0] == c2[0]

        # a drop: the pending watch fails with a network error; the next one reconnects
        watch = asyncio.create_task(ex.watch_ohlcv("BTC/USDT", "1m"))
        await _waiting(ex)
        assert stream.drop() == 1
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(watch, 5)
        watch = asyncio.create_task(ex.watch_ohlcv("BTC/USDT", "1m"))
        await asyncio.to_thread(stream.wait_subscribed, MARKET_ID, 2)
        stream.push(MARKET_ID, c3, closed=True)
        got = await asyncio.wait_for(watch, 5)
        assert got[-1][0] == c3[0]
    finally:
        await ex.close()


async def _waiting(ex: Any) -> None:
    """Until a watch waits on the stream: ccxt.pro resolves only the futures that exist
    when a message comes, so a candle pushed before that would be missed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not any(client.futures for client in ex.clients.values()):
        if loop.time() > deadline:
            raise TimeoutError("no watch is waiting on the stream")
        await asyncio.sleep(0.001)


# -- Kraken over REST ------------------------------------------------------------------------
def test_kraken_ohlc_pages_by_since_and_serves_a_ticker(kraken: FakeKraken) -> None:
    series = candles(T0, 1000)
    kraken.set_candles("XXBTZUSD", series)
    ex = ccxt.kraken({"urls": {"api": {"public": kraken.url}}, "enableRateLimit": False,
                      "timeout": 2000})
    first = ex.fetch_ohlcv("BTC/USD", "1m", since=T0)
    assert len(first) == 720 and first[0][0] == T0
    second = ex.fetch_ohlcv("BTC/USD", "1m", since=first[-1][0] + MINUTE_MS)
    assert as_floats(first + second) == as_floats([list(c) for c in series])
    ticker = ex.fetch_ticker("BTC/USD")
    assert ticker["symbol"] == "BTC/USD" and ticker["last"] == 43251.1
    kraken.plan("/0/public/OHLC", (200, {"error": ["EAPI:Rate limit exceeded"]}))
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_ohlcv("BTC/USD", "1m", since=T0)
    with pytest.raises(ccxt.BadSymbol):
        ex.fetch_ohlcv("DOGE/USD", "1m")
