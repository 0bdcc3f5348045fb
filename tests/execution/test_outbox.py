"""The executor's outbox of fills to record (actors/execution/outbox.py), pure: tries,
failures and acknowledgements told to it, ``now`` given. No runtime."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.common.messages import Alert, Fill, InvalidFill, Side
from actors.execution.outbox import Outbox
from actors.portfolio.contract import FillRecorded, RecordFill
from supervisor.backoff import Backoff
from supervisor.errors import ActorNotRunning

pytestmark = pytest.mark.unit

DISK = OSError("disk I/O error")


def fill(fill_id: str, symbol: str = "AAA/USDT", side: Side = Side.BUY,
         at: float = 10.0) -> Fill:
    return Fill(fill_id, "bv-1", symbol, side, Decimal(1), Decimal(100), at=at)


class Ledger:
    """What the outbox sends, alerts and says changed, as a test sees it (``down``: an ask
    cannot be sent)."""

    def __init__(self) -> None:
        self.asked: list[tuple[RecordFill, str]] = []
        self.alerts: list[Alert] = []
        self.changes = 0
        self.down = False

    def ask(self, message: RecordFill, key: str) -> None:
        if self.down:
            raise ActorNotRunning("positions", "stopped")
        self.asked.append((message, key))

    def changed(self) -> None:
        self.changes += 1


def outbox(attempts: int = 3, ledger: Ledger | None = None) -> Outbox:
    ledger = ledger or Ledger()
    return Outbox(Backoff(initial=0.2, maximum=1.0, jitter=0.0), attempts, ask=ledger.ask,
                  alert=ledger.alerts.append, changed=ledger.changed)


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


def test_sending_answers_and_failures_go_through_the_ledgers_ask() -> None:
    ledger = Ledger()
    box = outbox(attempts=2, ledger=ledger)
    a, b = fill("a"), fill("b")
    box.send(a, now=0.0)
    assert ledger.asked == [(RecordFill(a), "a")] and box.recording == {"a": a}
    box.answered("a", FillRecorded("a", 1, duplicate=False))
    assert box.recorded == 1 and ledger.changes == 1 and not box.recording
    box.answered("a", FillRecorded("a", 1, duplicate=False))  # once only
    assert box.recorded == 1 and ledger.changes == 1
    ledger.down = True
    box.send(b, now=5.0)  # cannot be sent: a failed try, due after its backoff
    assert [u.failures for u in box] == [1] and box.next_due() == pytest.approx(5.2)
    assert ledger.changes == 2 and ledger.alerts == []
    ledger.down = False
    box.retry(box.due(5.2), now=5.2)
    assert ledger.asked[-1] == (RecordFill(b), "b") and box.next_due() is None
    box.not_answered("b", OSError("disk"), now=6.0)  # second failure: alerted
    assert [x.key for x in ledger.alerts] == ["executor.fill_unrecorded"]
    box.retry(box.stuck(), now=6.1)
    box.answered("b", FillRecorded("b", 2, duplicate=True))  # it had it: not counted
    assert box.recorded == 1 and len(box) == 0
