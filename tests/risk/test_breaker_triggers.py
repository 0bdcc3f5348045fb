"""Each breaker trigger fed real sequences: equity curves, trade results, API outcomes,
prices, volumes, exposure, process samples and feed health."""

from __future__ import annotations

import itertools
import math
import random
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.risk.market_triggers import LiquidityTrigger, VolatilityTrigger
from actors.risk.triggers import (
    ApiErrorTrigger,
    ConsecutiveLossTrigger,
    DailyLossTrigger,
    DrawdownTrigger,
    ExposureTrigger,
    ResourceTrigger,
    StaleDataTrigger,
)

pytestmark = pytest.mark.unit

D = Decimal


def test_drawdown_trips_at_the_limit_from_the_running_peak() -> None:
    trigger = DrawdownTrigger(10.0)
    curve = [D(1000), D(1100), D(1050), D(1200), D(1100), D("1081")]
    assert all(trigger.on_equity(e) is None for e in curve)  # 9.9% below the 1200 peak
    trip = trigger.on_equity(D(1080))  # exactly 10%
    assert trip is not None
    assert dict(trip.figures)["peak"] == "1200"
    trigger.rearm()  # half-open: the peak becomes the current equity
    assert trigger.on_equity(D(1000)) is None  # 7.4% below 1080
    assert trigger.on_equity(D(970)) is not None  # 10.2% below 1080


def test_daily_loss_is_a_percent_of_the_days_start_with_the_boundary_in_the_zone() -> None:
    zone = ZoneInfo("America/New_York")
    trigger = DailyLossTrigger(5.0, "America/New_York")

    def at(day: int, hour: int) -> float:
        return datetime(2026, 3, day, hour, 0, tzinfo=zone).timestamp()

    assert trigger.on_equity(D(10000), at(2, 9)) is None  # the day's start: 10,000
    assert trigger.on_equity(D(9600), at(2, 15)) is None  # -4%
    trip = trigger.on_equity(D(9500), at(2, 23))  # -5%: a percent against a percent
    assert trip is not None and dict(trip.figures)["day_start_equity"] == "10000"
    assert trigger.holding(at(2, 23)) is not None
    # 01:00 in New York is a new day there (though 06:00 UTC of the same UTC day)
    assert trigger.holding(at(3, 1)) is None
    assert trigger.on_equity(D(9400), at(3, 1)) is None  # new day starts at 9,400
    assert trigger.next_day_start(at(2, 23)) == at(3, 0)


def test_api_error_rate_needs_min_calls_and_respects_the_window() -> None:
    trigger = ApiErrorTrigger(window_seconds=60, min_calls=10, max_error_rate=0.5,
                              max_consecutive=0)
    outcomes = [True, False] * 4 + [False]  # 5 errors of 9: under min_calls
    assert all(trigger.on_call(ok, t) is None for t, ok in enumerate(outcomes))
    trip = trigger.on_call(True, 9)  # 10 calls, 5 errors: 50%
    assert trip is not None and dict(trip.figures)["calls"] == "10"
    trigger.rearm()
    # old errors fall out of the window
    for t in range(10):
        assert trigger.on_call(t % 3 != 0, 100 + t) is None  # 4 errors of 10: 40%
    assert trigger.on_call(False, 200) is None  # the others fell out: 1 call in the window


def test_api_failures_in_row_is_the_original_failure_threshold() -> None:
    trigger = ApiErrorTrigger(window_seconds=60, min_calls=1000, max_error_rate=1.0,
                              max_consecutive=3)
    assert trigger.on_call(False, 0) is None
    assert trigger.on_call(False, 1) is None
    assert trigger.on_call(True, 2) is None  # a success breaks the run
    assert trigger.on_call(False, 3) is None
    assert trigger.on_call(False, 4) is None
    assert trigger.on_call(False, 5) is not None


@settings(max_examples=150, deadline=None)
@given(calls=st.lists(st.tuples(st.floats(0.0, 30.0), st.booleans()), min_size=1,
                      max_size=300),
       rearm_at=st.integers(0, 300))
def test_api_error_count_kept_running_equals_a_recount_of_the_window(
    calls: list[tuple[float, bool]], rearm_at: int
) -> None:
    """The trigger counts errors as calls enter and leave the window; a recount of the
    window (the plain definition) gives the same figures and the same trips."""
    trigger = ApiErrorTrigger(window_seconds=60, min_calls=5, max_error_rate=0.4,
                              max_consecutive=0)
    seen: list[tuple[float, bool]] = []
    t = 0.0
    for k, (dt, ok) in enumerate(calls):
        if k == rearm_at:
            trigger.rearm()
            seen = []
        t += dt
        trip = trigger.on_call(ok, t)
        seen = [(at, good) for at, good in [*seen, (t, ok)] if at > t - 60]
        errors = sum(1 for _, good in seen if not good)
        assert (trigger.errors, len(trigger.calls)) == (errors, len(seen))
        expected = len(seen) >= 5 and errors / len(seen) >= 0.4
        assert (trip is not None) == expected
        if trip is not None:
            assert dict(trip.figures)["errors"] == str(errors)


def test_consecutive_losses_are_truly_consecutive() -> None:
    trigger = ConsecutiveLossTrigger(3)
    # 5 losses among the last 8 trades, but never 3 in a row
    results = [D(-1), D(-2), D(5), D(-1), D(-1), D(3), D(-4), D(0)]
    assert all(trigger.on_trade(r) is None for r in results)
    assert trigger.streak == 1  # break-even neither extends nor breaks the streak
    assert trigger.on_trade(D(-1)) is None
    trip = trigger.on_trade(D("-0.5"))
    assert trip is not None and dict(trip.figures)["streak"] == "3"


def test_volatility_from_a_real_price_series() -> None:
    rng = random.Random(7)
    trigger = VolatilityTrigger(window_seconds=60, max_percent=3.0, min_samples=10)
    price = 100.0
    for t in range(120):  # calm: 0.1% steps
        price *= math.exp(rng.gauss(0, 0.001))
        assert trigger.on_price("BTC", price, t) is None
    assert trigger.holding() is None
    tripped = None
    for t in range(120, 140):  # a burst: 2% steps
        price *= math.exp(rng.choice([-1, 1]) * 0.02)
        tripped = tripped or trigger.on_price("BTC", price, t)
    assert tripped is not None and tripped.trigger == "volatility"
    assert trigger.holding() is not None
    for t in range(140, 260):  # calm again; the burst leaves the window
        price *= math.exp(rng.gauss(0, 0.001))
        trigger.on_price("BTC", price, t)
    assert trigger.holding() is None


_STEPS = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 1.0, 1.0, 3.0, 7.0, 45.0]),  # seconds to the next
        st.one_of(st.floats(-0.002, 0.002), st.floats(-0.08, 0.08)),  # calm, or a burst
    ),
    min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(steps=_STEPS, window=st.sampled_from([5.0, 20.0, 60.0]),
       min_samples=st.integers(1, 12))
def test_volatility_running_sums_equal_the_direct_computation(
    steps: list[tuple[float, float]], window: float, min_samples: int
) -> None:
    """The trigger keeps running sums; the window recomputed from scratch at every sample
    (the plain definition) gives the same volatility and the same trips."""
    limit = 5.0
    trigger = VolatilityTrigger(window_seconds=window, max_percent=limit,
                                min_samples=min_samples)
    series: list[tuple[float, float]] = []
    t, price = 0.0, 100.0
    for dt, r in steps:
        t += dt
        price *= math.exp(r)
        trip = trigger.on_price("X", price, t)
        series.append((t, price))
        series = [(at, p) for at, p in series if at > t - window]
        if len(series) < min_samples:
            assert "X" not in trigger.current and trip is None
            continue
        points = [p for _, p in series]
        direct = math.sqrt(sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(points)))
        assert math.isclose(trigger.current["X"], direct * 100, rel_tol=1e-9, abs_tol=1e-9)
        if abs(direct * 100 - limit) > 1e-9:
            assert (trip is not None) == (direct * 100 >= limit)
            if trip is not None:
                assert dict(trip.figures)["samples"] == str(len(points))


def test_liquidity_floor_applies_to_symbols_we_hold() -> None:
    trigger = LiquidityTrigger(min_volume=1000)
    assert trigger.on_volume("DOGE", 10) is None  # thin, but not held
    trip = trigger.on_holdings({"DOGE"})
    assert trip is not None and dict(trip.figures)["symbol"] == "DOGE"
    assert trigger.on_volume("DOGE", 5000) is None
    assert trigger.holding() is None


def test_exposure_total_and_per_symbol() -> None:
    trigger = ExposureTrigger(max_gross_percent=100, max_symbol_percent=40)
    assert trigger.on_exposure(D(1000), D(500), {"A": D(300), "B": D(200)}) is None
    trip = trigger.on_exposure(D(1000), D(500), {"A": D(450), "B": D(50)})
    assert trip is not None and dict(trip.figures)["symbol"] == "A"
    trip = trigger.on_exposure(D(1000), D(1200), {"A": D(400), "B": D(400), "C": D(400)})
    assert trip is not None and "gross" in trip.reason
    assert trigger.holding() is not None
    assert trigger.on_exposure(D(1000), D(100), {"A": D(100)}) is None
    assert trigger.holding() is None


@settings(max_examples=200, deadline=None)
@given(equity=st.decimals(1, 10_000, places=2),
       values=st.dictionaries(st.sampled_from("ABCDEFGH"), st.decimals(0, 5_000, places=3),
                              max_size=8),
       limit=st.sampled_from([10, 25, 33.3, 40]))
def test_exposure_by_symbol_trips_on_the_first_symbol_over_the_limit(
    equity: Decimal, values: dict[str, Decimal], limit: float
) -> None:
    """The trigger looks at the largest exposure first; the trip is the plain definition's:
    the first symbol, in symbol order, whose exposure over equity is above the limit."""
    trigger = ExposureTrigger(max_gross_percent=1e9, max_symbol_percent=limit)
    trip = trigger.on_exposure(equity, sum(values.values(), D(0)), values)
    over = [s for s, v in sorted(values.items())
            if v / equity * 100 > Decimal(str(limit))]
    assert (dict(trip.figures)["symbol"] if trip else None) == (over[0] if over else None)


def test_liquidity_trips_on_the_first_thin_symbol_held() -> None:
    trigger = LiquidityTrigger(min_volume=1000)
    for symbol, volume in (("A", 5000.0), ("B", 10.0), ("C", 20.0), ("D", 1.0)):
        assert trigger.on_volume(symbol, volume) is None  # nothing held yet
    trip = trigger.on_holdings({"A", "D", "C"})
    assert trip is not None and dict(trip.figures)["symbol"] == "C"
    assert trigger.on_holdings({"A", "E"}) is None  # E: no volume seen, no trip


def test_resources_memory_and_sustained_cpu() -> None:
    trigger = ResourceTrigger(max_rss_mb=100, max_cpu_percent=90, sustain=3)
    assert trigger.on_sample(50 * 1_048_576, 95) is None
    assert trigger.on_sample(50 * 1_048_576, 95) is None
    assert trigger.on_sample(50 * 1_048_576, 10) is None  # not sustained
    assert trigger.on_sample(50 * 1_048_576, 99) is None
    assert trigger.on_sample(50 * 1_048_576, 99) is None
    assert trigger.on_sample(50 * 1_048_576, 99) is not None
    assert trigger.on_sample(200 * 1_048_576, 0) is not None  # memory


def test_stale_data_trips_while_a_feed_is_stale_and_holds_until_every_feed_is_fresh() -> None:
    t = StaleDataTrigger()
    assert t.level and t.holding() is None
    assert t.on_health("binance:1m", False, (), None, 100.0) is None
    trip = t.on_health("binance:1m", True, ("BTC/USDT", "ETH/USDT"), 1000.0, 1300.0)
    assert trip is not None and trip.trigger == "stale_data"
    assert trip.reason == ("feed binance:1m stale for BTC/USDT, ETH/USDT (last closed candle "
                           "300s before 1300)")
    assert dict(trip.figures) == {"source": "binance:1m", "stale_symbols": "BTC/USDT,ETH/USDT",
                                  "last_closed_at": "1000", "at": "1300"}
    second = t.on_health("kraken:1h", True, ("XBT/USD",), None, 1300.0)
    assert second is not None and "no closed candle yet" in second.reason
    t.rearm()  # a level: re-arming forgets nothing
    assert t.on_health("binance:1m", False, (), 1300.0, 1360.0) is None
    held = t.holding()
    assert held is not None and held.startswith("stale_data: feed kraken:1h stale for XBT/USD")
    assert "binance" not in held
    t.on_health("kraken:1h", False, (), 1300.0, 1400.0)
    assert t.holding() is None and t.stale == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), max_size=30))
def test_stale_data_holds_exactly_while_some_feeds_last_word_is_stale(
        reports: list[tuple[str, bool]]) -> None:
    t = StaleDataTrigger()
    last: dict[str, bool] = {}
    for i, (source, stale) in enumerate(reports):
        trip = t.on_health(source, stale, ("X",) if stale else (), None, float(i))
        assert (trip is not None) is stale
        last[source] = stale
        assert (t.holding() is not None) is any(last.values())
