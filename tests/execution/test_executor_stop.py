"""The executor never waits, stopping included: a stop for good lingers on its own turns
while an order is out (its thread-mates go on), then records the order's fills; a restart
does not wait at all, and the replacement takes the order over through the published
state (looked up by client order id, never sent twice)."""

from __future__ import annotations

import threading
from pathlib import Path

from actors.execution.contract import ExecutorStats, GetExecutorStats
from actors.execution.orders import UNRESOLVED, OrderPhase
from actors.portfolio.contract import GetLedgerSummary
from actors.portfolio.positions import PositionActor
from actors.risk.contract import BreakerStatus, GetBreakerStatus
from actors.venues.contract import GetVenueRecord
from tests.support.bot_helpers import (
    assert_ledger_matches_venue,
    ledger_fills,
    venue_fills,
    wait_until,
)
from tests.support.executor_helpers import (
    WAIT,
    HeldExchange,
    bars,
    buy_signal,
    orders_in,
    placing,
    shared_tree,
)


def test_a_stop_for_good_lingers_on_its_own_turns_and_records_the_last_fill(
        tmp_path: Path) -> None:
    """An entry is at the exchange (held there) when the runtime stops. The executor's stop
    lingers for the answer without holding the shared thread: the breaker, its thread-mate,
    answers while the order is still out. Released, the order fills, and the fill is in
    the ledger when the stop ends (ledger = venue)."""
    release, holding = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, PositionActor, exchange_thread=None, order_timeout=30,
                     exchange=lambda s: HeldExchange(s, release, holding))
    stopper = threading.Thread(target=rt.stop, name="test-stopper", daemon=True)
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        assert holding.wait(WAIT), "the order never reached the exchange"
        wait_until(lambda: placing(rt), timeout=WAIT, what="the order placing")
        stopper.start()
        wait_until(lambda: not rt.try_tell("executor", GetExecutorStats()), timeout=WAIT,
                   what="the executor's stop to begin")
        status = rt.ask("breaker", GetBreakerStatus(), timeout=WAIT)
        assert isinstance(status, BreakerStatus)  # the shared thread serves it meanwhile
        release.set()
        stopper.join(WAIT)
        assert not stopper.is_alive(), "the stop did not end"
    finally:
        release.set()
        rt.stop()
    venue = venue_fills(tmp_path / "venue.db")
    assert len(venue) == 1
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"), venue)


def test_a_restart_hands_the_order_out_to_the_replacement(tmp_path: Path) -> None:
    """The executor restarts while its entry is at the exchange (held there): the restart
    does not wait for the answer. The replacement finds the order in the published state,
    looks it up once released, records its fill, and sends nothing twice."""
    release, holding = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, PositionActor, exchange_thread=None, order_timeout=30,
                     exchange=lambda s: HeldExchange(s, release, holding))
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100)))
        signal = buy_signal("AAA/USDT", 100.0)
        rt.tell("executor", signal)
        assert holding.wait(WAIT), "the order never reached the exchange"
        rt.restart_child("executor")  # returns with the order still held at the exchange
        assert not release.is_set()
        # the published state lists it: whichever instance runs looks it up
        out = orders_in(rt, OrderPhase.PLACING, *UNRESOLVED)
        assert [o.symbol for o in out] == ["AAA/USDT"]
        release.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.sent == () and stats.fills_recorded + stats.recovered == 1, stats
        rt.tell("executor", signal)  # told again: the replacement does not send it twice
        stats = rt.ask("executor", GetExecutorStats())
        assert stats.sent == (), stats
        # the ledger and the venue hold the same fills: their digests, computed apart, agree
        summary = rt.ask("positions", GetLedgerSummary())
        record = rt.ask("exchange", GetVenueRecord())
        assert record.digest is not None and summary.digests == {"paper": record.digest}
    finally:
        release.set()
        rt.stop()
    assert_ledger_matches_venue(ledger_fills(tmp_path / "ledger.db"),
                                venue_fills(tmp_path / "venue.db"))
