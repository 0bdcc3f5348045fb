"""Bad market data is rejected, counted and reported, and never passed on.

``check_bar`` against a plain reference predicate (hypothesis, NaN and infinities
included), the CSV replay with broken rows, and the market actor with real subscribers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.common.messages import Alert
from actors.market.contract import (
    BadBar,
    Bar,
    Bars,
    FeedBars,
    GetMarketStats,
    MarketStats,
    MarkPrices,
)
from actors.market.data import CsvReplay, check_bar
from actors.market.feed import MarketActor
from supervisor import ChildSpec, ManualClock, Runtime, SupervisorSpec
from tests.support.bot_helpers import wait_until
from tests.support.fuzz_cases import usable
from tests.support.position_helpers import Inbox

WAIT = 10.0


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.5, max_value=2.0),  # mostly plausible prices, so many bars pass
    st.integers(min_value=-2, max_value=3),
    st.sampled_from([True, None, "1.0", 1e12, 1.0000001e12, 1e154]),
)


@given(fields=st.tuples(numbers, numbers, numbers, numbers, numbers, numbers),
       last=st.one_of(st.none(), st.floats(min_value=-5, max_value=5)))
@settings(max_examples=600, deadline=None)
def test_check_bar_accepts_exactly_the_usable_bars(fields: tuple[Any, ...],
                                                    last: float | None) -> None:
    o, h, lo, c, v, at = fields
    bar = Bar("BTC/USDT", at, o, h, lo, c, v)
    try:
        check_bar(bar, last)
        accepted = True
    except BadBar:
        accepted = False
    assert accepted is usable(bar, last)


@pytest.mark.parametrize(("bar", "last_at", "reason"), [
    (Bar("X", 60.0, 1.0, 2.0, 0.5, float("nan"), 1.0), None, "not_finite"),
    (Bar("X", 60.0, 1.0, float("inf"), 0.5, 1.0, 1.0), None, "not_finite"),
    (Bar("X", 60.0, 0.0, 2.0, 0.0, 1.0, 1.0), None, "non_positive_price"),
    (Bar("X", 60.0, -1.0, 2.0, -1.0, 1.0, 1.0), None, "non_positive_price"),
    (Bar("X", 60.0, 1.0, 2e154, 0.5, 1.0, 1.0), None, "price_too_large"),
    (Bar("X", 60.0, 1.0, 2.0, 0.5, 1.0, -1.0), None, "negative_volume"),
    (Bar("X", 60.0, 1.0, 0.5, 2.0, 1.0, 1.0), None, "high_below_low"),
    (Bar("X", 60.0, 1.0, 2.0, 0.5, 3.0, 1.0), None, "outside_range"),
    (Bar("X", 60.0, 1.0, 2.0, 0.5, 1.0, 1.0), 60.0, "duplicate_timestamp"),
    (Bar("X", 60.0, 1.0, 2.0, 0.5, 1.0, 1.0), 120.0, "out_of_order"),
    (Bar("X", 60.0, 1.0, 2.0, 0.5, None, 1.0), None, "not_a_number"),  # type: ignore[arg-type]
])
def test_each_kind_of_bad_bar_is_named(bar: Bar, last_at: float | None, reason: str) -> None:
    with pytest.raises(BadBar) as caught:
        check_bar(bar, last_at)
    assert caught.value.reason == reason


def test_csv_rows_with_missing_or_broken_fields_are_yielded_as_bad_bars(tmp_path: Path) -> None:
    (tmp_path / "BTC_USDT.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        "60000,1,2,0.5,1.5,10\n"
        "120000,1,2,0.5,,10\n"          # a missing close
        "180000,1,2,0.5,abc,10\n"       # not a number
        "240000,1,2,0.5,1.5,10\n",
        encoding="utf-8")
    items = list(CsvReplay(tmp_path))
    assert [type(i).__name__ for i in items] == ["Bar", "BadBar", "BadBar", "Bar"]
    assert [i.at for i in items if isinstance(i, Bar)] == [60.0, 240.0]


# -- the market actor -----------------------------------------------------------------------
def _market_tree() -> Runtime:
    market = MarketActor.Settings(max_steps=1, subscribers=("tape",), positions="sink",
                                  breaker="sink", alerts="alerts", crash_at_bar=None,
                                  clock_file=None)
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("tape", factory=Inbox),
        ChildSpec("sink", factory=Inbox),
        ChildSpec("alerts", factory=Inbox),
        ChildSpec("market", factory=lambda: MarketActor(market)),
    )))
    return rt


def _finished(rt: Runtime) -> MarketStats:
    def done() -> MarketStats | None:
        stats: MarketStats = rt.ask("market", GetMarketStats())
        return stats if stats.finished else None

    return wait_until(done, timeout=WAIT, what="the synthetic step")


def test_the_market_passes_on_good_bars_only_and_counts_and_reports_the_rest() -> None:
    rt = _market_tree()
    try:
        before = _finished(rt)
        good = Bar("ZZZ/USDT", 1e9, 1.0, 2.0, 0.5, 1.5, 3.0)
        bad = [
            Bar("ZZZ/USDT", 1e9 + 60, 1.0, 2.0, 0.5, float("nan"), 3.0),
            Bar("ZZZ/USDT", 1e9 + 60, -1.0, 2.0, -1.0, 1.0, 3.0),
            Bar("ZZZ/USDT", 1e9, 1.0, 2.0, 0.5, 1.5, 3.0),       # the same time again
            Bar("ZZZ/USDT", 1e9 - 60, 1.0, 2.0, 0.5, 1.5, 3.0),  # going back in time
        ]
        rt.tell("market", FeedBars((good,)))
        for b in bad:
            rt.tell("market", FeedBars((b,)))
        later = Bar("ZZZ/USDT", 1e9 + 120, 1.0, 2.0, 0.5, 1.5, 3.0)
        rt.tell("market", FeedBars((later,)))
        stats: MarketStats = rt.ask("market", GetMarketStats())
        assert stats.bars == before.bars + 2
        assert stats.rejected == {"not_finite": 1, "non_positive_price": 1,
                                  "duplicate_timestamp": 1, "out_of_order": 1}
        passed = [b for m in rt.ask("tape", "get") if isinstance(m, Bars) for b in m.bars
                  if b.symbol == "ZZZ/USDT"]
        assert passed == [good, later]  # nothing bad reached a subscriber
        alerts = [m for m in rt.ask("alerts", "get") if isinstance(m, Alert)]
        assert sorted(a.key for a in alerts) == sorted(
            f"market.bad_data.{r}" for r in stats.rejected)  # the first of each is reported
    finally:
        rt.stop()


def test_marks_reach_the_position_actor_coalesced_and_none_is_left_behind() -> None:
    """Prices go to the position actor at most every ``marks_interval`` (the latest of each
    symbol); those held back are sent when the interval is up. Time is a ManualClock."""
    clock = ManualClock()
    market = MarketActor.Settings(max_steps=1, subscribers=(), positions="sink",
                                  breaker="other", alerts="other", crash_at_bar=None,
                                  marks_interval=0.05, clock_file=None)
    rt = Runtime(ask_timeout=WAIT, clock=clock)
    rt.start(SupervisorSpec(children=(
        ChildSpec("sink", factory=Inbox),
        ChildSpec("other", factory=Inbox),
        ChildSpec("market", factory=lambda: MarketActor(market)),
    )))
    t0 = 2e9

    def feed(i: int, close: float) -> None:
        rt.tell("market", FeedBars((Bar("ZZZ/USDT", t0 + 60 * i, close, close + 1,
                                        close - 1, close, 5.0),)))

    def zzz_marks() -> list[float]:
        rt.ask("market", GetMarketStats())  # the market has handled what was sent before
        got = rt.ask("sink", "get")  # ... and the sink what the market told it
        return [close for m in got if isinstance(m, MarkPrices)
                for symbol, close, _ in m.prices if symbol == "ZZZ/USDT"]

    try:
        feed(0, 10.0)
        sent_first = zzz_marks()  # [10.0], or [] if the synthetic step's marks just went
        assert sent_first in ([10.0], [])
        for i, close in enumerate((11.0, 12.0, 13.0), start=1):
            feed(i, close)
        assert zzz_marks() == sent_first  # within the interval: held back
        clock.advance(0.05)  # the interval is up: the latest price goes out, once
        assert zzz_marks() == [*sent_first, 13.0]
        clock.advance(1.0)
        assert zzz_marks() == [*sent_first, 13.0]  # nothing left to send, nothing resent
    finally:
        rt.stop()
