"""The executor's outbox of fills to record (actors/execution/outbox.py), pure: tries,
failures and acknowledgements told to it, ``now`` given. No runtime."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.common.messages import Fill, InvalidFill, Side
from actors.execution.outbox import Outbox
from supervisor.backoff import Backoff

pytestmark = pytest.mark.unit

DISK = OSError("disk I/O error")


def fill(fill_id: str, symbol: str = "AAA/USDT", side: Side = Side.BUY,
         at: float = 10.0) -> Fill:
    return Fill(fill_id, "bv-1", symbol, side, Decimal(1), Decimal(100), at=at)


def outbox(attempts: int = 3) -> Outbox:
    return Outbox(Backoff(initial=0.2, maximum=1.0, jitter=0.0), attempts)


def test_a_fill_acknowledged_on_its_first_try_leaves_the_outbox() -> None:
    box = outbox()
    a = fill("a")
    box.sent(a)
    assert box.recording == {"a": a} and len(box) == 0
    assert box.busy("AAA/USDT") and not box.busy("BBB/USDT")
    assert box.buys_writing() == [a] and not box.has_sale("AAA/USDT")
    assert box.acknowledged("a") and not box.acknowledged("a")
    assert box.oldest() is None and box.settled()


def test_a_failed_fill_is_due_again_after_its_backoff_on_the_clock_given() -> None:
    box = outbox()
    a = fill("a")
    box.sent(a)
    assert box.taken_back("a") == a
    failed = box.failed(a, DISK, now=100.0)
    assert not failed.refused and failed.failures == 1 and failed.alert is None
    assert len(box) == 1 and box.unsettled_symbols() == {"AAA/USDT"}
    assert box.next_due() == pytest.approx(100.2)
    assert box.due(100.1) == [] and box.due(100.2) == [a]
    box.sent(a)  # the retry is out: not due, not counted as due
    assert box.next_due() is None and box.due(1000.0) == []
    assert box.taken_back("a") == a
    box.failed(a, DISK, now=101.0)
    assert box.next_due() == pytest.approx(101.4)  # doubled
    assert box.resolving() and not box.settled()


def test_a_fill_is_alerted_once_after_record_attempts_failures() -> None:
    box = outbox(attempts=3)
    a = fill("a")
    alerts = [box.failed(a, DISK, now=float(t)).alert for t in range(5)]
    assert [x is not None for x in alerts] == [False, False, True, False, False]
    alert = alerts[2]
    assert alert is not None and alert.key == "executor.fill_unrecorded"
    assert alert.severity == "critical" and "a buy 1 AAA/USDT" in alert.body
    # past its first tries: settled for the stats, stuck for the next signal's retry
    assert box.settled() and box.stuck() == [a] and not box.resolving()
    assert not box.busy("AAA/USDT")
    assert [u.failures for u in box] == [5]


def test_an_invalid_fill_is_refused_for_good() -> None:
    box = outbox()
    a = fill("a")
    box.sent(a)
    box.taken_back("a")
    box.failed(a, DISK, now=1.0)
    failed = box.failed(a, InvalidFill("quantity must be positive"), now=2.0)
    assert failed.refused and failed.alert is not None
    assert failed.alert.key == "executor.fill_refused.a"
    assert box.refused == [a] and len(box) == 0 and box.due(100.0) == []
    assert box.oldest() is None


def test_the_oldest_unacknowledged_time_counts_fills_out_and_fills_failed() -> None:
    box = outbox()
    early, late, sale = fill("early", at=5.0), fill("late", at=50.0), fill(
        "sale", "BBB/USDT", Side.SELL, at=20.0)
    box.sent(late)
    box.sent(sale)
    assert box.oldest() == 20.0 and box.has_sale("BBB/USDT")
    box.failed(early, DISK, now=0.0)  # never sent, failed at once (no ledger)
    assert box.oldest() == 5.0
    box.acknowledged("early")
    box.acknowledged("sale")
    assert box.oldest() == 50.0
