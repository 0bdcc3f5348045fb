"""The executor's venue sync driver (actors/execution/sync_driver.py) and a sync's stage
table (actors/execution/venue_sync.py), pure: answers told to them, waiters as futures.
No runtime."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.common.messages import Alert, Fill, Side
from actors.execution.orders import IllegalTransition
from actors.execution.sync_driver import SyncDriver
from actors.execution.venue_sync import (
    STAGE_TABLE,
    SyncPhase,
    SyncStage,
    VenueSync,
)
from actors.portfolio.contract import (
    FillRecorded,
    FillsRecorded,
    GetLedgerSummary,
    LedgerSummary,
    RecordFills,
)
from actors.venues.contract import GetOpenOrders, GetVenueFills, GetVenueRecord, VenueRecord

pytestmark = pytest.mark.unit

EMPTY = LedgerSummary(None, {}, 0, "ledger.db")


def driver(alerts: list[Alert]) -> SyncDriver:
    return SyncDriver("recent", 86400.0, 1000, retry=1.0, alert=alerts.append)


def run(d: SyncDriver, *answers: Any) -> Any:
    """Start the wanted sync and give it ``answers`` in turn; the driver's last word."""
    step: Any = d.due(nothing_out=True)
    assert step == ("ledger", GetLedgerSummary())
    for answer in answers:
        step = d.answer(answer)
    return step


def test_a_sync_wanted_starts_once_nothing_is_out_and_its_waiters_hear_the_count() -> None:
    alerts: list[Alert] = []
    d = driver(alerts)
    early: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    d.want(early)
    assert d.phase is SyncPhase.WANTED and d.busy and not d.synced
    assert d.due(nothing_out=False) is None and d.phase is SyncPhase.WANTED
    late: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    step = d.due(nothing_out=True)
    assert step == ("ledger", GetLedgerSummary()) and d.phase is SyncPhase.RUNNING
    d.want(late)  # asked while it runs: another sync after this one
    assert d.phase is SyncPhase.RUNNING_AGAIN
    assert d.answer(EMPTY) == ("venue", GetVenueFills(None))
    assert d.answer([]) == ("venue", GetVenueRecord())
    assert d.answer(None) == ("venue", GetOpenOrders())
    sync = d.answer([])
    assert isinstance(sync, VenueSync) and sync.stage is SyncStage.DONE
    assert d.done() is sync and d.synced and d.phase is SyncPhase.WANTED
    assert d.report(sync) is None and [a.key for a in alerts] == []
    d.answer_waiters(0)
    assert early.get(timeout=0) == 0
    with pytest.raises(pykka.Timeout):
        late.get(timeout=0)  # not answered: it waits for the next sync
    assert d.due(nothing_out=True) is not None  # the second sync: for ``late``
    d.fail_waiters(RuntimeError("stopped"))
    with pytest.raises(RuntimeError, match="stopped"):
        late.get(timeout=0)


def test_a_failed_sync_fails_its_waiters_and_asks_for_one_retry_timer() -> None:
    alerts: list[Alert] = []
    d = driver(alerts)
    running: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    d.want(running)
    d.due(nothing_out=True)
    assert d.failed(OSError("venue down"))  # schedule the retry timer
    assert d.phase is SyncPhase.IDLE and not d.synced and d.retry_out
    with pytest.raises(OSError, match="venue down"):
        running.get(timeout=0)
    assert [a.key for a in alerts] == ["executor.venue_sync_failed"]
    d.want()  # a SyncVenue meanwhile: its own try, and no second timer on its failure
    d.due(nothing_out=True)
    assert not d.failed(OSError("still down"))
    d.retry_timer()  # the timer: wanted again, as the last one failed
    assert not d.retry_out and d.phase is SyncPhase.WANTED


def test_the_retry_timer_after_a_success_wants_nothing() -> None:
    d = driver([])
    d.want()
    d.due(nothing_out=True)
    d.failed(OSError("once"))
    d.want()
    assert isinstance(run(d, EMPTY, [], None, []), VenueSync)
    d.done()
    d.retry_timer()
    assert d.phase is SyncPhase.IDLE and d.synced


def test_a_sync_event_the_table_does_not_allow_raises() -> None:
    d = driver([])
    with pytest.raises(AssertionError):
        d.done()  # none under way
    d.want()
    with pytest.raises(IllegalTransition):
        d.failed(OSError("no sync runs"))  # wanted, not running: FAILED is not allowed


def test_a_sync_reaches_back_to_an_earlier_instances_oldest_unrecorded_fill() -> None:
    d = SyncDriver("recent", 100.0, 1000, retry=1.0, alert=lambda a: None, reach_back=500.0)
    d.want()
    d.due(nothing_out=True)
    assert d.answer(LedgerSummary(1000.0, {"paper": 1}, 1, "l")) == (
        "venue", GetVenueFills(500.0))
    assert isinstance(run_rest(d), VenueSync)
    d.done()
    assert d.reach_back is None


def run_rest(d: SyncDriver) -> Any:
    d.answer([])
    d.answer(VenueRecord("paper", 1, "venue.db"))
    return d.answer([])


def test_what_a_sync_found_is_alerted_and_lost_state_halts() -> None:
    """The ledger was empty while the venue had a fill of this bot, and refused another:
    recovered, refused and lost state are each alerted; trading is to halt."""
    alerts: list[Alert] = []
    d = driver(alerts)
    d.want()
    got, bad = (Fill(fid, "bv-1", "AAA/USDT", Side.BUY, Decimal(1), Decimal(100), at=10.0)
                for fid in ("f1", "f2"))
    assert run(d, EMPTY, [got, bad]) == ("ledger", RecordFills((got, bad)))
    assert d.answer(FillsRecorded((FillRecorded("f1", 1, False),), (("f2", "bad"),))) == (
        "venue", GetVenueRecord())
    assert d.answer(VenueRecord("paper", 2, "venue.db")) == ("venue", GetOpenOrders())
    sync = d.answer([])
    assert isinstance(sync, VenueSync)
    d.done()
    assert sync.recovered == [got] and sync.rejected == [("f2", "bad")] and sync.ledger_empty
    halt = d.report(sync)
    assert halt is not None and "the ledger ledger.db had no fill" in halt
    assert [a.key for a in alerts] == ["executor.venue_sync", "executor.lost_state",
                                       "executor.venue_sync_rejected"]


def test_a_syncs_stage_moves_only_along_its_table() -> None:
    assert set(STAGE_TABLE) == set(SyncStage)
    assert STAGE_TABLE[SyncStage.DONE] == frozenset()
    sync = VenueSync("recent", 86400.0, 1000)
    sync.start()
    with pytest.raises(TypeError):
        sync.answer([])  # a list for the ledger's summary
    sync.answer(EMPTY)
    sync.answer([])
    sync.answer(None)
    sync.answer([])
    assert sync.stage is SyncStage.DONE
    with pytest.raises(IllegalTransition):
        sync.answer([])  # nothing is asked any more
    with pytest.raises(IllegalTransition):
        sync.start()  # a sync runs once


def test_the_diagram_in_the_docs_draws_the_stage_table() -> None:
    """docs/state-machines.md ("The venue sync", its second diagram) draws every move of
    the stage table, no other."""
    page = (Path(__file__).parents[2] / "docs" / "state-machines.md").read_text()
    block = page.split("## The venue sync", 1)[1].split("```mermaid", 2)[2].split("```", 1)[0]
    drawn = {(SyncStage(a), SyncStage(b))
             for a, b in re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.M)}
    assert drawn == {(a, b) for a, targets in STAGE_TABLE.items() for b in targets}
