"""The live market source over REST against the fake Binance (real ccxt, 127.0.0.1).

A small tree: the market (``source: ccxt``), a tape (an Inbox subscriber), the real breaker
(``stale_data`` on), an alerts and a positions Inbox, under a ManualClock whose wall time is
the venue's: a candle closes when the test moves the clock past its end. The fake serves
candles 0..n from T0; the clock starts inside candle 10, so candle 10 is forming.

Covered: closed candles reach the tape in order, each once, and the forming candle never;
a restart of the market (``rt.restart_child``) and a new process (a new tree on the same
resume file) repeat and lose none; a 429 storm backs off and loses none, and one that
outlasts the retries is reported and recovers; a malformed candle is rejected and counted;
a stall makes the feed stale, trips the breaker (``stale_data``), and candles flowing again
clear it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.common.messages import Alert
from actors.market.contract import Bars, GetMarketStats, MarketStats
from actors.market.feed import MarketActor
from actors.risk.breaker import BreakerActor
from actors.risk.contract import BreakerState, BreakerStatus, GetBreakerStatus
from supervisor import Backoff, ChildSpec, ManualClock, Runtime, SupervisorSpec
from tests.support.bot_helpers import wait_until
from tests.support.breaker_helpers import breaker_settings
from tests.support.fake_venues import MARKET_ID, MINUTE_MS, T0, FakeBinance, FakeKraken, candles
from tests.support.position_helpers import Inbox

KLINES = "GET /api/v3/klines"
SYMBOL = "BTC/USDT"
WAIT = 20.0
TF = 60.0


@pytest.fixture
def venue() -> Iterator[FakeBinance]:
    fake = FakeBinance()
    fake.set_candles(MARKET_ID, candles(T0, 11))  # 0..10; 10 is forming at the start
    yield fake
    fake.close()
    assert fake.unserved == []


def market_settings(venue: FakeBinance, tmp_path: Path, **extra: Any) -> MarketActor.Settings:
    api = venue.url + "/api/v3"
    return MarketActor.Settings.model_validate({
        "source": "ccxt", "exchange": "binance", "symbols": [SYMBOL], "timeframe": "1m",
        "transport": "rest", "warmup": 1, "poll_interval": 0.02, "subscribers": ["tape"],
        "marks_interval": 0,
        "clock_file": str(tmp_path / "market_feed.json"),
        "ccxt_options": {
            "urls": {"api": {"public": api, "private": api}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                        "fetchMargins": False, "defaultType": "spot"},
            "timeout": 3000},
        **extra})


def start(settings: MarketActor.Settings, tmp_path: Path, clock: ManualClock) -> Runtime:
    breaker = breaker_settings(tmp_path, stale_data={"enabled": True})
    rt = Runtime(clock=clock, monitor_interval=0)
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=(
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("positions", factory=Inbox),
        ChildSpec("tape", factory=Inbox),
        ChildSpec("breaker", factory=lambda: BreakerActor(breaker)),
        ChildSpec("market", factory=lambda: MarketActor(settings)),
    )))
    return rt


def clock_at(candle: float) -> ManualClock:
    """A clock whose wall time is ``candle`` timeframes after T0."""
    return ManualClock(wall_start=T0 / 1000 + candle * TF)


def tape(rt: Runtime) -> list[int]:
    """The candle indexes the subscriber got, in order."""
    got: list[Any] = rt.ask("tape", "get")
    return [round((b.at * 1000 - T0) / MINUTE_MS) for m in got if isinstance(m, Bars)
            for b in m.bars]


def alerts(rt: Runtime) -> list[str]:
    return [a.key for a in rt.ask("alerts", "get") if isinstance(a, Alert)]


def taped(rt: Runtime, last: int) -> list[int]:
    def got() -> list[int] | None:
        t = tape(rt)
        return t if t and t[-1] >= last else None
    return wait_until(got, timeout=WAIT, what=f"candle {last} on the tape")


def polls(venue: FakeBinance, n: int) -> None:
    """Wait for ``n`` more klines requests (so the feed has looked ``n`` more times)."""
    goal = venue.count(KLINES) + n
    wait_until(lambda: venue.count(KLINES) >= goal, timeout=WAIT, what=f"{n} more polls")


def stats(rt: Runtime) -> MarketStats:
    got = rt.ask("market", GetMarketStats())
    assert isinstance(got, MarketStats)
    return got


def status(rt: Runtime) -> BreakerStatus:
    got = rt.ask("breaker", GetBreakerStatus())
    assert isinstance(got, BreakerStatus)
    return got


def s_open(s: BreakerStatus) -> bool:
    return s.state is BreakerState.OPEN


def test_closed_candles_in_order_once_and_never_the_forming_one(
        venue: FakeBinance, tmp_path: Path) -> None:
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        assert taped(rt, 9) == [9]  # the last closed candle (warm-up), not 10 (forming)
        polls(venue, 3)
        assert tape(rt) == [9]
        series = candles(T0, 14)
        series[10] = (*series[10][:4], "105.5", series[10][5])  # 10's final close
        venue.set_candles(MARKET_ID, series)
        clock.advance(3 * TF)  # inside candle 13
        assert taped(rt, 12) == [9, 10, 11, 12]
        got = [b for m in rt.ask("tape", "get") for b in m.bars]
        assert got[1].close == 105.5
        polls(venue, 3)
        assert tape(rt) == [9, 10, 11, 12]
        assert stats(rt).bars == 4 and stats(rt).rejected == {}
    finally:
        rt.stop()


def test_a_restart_of_the_market_and_a_new_process_repeat_and_lose_none(
        venue: FakeBinance, tmp_path: Path) -> None:
    clock = clock_at(10.5)
    settings = market_settings(venue, tmp_path)
    rt = start(settings, tmp_path, clock)
    try:
        taped(rt, 9)
        venue.set_candles(MARKET_ID, candles(T0, 13))
        clock.advance(2 * TF)
        taped(rt, 11)
        rt.restart_child("market")
        venue.set_candles(MARKET_ID, candles(T0, 16))
        clock.advance(3 * TF)
        assert taped(rt, 14) == [9, 10, 11, 12, 13, 14]
        polls(venue, 3)
        assert tape(rt) == [9, 10, 11, 12, 13, 14]
    finally:
        rt.stop()
    venue.set_candles(MARKET_ID, candles(T0, 19))  # candles closed while no process ran
    clock.advance(3 * TF)
    second = start(settings, tmp_path, clock)
    try:
        assert taped(second, 17) == [15, 16, 17]
        polls(venue, 3)
        assert tape(second) == [15, 16, 17]
    finally:
        second.stop()


def test_a_429_storm_backs_off_and_loses_no_candle(venue: FakeBinance, tmp_path: Path) -> None:
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        taped(rt, 9)
        venue.storm(3)  # within one request's retries
        venue.set_candles(MARKET_ID, candles(T0, 13))
        clock.advance(2 * TF)
        assert taped(rt, 11) == [9, 10, 11]
        assert "market.feed_error" not in alerts(rt)
        venue.storm(9)  # outlasts the retries of two polls: reported, then recovered
        venue.set_candles(MARKET_ID, candles(T0, 16))
        clock.advance(3 * TF)
        assert taped(rt, 14) == [9, 10, 11, 12, 13, 14]
        wait_until(lambda: "market.feed_recovered" in alerts(rt), timeout=WAIT,
                   what="the recovery alert")
        keys = alerts(rt)
        assert keys.count("market.feed_error") == 1
        assert keys.index("market.feed_error") < keys.index("market.feed_recovered")
    finally:
        rt.stop()


def test_a_malformed_candle_is_rejected_and_counted(venue: FakeBinance,
                                                   tmp_path: Path) -> None:
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        taped(rt, 9)
        series = candles(T0, 14)
        series[11] = (*series[11][:4], "x", series[11][5])
        venue.set_candles(MARKET_ID, series)
        clock.advance(3 * TF)
        assert taped(rt, 12) == [9, 10, 12]
        rejected = wait_until(lambda: stats(rt).rejected or None, timeout=WAIT,
                              what="the rejection counted")
        assert sum(rejected.values()) == 1
        assert any(k.startswith("market.bad_data.") for k in alerts(rt))
    finally:
        rt.stop()


def test_a_stall_makes_the_feed_stale_trips_the_breaker_and_candles_clear_it(
        venue: FakeBinance, tmp_path: Path) -> None:
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path), tmp_path, clock)
    try:
        taped(rt, 9)
        assert status(rt).state is BreakerState.CLOSED
        clock.advance(4.1 * TF)  # candle 10 (closed now) is the last: it ended 3.6 ago
        trips_on_stale_data(rt)
        venue.set_candles(MARKET_ID, candles(T0, 15))  # candles flow again
        clock.advance(1.0)
        assert taped(rt, 13) == [9, 10, 11, 12, 13]  # 10 when it closed, then the rest
        clears_when_fresh(rt, clock, tmp_path)
    finally:
        rt.stop()


def trips_on_stale_data(rt: Runtime) -> None:
    """The breaker opens on ``stale_data`` for the feed, and the market alerts it."""
    opened = wait_until(lambda: s if s_open(s := status(rt)) else None,
                        timeout=WAIT, what="the breaker open on stale data")
    assert opened.reason.startswith("stale_data")
    assert "stale_symbols.binance:1m" in opened.measures
    assert "market.feed_stale" in alerts(rt)


def clears_when_fresh(rt: Runtime, clock: ManualClock, tmp_path: Path) -> None:
    """With candles flowing again the stale hold clears (alerted), and the breaker leaves
    OPEN by its normal rules."""
    wait_until(lambda: "stale_symbols.binance:1m" not in status(rt).measures,
               timeout=WAIT, what="the stale hold cleared")
    assert "market.feed_fresh" in alerts(rt)
    clock.advance(breaker_settings(tmp_path).recovery_timeout + 1)
    wait_until(lambda: status(rt).state is not BreakerState.OPEN, timeout=WAIT,
               what="the breaker out of OPEN by its normal rules")


def test_a_kraken_feed_over_rest_delivers_its_closed_candles_once(tmp_path: Path) -> None:
    """The venue the original bot traded: Kraken's OHLC (its ``since`` in seconds, its
    ``last`` cursor, its last row still forming) through real ``ccxt.kraken``."""
    kraken = FakeKraken()
    try:
        kraken.set_candles("XXBTZUSD", candles(T0, 11))  # 0..10; 10 is forming
        settings = MarketActor.Settings.model_validate({
            "source": "ccxt", "exchange": "kraken", "symbols": ["BTC/USD"], "timeframe": "1m",
            "transport": "rest", "warmup": 1, "poll_interval": 0.02, "subscribers": ["tape"],
            "marks_interval": 0, "clock_file": str(tmp_path / "market_feed.json"),
            # ccxt spaces Kraken's calls 3 s apart; the fake takes them faster
            "ccxt_options": {"urls": {"api": {"public": kraken.url}}, "timeout": 3000,
                             "rateLimit": 20}})
        clock = clock_at(10.5)
        rt = start(settings, tmp_path, clock)
        try:
            assert taped(rt, 9) == [9]  # the last closed candle at the start, not 10
            kraken.set_candles("XXBTZUSD", candles(T0, 14))
            clock.advance(3 * TF)  # inside candle 13: 10, 11 and 12 have closed
            assert taped(rt, 12) == [9, 10, 11, 12]
            goal = kraken.count("/0/public/OHLC") + 3
            wait_until(lambda: kraken.count("/0/public/OHLC") >= goal, timeout=WAIT,
                       what="3 more polls")
            assert tape(rt) == [9, 10, 11, 12]  # 13 is forming: never delivered
            assert stats(rt).rejected == {}
        finally:
            rt.stop()
    finally:
        kraken.close()
    assert kraken.unserved == []


def test_a_fresh_start_warms_up_and_only_the_newest_closed_candle_is_not_catch_up(
        venue: FakeBinance, tmp_path: Path) -> None:
    """The warm-up's candles, and those fetched after an outage, come as catch-up steps
    (the strategies see them, no entry is signalled on them); the newest closed is live."""
    clock = clock_at(10.5)
    rt = start(market_settings(venue, tmp_path, warmup=5), tmp_path, clock)
    try:
        assert taped(rt, 9) == [5, 6, 7, 8, 9]  # the last 5 closed; 10 is forming

        def steps() -> list[tuple[int, bool]]:
            return [(round((m.bars[0].at * 1000 - T0) / MINUTE_MS), m.catch_up)
                    for m in rt.ask("tape", "get") if isinstance(m, Bars)]

        assert steps() == [(5, True), (6, True), (7, True), (8, True), (9, False)]
        venue.set_candles(MARKET_ID, candles(T0, 15))
        clock.advance(4 * TF)  # inside candle 14: 10..13 closed at once, as after an outage
        assert taped(rt, 13)[-4:] == [10, 11, 12, 13]
        assert steps()[-4:] == [(10, True), (11, True), (12, True), (13, False)]
    finally:
        rt.stop()
