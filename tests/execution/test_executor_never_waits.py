"""The executor never waits: it shares the pipeline's thread with the exchange (as shipped)
and, while an answer it depends on is out, its thread-mates keep running; a fill the
ledger does not acknowledge is retried on the runtime's clock, alerted after
``record_attempts``, and tried again when the next signal comes.

Real actors throughout: the executor, the breaker, the paper exchange and the position
actor (made slow or failing on purpose), a thread-mate that answers asks, and the
runtime's shared thread. The retry test drives a :class:`ManualClock`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from actors.common.messages import Alert
from actors.execution.contract import ExecutorStats, GetExecutorStats, SkipReason, client_order_id
from actors.portfolio.contract import GetPortfolio, PortfolioSnapshot, RecordFill
from actors.portfolio.positions import PositionActor
from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec
from supervisor.clock import ManualClock
from supervisor.context import Replied
from supervisor.pending_asks import PendingAsks
from tests.support.bot_helpers import wait_until
from tests.support.executor_helpers import (
    WAIT,
    HeldPositions,
    bars,
    buy_signal,
    held,
    hold_a_sale_behind_its_entry,
    placed,
    shared_tree,
    sold_what_was_bought,
    stats_now,
)
from tests.support.fixture_actors import Echo


class FailingPositions(PositionActor):
    """The position actor, answering its first ``failures`` RecordFill asks with an error
    (a disk that fails, then comes back); the actor itself keeps running."""

    def __init__(self, settings: PositionActor.Settings, failures: int) -> None:
        super().__init__(settings)
        self.failures = failures

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RecordFill) and self.failures > 0:
            self.failures -= 1
            reply = self.defer_reply()
            if reply is not None:
                error = OSError("disk I/O error (on purpose)")
                reply.set_exception((OSError, error, None))
            return None
        return super().on_receive(message)




def test_the_executor_shares_the_exchanges_thread_and_never_holds_it(tmp_path: Path) -> None:
    """AAA's entry fill is held at the ledger; a sale of AAA comes meanwhile. The executor
    holds the sale (it must sell what was bought), and the shared thread stays free: the
    thread-mate and the exchange answer while the ledger is still held. Released, the sale
    sells the entry's quantity. After a restart, the venue sync and the duplicate check
    ask the exchange on the same thread (a blocking ask there could never be answered):
    the entry told again is found in the ledger and not sent."""
    release, written = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, lambda s: HeldPositions(s, release, written))
    try:
        buy, sell = hold_a_sale_behind_its_entry(rt, written)
        assert rt.ask("mate", "ping", timeout=WAIT) == "pong"  # the thread is free
        assert placed(rt, sell) is None  # the exchange answers too: the sale is not out
        assert held(rt) == (sell.signal_id,)
        release.set()
        sold_what_was_bought(rt, buy, sell)
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.fills_recorded == 2 and stats.unrecorded == 0, stats

        rt.restart_child("executor")
        rt.tell("executor", buy)  # an earlier instance sent it: checked, not sent again
        stats = rt.ask("executor", GetExecutorStats())
        assert stats.venue_synced and stats.recovered == 0, stats
        assert stats.skipped.get(SkipReason.IN_LEDGER) == 1, stats.skipped
        assert stats.sent == ()
    finally:
        release.set()
        rt.stop()


def _failures(rt: Runtime) -> list[int]:
    return list(stats_now(rt).record_failures)


def test_an_unacknowledged_fill_is_retried_on_the_clock_then_alerted_then_tried_per_signal(
    tmp_path: Path,
) -> None:
    """The ledger fails AAA's fill three times (``record_attempts``: 3). Retries run on the
    runtime's clock (here the test's), not in a sleeping handler; an entry of another
    symbol that comes meanwhile is held (it sizes from the whole account). After the third
    failure the fill is alerted, and the held entry is skipped: no new risk while a fill
    is missing from the ledger. The ledger is back: the next signal retries the fill at
    once, and its entry goes out once the fill is in."""
    clock = ManualClock()
    rt = shared_tree(tmp_path, lambda s: FailingPositions(s, failures=3), clock=clock,
               record_attempts=3, retry_initial=0.2, retry_max=1.0)
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50), ("CCC/USDT", 20)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        wait_until(lambda: _failures(rt) == [1], timeout=WAIT, what="the first failure")
        rt.tell("executor", buy_signal("BBB/USDT", 50.0))
        wait_until(lambda: len(held(rt)) == 1, timeout=WAIT, what="BBB held")
        assert _failures(rt) == [1]  # no retry before its time
        clock.advance(0.5)  # first retry: 0.2 s (+ up to 0.1 jitter)
        wait_until(lambda: _failures(rt) == [2], timeout=WAIT, what="the second failure")
        clock.advance(1.0)  # second retry: 0.4 s (+ jitter)
        wait_until(lambda: _failures(rt) == [3], timeout=WAIT, what="the third failure")
        skipped = wait_until(
            lambda: stats_now(rt).skipped.get(SkipReason.UNSETTLED),
            timeout=WAIT, what="BBB skipped")
        assert skipped == 1 and held(rt) == ()
        alerts = [a for a in rt.ask("alerts", "get") if isinstance(a, Alert)]
        assert [a.key for a in alerts if a.severity == "critical"] == \
            ["executor.fill_unrecorded"]

        rt.tell("executor", buy_signal("CCC/USDT", 20.0))  # the ledger is back by now
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.unrecorded == 0 and stats.fills_recorded == 2, stats
        assert [coid for coid, *_ in stats.sent] == [
            client_order_id(buy_signal(symbol, 1.0).signal_id)
            for symbol in ("AAA/USDT", "CCC/USDT")]
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
        assert set(snap.positions) == {"AAA/USDT", "CCC/USDT"}
    finally:
        rt.stop()


# -- PendingAsks, in a real actor -------------------------------------------------------------
class Silent(SupervisedActor):
    """Takes over every ask's reply and never answers it (a venue that lost it)."""

    def on_receive(self, message: Any) -> Any:
        self.defer_reply()
        return None


class Asker(SupervisedActor):
    """Asks without waiting through a PendingAsks (timeout 1 s) and notes what it heard."""

    def on_start(self) -> None:
        self.asks: PendingAsks[str] = PendingAsks(self.ctx, timeout=1.0)
        self.heard: list[str | None] = []

    def on_receive(self, message: Any) -> Any:
        match message:
            case Replied():
                ask = self.asks.take(message.token)
                self.heard.append(None if ask is None else ask.what)
            case ("ask", target, what):
                self.asks.send(target, "ping", what)
            case "expired":
                return [a.what for a in self.asks.take_expired(self.ctx.clock.now())]
            case "next":
                return self.asks.next_deadline()
            case "heard":
                return list(self.heard)
        return None


def test_pending_asks_match_replies_and_expire_the_unanswered_oldest_first() -> None:
    clock = ManualClock()
    rt = Runtime(ask_timeout=WAIT, clock=clock)
    rt.start(SupervisorSpec(children=(
        ChildSpec("echo", factory=lambda: Echo(Echo.Settings())),
        ChildSpec("silent", factory=Silent),
        ChildSpec("asker", factory=Asker),
    )))
    try:
        start = clock.now()
        rt.tell("asker", ("ask", "silent", "lost-1"))
        assert rt.ask("asker", "next") == start + 1.0  # (handled in order: sent by now)
        clock.advance(0.5)
        rt.tell("asker", ("ask", "echo", "answered"))
        rt.tell("asker", ("ask", "silent", "lost-2"))
        wait_until(lambda: rt.ask("asker", "heard") == ["answered"], timeout=WAIT,
                   what="the echo's reply")
        assert rt.ask("asker", "next") == start + 1.0  # still the oldest ask out
        assert rt.ask("asker", "expired") == []
        clock.advance(0.6)
        assert rt.ask("asker", "expired") == ["lost-1"]
        assert rt.ask("asker", "next") == start + 1.5
        clock.advance(1.0)
        assert rt.ask("asker", "expired") == ["lost-2"]
        assert rt.ask("asker", "next") is None
        rt.tell("asker", Replied((99, 1)))  # not one of its asks (an earlier instance's)
        assert rt.ask("asker", "heard") == ["answered", None]
    finally:
        rt.stop()
