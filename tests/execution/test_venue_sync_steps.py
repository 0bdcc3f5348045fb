"""One venue sync's steps (``VenueSync`` in actors/execution/venue_sync.py), pure and through
its public API only: ``start()``, ``answer(value)`` and what it found (``recovered``,
``rejected``, ``ledger_empty``, ``phantom``, ``open_orders``, ``scope()``,
``newest_fill_time()``). The answers are the real contract dataclasses the position actor
and the venue reply with. A hypothesis test plays a ledger and a venue against it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from actors.common.fill_digest import digest
from actors.common.messages import Fill, Side
from actors.execution.venue_sync import Step, VenueSync
from actors.portfolio.contract import (
    FillRecorded,
    FillsRecorded,
    GetLedgerSummary,
    LedgerSummary,
    RecordFills,
)
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    GetVenueRecord,
    OpenOrder,
    PlaceOrder,
    VenueRecord,
)

pytestmark = pytest.mark.unit

LOOKBACK = 3600.0


def _fill(n: int, at: float | None = None, venue: str = "paper") -> Fill:
    return Fill(f"f{n}", f"bv-{n}", "BTC/USDT", Side.BUY, Decimal(1), Decimal(100),
                at=float(n) if at is None else at, venue=venue)


def _summary(newest: float | None, total: int = 0, **others: int) -> LedgerSummary:
    return LedgerSummary(newest, {"paper": total, **others} if total or others else {},
                         seq=total, database="ledger.db")


def _recorded(fills: Iterable[Fill], new: Iterable[str] = ()) -> FillsRecorded:
    """The ledger's reply: the fills in ``new`` added, the others already there."""
    added = set(new)
    return FillsRecorded(tuple(FillRecorded(f.fill_id, i, f.fill_id not in added)
                               for i, f in enumerate(fills, start=1)))


def _count(fills: int | None) -> VenueRecord:
    return VenueRecord("paper", fills, "the paper exchange's exchange.db")


def _sync(mode: Literal["recent", "full"] = "recent", batch: int = 1000,
          reach_back: float | None = None) -> VenueSync:
    return VenueSync(mode, LOOKBACK, batch, reach_back=reach_back)


def _open_order(n: int) -> OpenOrder:
    return OpenOrder(PlaceOrder(f"bv-{n}", "BTC/USDT", Side.BUY, Decimal(2)), (_fill(n),))


# -- the steps --------------------------------------------------------------------------------

def test_a_sync_with_nothing_missing_asks_summary_fills_record_count_and_open_orders() -> None:
    sync = _sync()
    fills = [_fill(1, at=9000), _fill(2, at=9500)]
    assert sync.start() == ("ledger", GetLedgerSummary())
    assert sync.answer(_summary(9500, total=2)) == ("venue", GetVenueFills(9500 - LOOKBACK))
    assert sync.answer(fills) == ("ledger", RecordFills(tuple(fills)))
    assert sync.answer(_recorded(fills)) == ("venue", GetVenueRecord())
    assert sync.answer(_count(2)) == ("venue", GetOpenOrders())
    assert sync.answer(()) is None
    assert (sync.recovered, sync.rejected, sync.ledger_empty, sync.phantom) == ([], [], False, 0)
    assert sync.open_orders == ()


def test_the_fills_the_ledger_lacked_are_recovered() -> None:
    sync = _sync()
    fills = [_fill(1), _fill(2), _fill(3)]
    sync.start()
    sync.answer(_summary(2.0, total=2))
    sync.answer(fills)
    assert sync.answer(_recorded(fills, new={"f3"})) == ("venue", GetVenueRecord())
    assert sync.answer(_count(3)) == ("venue", GetOpenOrders())
    assert sync.answer([]) is None
    assert sync.recovered == [fills[2]]
    assert (sync.ledger_empty, sync.phantom) == (False, 0)


def test_the_fills_are_recorded_in_batches_of_venue_sync_batch() -> None:
    sync = _sync(batch=2)
    fills = [_fill(n) for n in range(1, 6)]
    sync.start()
    sync.answer(_summary(None))
    assert sync.answer(fills) == ("ledger", RecordFills((fills[0], fills[1])))
    assert sync.answer(_recorded(fills[0:2], new={"f1"})) == \
        ("ledger", RecordFills((fills[2], fills[3])))
    assert sync.answer(_recorded(fills[2:4])) == ("ledger", RecordFills((fills[4],)))
    assert sync.answer(_recorded(fills[4:], new={"f5"})) == ("venue", GetVenueRecord())
    assert sync.recovered == [fills[0], fills[4]]


def test_no_fill_at_the_venue_records_nothing() -> None:
    sync = _sync()
    sync.start()
    sync.answer(_summary(None))
    assert sync.answer([]) == ("venue", GetVenueRecord())


def test_the_fills_the_ledger_refused_are_listed() -> None:
    sync = _sync()
    fills = [_fill(1), _fill(2)]
    sync.start()
    sync.answer(_summary(None))
    sync.answer(fills)
    refused = FillsRecorded((FillRecorded("f1", 1, False),), rejected=(("f2", "oversold"),))
    assert sync.answer(refused) == ("venue", GetVenueRecord())
    assert sync.recovered == [fills[0]]
    assert sync.rejected == [("f2", "oversold")]


def test_the_open_orders_are_kept() -> None:
    sync = _sync()
    sync.start()
    sync.answer(_summary(None))
    sync.answer([])
    sync.answer(_count(0))
    orders = [_open_order(1), _open_order(2)]
    assert sync.answer(orders) is None
    assert sync.open_orders == tuple(orders)


def test_start_asks_for_the_ledger_summary_first() -> None:
    sync = _sync()
    assert sync.start() == ("ledger", GetLedgerSummary())
    with pytest.raises(TypeError, match="GetLedgerSummary answered list"):
        sync.answer([])


# -- "recent", "full" and the reach back ------------------------------------------------------

def test_recent_lists_from_lookback_before_the_ledgers_newest_fill() -> None:
    sync = _sync("recent")
    sync.start()
    assert sync.answer(_summary(10_000, total=1)) == ("venue", GetVenueFills(10_000 - LOOKBACK))
    assert sync.scope() == "venue fill(s) since venue time 6400"


def test_recent_lists_everything_when_the_ledger_has_no_fill() -> None:
    sync = _sync("recent")
    sync.start()
    assert sync.answer(_summary(None)) == ("venue", GetVenueFills(None))
    assert sync.scope() == "venue fill(s)"


def test_full_lists_everything() -> None:
    sync = _sync("full", reach_back=100.0)
    sync.start()
    assert sync.answer(_summary(10_000, total=1)) == ("venue", GetVenueFills(None))
    assert sync.scope() == "venue fill(s)"


@pytest.mark.parametrize(("reach_back", "since"), [
    (5000.0, 5000.0),  # an earlier instance's unrecorded fill before the window: from it
    (6400.0, 6400.0),
    (8000.0, 6400.0),  # within the window: the window
])
def test_recent_reaches_back_to_an_earlier_instances_oldest_unrecorded_fill(
        reach_back: float, since: float) -> None:
    sync = _sync("recent", reach_back=reach_back)
    sync.start()
    assert sync.answer(_summary(10_000, total=1)) == ("venue", GetVenueFills(since))
    assert sync.scope() == f"venue fill(s) since venue time {since:.0f}"


def test_the_scope_is_the_venue_time_to_the_second() -> None:
    sync = VenueSync("recent", 0.4, 10)
    sync.start()
    sync.answer(_summary(1000.0, total=1))
    assert sync.scope() == "venue fill(s) since venue time 1000"


# -- the venue's count ------------------------------------------------------------------------

def test_a_venue_with_more_fills_than_the_window_holds_is_listed_again_in_full() -> None:
    sync = _sync("recent")
    old, recent = _fill(1, at=100.0), _fill(2, at=9000.0)
    sync.start()
    sync.answer(_summary(9000.0, total=1))
    sync.answer([recent])
    sync.answer(_recorded([recent]))
    # the venue made 2 of this bot's fills; the ledger holds 1 and the window listed 1
    assert sync.answer(_count(2)) == ("venue", GetVenueFills(None))
    assert sync.scope() == "venue fill(s)"
    assert sync.answer([old, recent]) == ("ledger", RecordFills((old, recent)))
    assert sync.answer(_recorded([old, recent], new={"f1"})) == ("venue", GetVenueRecord())
    assert sync.answer(_count(2)) == ("venue", GetOpenOrders())  # now the counts agree
    assert sync.answer([]) is None
    assert sync.recovered == [old]
    assert (sync.phantom, sync.ledger_empty) == (0, False)


def test_a_venue_listed_in_full_is_not_listed_again() -> None:
    sync = _sync("full")
    sync.start()
    sync.answer(_summary(None))
    sync.answer([])
    # 5 at the venue and none listed: a venue that lists what it has; nothing to ask again
    assert sync.answer(_count(5)) == ("venue", GetOpenOrders())
    assert sync.phantom == 0


def test_fills_the_ledger_has_and_the_venue_does_not_are_phantom() -> None:
    sync = _sync("recent")
    fills = [_fill(3, at=9000.0)]
    sync.start()
    sync.answer(_summary(9000.0, total=5, other=7))  # 5 from this venue, 7 from another
    sync.answer(fills)
    sync.answer(_recorded(fills))
    assert sync.answer(_count(2)) == ("venue", GetOpenOrders())
    assert sync.phantom == 3


def test_the_fills_just_recovered_count_as_held() -> None:
    sync = _sync("recent")
    fills = [_fill(2, at=9000.0), _fill(3, at=9100.0)]
    sync.start()
    sync.answer(_summary(9000.0, total=1))
    sync.answer(fills)
    sync.answer(_recorded(fills, new={"f3"}))
    # 1 held and 1 recovered of this venue: 2, as the venue counts; another venue's aside
    assert sync.answer(_count(2)) == ("venue", GetOpenOrders())
    assert sync.phantom == 0
    other = _sync("recent")
    foreign = [_fill(4, at=9100.0, venue="other")]
    other.start()
    other.answer(_summary(9000.0, total=2))
    other.answer(foreign)
    other.answer(_recorded(foreign, new={"f4"}))
    assert other.answer(_count(1)) == ("venue", GetOpenOrders())
    assert other.phantom == 1


def test_a_fill_missing_behind_a_phantom_is_found_by_the_digests() -> None:
    """The ledger holds f0 (which the venue never made) and f9; the venue made f5 and f9;
    the window starts at 9. The counts agree (2 and 2), the digests of the ids do not: the
    sync lists every fill, recovers f5, and counts f0 as phantom."""
    sync = _sync("recent")
    f5, f9 = _fill(5, at=5.0), _fill(9, at=9.0 + LOOKBACK)
    sync.start()
    sync.answer(LedgerSummary(f9.at, {"paper": 2}, 2, "ledger.db",
                              {"paper": digest(["f0", "f9"])}))
    assert sync.answer([f9]) == ("ledger", RecordFills((f9,)))
    assert sync.answer(_recorded([f9])) == ("venue", GetVenueRecord())
    venue = VenueRecord("paper", 2, "exchange.db", digest(["f5", "f9"]))
    assert sync.answer(venue) == ("venue", GetVenueFills(None))  # the counts alone: done
    sync.answer([f5, f9])
    assert sync.answer(_recorded([f5, f9], new={"f5"})) == ("venue", GetVenueRecord())
    assert sync.answer(venue) == ("venue", GetOpenOrders())
    assert sync.answer([]) is None
    assert sync.recovered == [f5] and sync.phantom == 1


def test_equal_digests_ask_nothing_more_and_an_unknown_one_is_not_compared() -> None:
    f9 = _fill(9, at=9000.0)
    for ledger_digests, venue_digest in [({"paper": digest(["f1", "f9"])},
                                          digest(["f1", "f9"])),
                                         ({}, digest(["f5", "f9"])),  # ledger: not known
                                         ({"paper": digest(["f0", "f9"])}, None)]:
        sync = _sync("recent")
        sync.start()
        sync.answer(LedgerSummary(9000.0, {"paper": 2}, 2, "ledger.db", ledger_digests))
        sync.answer([f9])
        sync.answer(_recorded([f9]))
        step = sync.answer(VenueRecord("paper", 2, "exchange.db", venue_digest))
        assert step == ("venue", GetOpenOrders()), (ledger_digests, venue_digest)


@pytest.mark.parametrize("count", [None, _count(None)])
def test_a_venue_that_keeps_no_count_ends_with_its_open_orders(count: VenueRecord | None) -> None:
    sync = _sync("recent")
    sync.start()
    sync.answer(_summary(9000.0, total=4))
    sync.answer([])
    assert sync.answer(count) == ("venue", GetOpenOrders())
    assert sync.answer([_open_order(1)]) is None
    assert (sync.phantom, sync.ledger_empty) == (0, False)


# -- a lost ledger ----------------------------------------------------------------------------

def _ended(sync: VenueSync, summary: LedgerSummary, listed: Sequence[Fill],
           new: Iterable[str], count: VenueRecord | None) -> VenueSync:
    sync.start()
    sync.answer(summary)
    step = sync.answer(list(listed))
    while step is not None and isinstance(step[1], RecordFills):
        step = sync.answer(_recorded(step[1].fills, new=new))
    assert step == ("venue", GetVenueRecord())
    step = sync.answer(count)
    if step == ("venue", GetVenueFills(None)):
        step = sync.answer(list(listed))
        while step is not None and isinstance(step[1], RecordFills):
            step = sync.answer(_recorded(step[1].fills))
        step = sync.answer(count)
    assert step == ("venue", GetOpenOrders())
    assert sync.answer([]) is None
    return sync


def test_an_empty_ledger_while_the_venue_has_fills_is_a_lost_ledger() -> None:
    fills = [_fill(1), _fill(2)]
    sync = _ended(_sync("recent"), _summary(None), fills, {"f1", "f2"}, _count(2))
    assert sync.ledger_empty and sync.recovered == fills


def test_an_empty_ledger_that_recovered_nothing_of_a_venue_with_fills_is_lost() -> None:
    # the venue counts 2, lists none it would give (all refused, or none listed)
    sync = _ended(_sync("full"), _summary(None), [], (), _count(2))
    assert sync.ledger_empty and sync.recovered == []


def test_an_empty_ledger_that_recovered_fills_from_a_venue_without_count_is_lost() -> None:
    sync = _ended(_sync("recent"), _summary(None), [_fill(1)], {"f1"}, None)
    assert sync.ledger_empty


@pytest.mark.parametrize(("summary", "listed", "new", "count"), [
    (_summary(None), [], (), _count(0)),  # a new deployment: nothing anywhere
    (_summary(None), [], (), None),
    (_summary(5.0, total=1), [_fill(5)], (), _count(1)),  # a ledger with fills
    (_summary(5.0, total=1), [_fill(5), _fill(6)], {"f6"}, _count(2)),
])
def test_no_lost_ledger(summary: LedgerSummary, listed: list[Fill], new: set[str],
                        count: VenueRecord | None) -> None:
    assert not _ended(_sync("recent"), summary, listed, new, count).ledger_empty


# -- answers of the wrong kind ----------------------------------------------------------------

def _at(stage: str) -> VenueSync:
    """A sync waiting for the answer to ``stage``'s ask."""
    sync = _sync(batch=1)
    sync.start()
    if stage == "summary":
        return sync
    sync.answer(_summary(None))
    if stage == "fills":
        return sync
    if stage == "record":
        sync.answer([_fill(1)])
        return sync
    sync.answer([])
    if stage == "count":
        return sync
    sync.answer(_count(0))
    return sync


@pytest.mark.parametrize(("stage", "wrong", "message"), [
    ("summary", None, "GetLedgerSummary answered NoneType"),
    ("summary", [], "GetLedgerSummary answered list"),
    ("fills", _summary(None), "GetVenueFills answered LedgerSummary"),
    ("fills", None, "GetVenueFills answered NoneType"),
    ("record", [_fill(1)], "RecordFills answered list"),
    ("record", None, "RecordFills answered NoneType"),
    ("count", [], "GetVenueRecord answered list"),
    ("count", 3, "GetVenueRecord answered int"),
    ("open", None, "GetOpenOrders answered NoneType"),
    ("open", [_fill(1)], "GetOpenOrders answered list"),
    ("open", _open_order(1), "GetOpenOrders answered OpenOrder"),
])
def test_an_answer_of_the_wrong_kind_raises_type_error(
        stage: str, wrong: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        _at(stage).answer(wrong)


# -- the newest fill time ---------------------------------------------------------------------

@pytest.mark.parametrize(("newest", "listed", "want"), [
    (None, [], None),  # no fill anywhere
    (500.0, [], 500.0),
    (None, [_fill(1, at=700.0), _fill(2, at=650.0)], 700.0),
    (900.0, [_fill(1, at=700.0)], 900.0),
    (600.0, [_fill(1, at=700.0)], 700.0),
])
def test_the_newest_fill_time_is_the_newest_of_the_ledgers_and_the_listed(
        newest: float | None, listed: list[Fill], want: float | None) -> None:
    sync = _sync("full")
    sync.start()
    sync.answer(_summary(newest, total=1 if newest is not None else 0))
    sync.answer(listed)
    assert sync.newest_fill_time() == want


# -- a ledger and a venue played against it ---------------------------------------------------

@dataclass(frozen=True)
class World:
    """A venue and a ledger, and how the sync is set up."""

    venue_has: list[bool]  # fill n (at venue time n) was made by the venue
    ledger_has: list[bool]  # fill n is in the ledger
    counts: bool  # the venue answers GetVenueRecord with its count
    mode: Literal["recent", "full"]
    window: int  # venue_sync_lookback
    batch: int


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Half the time a ledger with no fill the venue did not make (its normal state)."""
    venue_has = draw(st.lists(st.booleans(), max_size=30))
    phantoms = draw(st.booleans())
    ledger_has = [draw(st.booleans()) if made or phantoms else False for made in venue_has]
    return World(venue_has, ledger_has, draw(st.booleans()),
                 draw(st.sampled_from(["recent", "full"])), draw(st.integers(0, 8)),
                 draw(st.integers(1, 7)))


@given(worlds())
@example(World([True, False, True], [False, False, True], True, "recent", 0, 1))  # f0 lacked
def test_a_sync_records_what_the_ledger_lacks_and_counts_what_the_venue_lacks(
        world: World) -> None:
    """Fill n at venue time n: the venue made those in ``venue_has``, the ledger holds those
    in ``ledger_has`` (some the venue may not have made). Whatever the batch size and the
    window: every fill listed ends in the ledger, those it lacked recovered once each;
    everything is listed when the mode is "full" or the ledger is empty; every venue fill
    ends in the ledger when the venue counts (and the ledger has no fill the venue did
    not make); the ledger's fills the venue does not count are phantom; an empty ledger
    with fills at the venue is a lost ledger."""
    mode, batch, counts = world.mode, world.batch, world.counts
    made = [_fill(n) for n, has in enumerate(world.venue_has) if has]
    before = {f"f{n}" for n, has in enumerate(world.ledger_has) if has}
    ledger = set(before)
    newest = max((float(fid[1:]) for fid in before), default=None)
    sync = VenueSync(mode, float(world.window), batch)
    step: Step | None = sync.start()
    listed: list[Fill] = []
    while step is not None:
        where, ask = step
        answer: Any
        if isinstance(ask, GetLedgerSummary):
            answer = _summary(newest, total=len(before))
        elif isinstance(ask, GetVenueFills):
            assert where == "venue"
            listed = [f for f in made if ask.since is None or f.at >= ask.since]
            answer = listed
        elif isinstance(ask, RecordFills):
            assert where == "ledger" and 0 < len(ask.fills) <= batch
            new = {f.fill_id for f in ask.fills} - ledger
            ledger |= new
            answer = _recorded(ask.fills, new=new)
        elif isinstance(ask, GetVenueRecord):
            answer = _count(len(made)) if counts else None
        else:
            assert isinstance(ask, GetOpenOrders)
            answer = ()
        step = sync.answer(answer)
    lacked = [f for f in listed if f.fill_id not in before]
    assert {f.fill_id for f in listed} <= ledger
    assert sorted(f.fill_id for f in sync.recovered) == sorted(f.fill_id for f in lacked)
    held = len(before)
    made_ids = {f.fill_id for f in made}
    if mode == "full" or newest is None:
        assert listed == made
    if counts and before <= made_ids:  # a count the ledger's phantoms cannot hide behind
        assert made_ids <= ledger
    assert sync.phantom == (max(0, held + len(lacked) - len(made)) if counts else 0)
    assert sync.ledger_empty == (held == 0 and (bool(lacked) or (counts and bool(made))))
