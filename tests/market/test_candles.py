"""The candle tracker: closed candles out in order, each once, never a forming one; backfill
after a restart or a reconnect misses none and repeats none; bad candles and gaps are
reported; staleness goes and comes with the candles.

A hypothesis venue (a series with holes and bad candles, a forming version of its current
candle) is read by random interleavings of pages, updates, repeats, shuffles, ticks and
restarts, against the plain expectation: every closed candle of the series, once, in order,
and stale exactly while a symbol's last delivered candle ended 3 timeframes ago or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.market.candles import CandleTracker, Delivery, timeframe_ms
from actors.market.contract import Bar

pytestmark = pytest.mark.unit

TF = 60_000  # 1m, in ms
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a candle boundary


def row(i: int, close: float = 100.0, volume: float = 5.0) -> list[Any]:
    at = T0 + i * TF
    return [at, close, close + 1, close - 1, close, volume]


def tracker(symbols: tuple[str, ...] = ("BTC/USDT",), *, start_i: float = 10.0,
            **kwargs: Any) -> CandleTracker:
    return CandleTracker("test:1m", symbols, "1m", start=(T0 + start_i * TF) / 1000, **kwargs)


def now(i: float) -> float:
    """Venue time (seconds) at ``i`` candles after T0."""
    return (T0 + i * TF) / 1000


def ats(delivery: Delivery) -> list[int]:
    return [round((b.at * 1000 - T0) / TF) for b in delivery.closed]


# -- examples --------------------------------------------------------------------------------
def test_timeframes() -> None:
    assert timeframe_ms("1m") == 60_000 and timeframe_ms("4h") == 14_400_000
    assert timeframe_ms("1w") == 604_800_000
    for bad in ("", "m", "0m", "1x", "1.5m", "-1m"):
        with pytest.raises(ValueError, match="not a ccxt timeframe"):
            timeframe_ms(bad)


def test_a_page_delivers_its_closed_candles_and_holds_the_forming_one() -> None:
    t = tracker(warmup=3)  # started at candle 10: the last 3 closed are 7, 8, 9
    assert t.backfill() == {"BTC/USDT": T0 + 7 * TF}
    forming = row(10, close=101.0)
    d = t.ingest("BTC/USDT", [row(i) for i in range(5, 10)] + [forming], now(10.5),
                 since=T0 + 5 * TF)
    assert ats(d) == [7, 8, 9] and d.rejected == () and d.gaps == () and d.backfill == ()
    assert d.closed[0] == Bar("BTC/USDT", (T0 + 7 * TF) / 1000, 100.0, 101.0, 99.0, 100.0, 5.0)
    assert [b.close for b in t.forming()] == [101.0]  # for marking, not delivered
    # an update of the forming candle, then its successor: it closes with its last version
    assert ats(t.ingest("BTC/USDT", [row(10, close=102.0)], now(10.9))) == []
    d = t.ingest("BTC/USDT", [row(10, close=102.5), row(11)], now(11.01))
    assert ats(d) == [10] and d.closed[0].close == 102.5
    assert t.backfill() == {"BTC/USDT": T0 + 11 * TF}


def test_closing_by_time_with_only_a_forming_version_asks_for_a_fetch() -> None:
    t = tracker(warmup=0)
    t.ingest("BTC/USDT", [row(10, close=101.0)], now(10.5))
    d = t.tick(now(11.2))  # candle 10 has ended; the version seen was taken before its end
    assert d.closed == () and d.backfill == (("BTC/USDT", T0 + 10 * TF),)
    d = t.ingest("BTC/USDT", [row(10, close=103.0), row(11)], now(11.2), since=T0 + 10 * TF)
    assert ats(d) == [10] and d.closed[0].close == 103.0
    # a version taken at or after its end is final: time alone closes it
    d = t.ingest("BTC/USDT", [row(11, close=99.0)], now(12.0))
    assert ats(d) == [11] and d.closed[0].close == 99.0


def test_repeats_overlaps_and_disorder_deliver_each_candle_once_in_order() -> None:
    t = tracker(start_i=0, warmup=0)
    got = []
    got += ats(t.ingest("BTC/USDT", [row(3), row(1), row(0), row(2)], now(3.5), since=T0))
    got += ats(t.ingest("BTC/USDT", [row(1), row(2), row(3), row(4)], now(4.5), since=T0 + TF))
    got += ats(t.ingest("BTC/USDT", [row(0), row(4)], now(4.6)))
    got += ats(t.tick(now(9)))
    assert got == [0, 1, 2, 3]
    assert t.counts().delivered == 4 and t.counts().repeats == 3


def test_a_forming_version_arriving_late_does_not_replace_a_final_one() -> None:
    t = tracker(start_i=0, warmup=0)
    assert ats(t.ingest("BTC/USDT", [row(0)], now(1.0))) == [0]
    d = t.ingest("BTC/USDT", [row(2, close=120.0), row(3)], now(3.5))  # 2 final, 1 unseen
    assert d.closed == () and d.backfill == (("BTC/USDT", T0 + TF),)
    assert ats(t.ingest("BTC/USDT", [row(2, close=90.0)], now(2.5))) == []  # taken earlier
    d = t.ingest("BTC/USDT", [row(1)], now(3.6), since=T0 + TF)
    assert ats(d) == [1, 2] and d.closed[1].close == 120.0


def test_a_gap_is_held_until_a_page_shows_the_venue_has_no_candle_there() -> None:
    t = tracker(start_i=0, warmup=0)
    assert ats(t.ingest("BTC/USDT", [row(0), row(1)], now(2.0))) == [0, 1]
    d = t.ingest("BTC/USDT", [row(3), row(4)], now(4.5))  # an update: 2 may still come
    assert d.closed == () and d.backfill == (("BTC/USDT", T0 + 2 * TF),)
    d = t.ingest("BTC/USDT", [row(3), row(4)], now(4.6), since=T0 + 2 * TF)
    assert ats(d) == [3]
    assert [(g.after, g.before, g.missing) for g in d.gaps] == [(now(1), now(3), 1)]
    assert t.counts().gaps == 1


def test_a_late_candle_before_the_gap_is_not_lost() -> None:
    t = tracker(start_i=0, warmup=0)
    t.ingest("BTC/USDT", [row(0), row(1)], now(2.0))
    t.ingest("BTC/USDT", [row(3), row(4)], now(4.5))
    d = t.ingest("BTC/USDT", [row(2), row(3)], now(4.6))
    assert ats(d) == [2, 3] and d.gaps == ()


def test_bad_candles_are_rejected_with_the_reason_counted_and_never_delivered() -> None:
    t = tracker(start_i=0, warmup=0)
    bad_range = [T0 + TF, 100.0, 99.0, 101.0, 100.0, 5.0]  # high below low
    rows = [row(0), bad_range, [T0 + 2 * TF, 100.0, 101.0, 99.0, 100.0, None],
            [T0 + 3 * TF + 7, 1, 1, 1, 1, 1], [T0 + 3 * TF, 1.0], "junk",
            [T0 + 4 * TF, 100, 101, 99, 100, 5], row(5)]
    d = t.ingest("BTC/USDT", rows, now(5.5), since=T0)
    assert ats(d) == [0, 4]
    reasons = sorted(r.reason for r in d.rejected)
    assert reasons == ["bad_timestamp", "high_below_low", "malformed_row", "malformed_row",
                       "not_a_number"]
    assert t.counts().rejected == {"bad_timestamp": 1, "malformed_row": 2,
                                   "high_below_low": 1, "not_a_number": 1}
    assert [(g.after, g.before) for g in d.gaps] == [(now(2), now(4))]  # 3 was unusable


def test_several_symbols_are_asked_for_in_feed_order() -> None:
    t = tracker(("ETH/USDT", "BTC/USDT"), start_i=0, warmup=0)
    t.ingest("BTC/USDT", [row(0), row(1), row(2)], now(2.5), since=T0)
    d = t.ingest("ETH/USDT", [row(0), row(1), row(2)], now(2.5), since=T0)
    assert [b.symbol for b in d.closed] == ["ETH/USDT", "ETH/USDT"]
    d = t.tick(now(3.1))  # both candles 2 ended with only forming versions seen
    assert d.closed == ()
    assert d.backfill == (("ETH/USDT", T0 + 2 * TF), ("BTC/USDT", T0 + 2 * TF))


def test_a_restart_from_the_resume_point_repeats_none_and_misses_none() -> None:
    t = tracker(start_i=0, warmup=0)
    t.ingest("BTC/USDT", [row(i) for i in range(4)], now(3.5), since=T0)
    point = t.resume_point()
    assert point == {"BTC/USDT": now(2)}
    again = tracker(start_i=8.2, resume=point)
    assert again.backfill() == {"BTC/USDT": T0 + 3 * TF}
    d = again.ingest("BTC/USDT", [row(i) for i in range(9)], now(8.2), since=T0)
    assert ats(d) == [3, 4, 5, 6, 7]


def test_a_restart_from_the_last_delivered_candle_rejects_a_bad_one_again_never_delivers_it(
) -> None:
    t = tracker(start_i=0, warmup=0)
    bad = [T0 + 2 * TF, 100.0, 90.0, 110.0, 100.0, 1.0]  # high below low
    d = t.ingest("BTC/USDT", [row(0), row(1), bad, row(3)], now(3.5), since=T0)
    assert ats(d) == [0, 1] and [r.reason for r in d.rejected] == ["high_below_low"]
    again = tracker(start_i=4.5, resume={"BTC/USDT": d.closed[-1].at})  # as the actor keeps it
    d = again.ingest("BTC/USDT", [row(1), bad, row(3), row(4)], now(4.5), since=T0 + TF)
    assert ats(d) == [3] and [r.reason for r in d.rejected] == ["high_below_low"]
    assert d.gaps == ()  # the rejected candle is not a gap: the venue has it


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="no symbols"):
        CandleTracker("f", (), "1m", start=0)
    with pytest.raises(ValueError, match="twice"):
        CandleTracker("f", ("A", "A"), "1m", start=0)
    with pytest.raises(ValueError, match="stale_after"):
        CandleTracker("f", ("A",), "1m", start=0, stale_after=0.5)
    with pytest.raises(ValueError, match="unknown symbols"):
        CandleTracker("f", ("A",), "1m", start=0, resume={"B": 0})
    with pytest.raises(ValueError, match="unknown symbol 'B'"):
        CandleTracker("f", ("A",), "1m", start=0).ingest("B", [], 0)


def test_staleness_goes_and_comes_with_closed_candles() -> None:
    t = tracker(("BTC/USDT", "ETH/USDT"), start_i=0, warmup=0, stale_after=3)
    assert t.health_change(now(2.9)) is None  # within the first 3 timeframes
    h = t.health_change(now(3.0))
    assert h is not None and h.stale and h.stale_symbols == ("BTC/USDT", "ETH/USDT")
    assert h.last_closed_at is None and h.at == now(3.0) and h.source == "test:1m"
    assert t.health_change(now(3.5)) is None  # no change, no message
    t.ingest("BTC/USDT", [row(i) for i in range(5)], now(4.5), since=T0)
    h = t.health_change(now(4.5))
    assert h is not None and h.stale_symbols == ("ETH/USDT",)
    t.ingest("ETH/USDT", [row(i) for i in range(5)], now(4.5), since=T0)
    h = t.health_change(now(4.6))
    assert h is not None and not h.stale and h.last_closed_at == now(3)
    # forming updates alone keep nothing fresh: candle 3 ended at 4, stale from 7
    t.ingest("BTC/USDT", [row(4)], now(6.9))
    assert not t.health(now(6.99)).stale
    assert t.health(now(7.0)).stale_symbols == ("ETH/USDT",)  # BTC's 4 closed (final)
    assert t.health(now(8.0)).stale_symbols == ("BTC/USDT", "ETH/USDT")


# -- the property ----------------------------------------------------------------------------
@dataclass
class Venue:
    """A venue's series per symbol: candle i exists unless in ``holes``, its final values are
    bad when in ``bad``; the candle forming at venue time ``now`` shows other values."""

    length: int
    holes: dict[str, frozenset[int]]
    bad: dict[str, frozenset[int]]
    now_ms: int = T0

    def final(self, symbol: str, i: int) -> list[Any]:
        if i in self.bad[symbol]:
            return [T0 + i * TF, 100.0, 90.0, 110.0, 100.0, 1.0]  # high below low
        return row(i, close=100.0 + i, volume=10.0 + i)

    def current(self) -> int:
        return (self.now_ms - T0) // TF

    def rows(self, symbol: str, first: int, last: int) -> list[list[Any]]:
        out = []
        for i in range(max(first, 0), min(last, self.current(), self.length - 1) + 1):
            if i in self.holes[symbol]:
                continue
            if self.now_ms >= T0 + (i + 1) * TF:
                out.append(self.final(symbol, i))
            else:  # forming: a different close and volume
                out.append(row(i, close=50.0 + i, volume=0.5))
        return out


SYMBOLS = ("BTC/USDT", "ETH/USDT")


@st.composite
def venues(draw: st.DrawFn) -> Venue:
    length = draw(st.integers(8, 30))
    index = st.integers(0, length - 1)
    holes = {s: draw(st.frozensets(index, max_size=4)) for s in SYMBOLS}
    bad = {s: draw(st.frozensets(index, max_size=2)) for s in SYMBOLS}
    return Venue(length, holes, bad)


OPS = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 150)),  # seconds
    st.tuples(st.just("update"), st.sampled_from(SYMBOLS), st.integers(1, 3)),
    st.tuples(st.just("page"), st.sampled_from(SYMBOLS), st.integers(0, 3), st.integers(1, 6)),
    st.tuples(st.just("repeat"), st.sampled_from(SYMBOLS), st.integers(0, 6)),
    st.tuples(st.just("backfill"), st.integers(1, 6)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("restart")),
)


@settings(max_examples=300, deadline=None)
@given(venue=venues(), start=st.integers(0, 4), ops=st.lists(OPS, max_size=60),
       data=st.data())
def test_any_interleaving_delivers_every_closed_candle_once_in_order_never_a_forming_one(
        venue: Venue, start: int, ops: list[tuple[Any, ...]], data: st.DataObject) -> None:
    venue.now_ms = T0 + start * TF + 30_000
    t = CandleTracker("prop", SYMBOLS, "1m", start=venue.now_ms / 1000, warmup=start)
    first = {s: (t.backfill()[s] - T0) // TF for s in SYMBOLS}
    started = venue.now_ms
    delivered: dict[str, list[int]] = {s: [] for s in SYMBOLS}
    rejected: dict[str, list[int]] = {s: [] for s in SYMBOLS}

    def take(d: Delivery) -> None:
        for bar in d.closed:
            i = round((bar.at * 1000 - T0) / TF)
            # closed and final: its end has passed and it has the final values
            assert T0 + (i + 1) * TF <= venue.now_ms
            assert [bar.at * 1000, bar.open, bar.high, bar.low, bar.close, bar.volume] == \
                venue.final(bar.symbol, i)
            assert not delivered[bar.symbol] or i > delivered[bar.symbol][-1]
            delivered[bar.symbol].append(i)
        for r in d.rejected:
            assert r.at is not None
            rejected[r.symbol].append(round((r.at * 1000 - T0) / TF))

    def page(symbol: str, since: int, limit: int) -> None:
        i = (since - T0) // TF
        rows = venue.rows(symbol, i, i + limit - 1)
        take(t.ingest(symbol, data.draw(st.permutations(rows)), venue.now_ms / 1000,
                      since=since))

    for op in ops:
        kind = op[0]
        if kind == "advance":
            venue.now_ms += op[1] * 1000
        elif kind == "update":  # the newest candles, forming one included
            rows = venue.rows(op[1], venue.current() - op[2] + 1, venue.current())
            take(t.ingest(op[1], rows, venue.now_ms / 1000))
        elif kind == "page":  # from the backfill point or before it (an overlap)
            page(op[1], t.backfill()[op[1]] - op[2] * TF, op[3])
        elif kind == "repeat":  # an old candle sent again
            rows = venue.rows(op[1], venue.current() - op[2], venue.current() - op[2])
            take(t.ingest(op[1], rows, venue.now_ms / 1000))
        elif kind == "backfill":  # a reconnect: fetch from where the tracker says
            for s, since in t.backfill().items():
                page(s, since, op[1])
        elif kind == "tick":
            take(t.tick(venue.now_ms / 1000))
        else:  # a restart from the persisted point
            t = CandleTracker("prop", SYMBOLS, "1m", start=venue.now_ms / 1000,
                              resume=t.resume_point())
            started = venue.now_ms
        # stale: the last delivered candle ended 3 timeframes ago or more (or, before one,
        # the tracker started that long ago)
        ends = {s: T0 + (delivered[s][-1] + 1) * TF if delivered[s] else started
                for s in SYMBOLS}
        expect = tuple(s for s in SYMBOLS if venue.now_ms - max(started, ends[s]) >= 3 * TF)
        assert t.health(venue.now_ms / 1000).stale_symbols == expect
    # the venue's series is over and has ended: fetching from the backfill point catches up
    venue.now_ms = T0 + (venue.length + 2) * TF
    for s, since in t.backfill().items():
        page(s, since, venue.length + 1)
    take(t.tick(venue.now_ms / 1000))
    for s in SYMBOLS:
        series = [i for i in range(first[s], venue.length) if i not in venue.holes[s]]
        assert delivered[s] == [i for i in series if i not in venue.bad[s]]
        assert rejected[s] == [i for i in series if i in venue.bad[s]]
    for s, since in t.backfill().items():  # caught up: a second fetch brings nothing new
        page(s, since, venue.length + 1)
    assert all(len(v) == len(set(v)) for v in delivered.values())
