"""The executor's timing without waiting, where messages race: a timer tick refused by a
full mailbox, an answer that came in time but is read after its deadline, a failed write
read before or after the next signal, lookups that keep failing while a venue sync waits
to start, an order the venue reports still open, and signals held when the executor
crashes.

Real actors throughout (the executor, the breaker, the position actor, the paper exchange
or a stand-in venue, a thread-mate that can hold the shared thread); time is the test's
:class:`ManualClock` where deadlines matter. Races are made, not hoped for: the test holds
the shared thread (``Mate``) while it lines messages up in the executor's mailbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka

from actors.common.messages import Fill, Side
from actors.execution.contract import (
    ExecutorStats,
    ExitRequest,
    GetExecutorStats,
    SkipReason,
    client_order_id,
)
from actors.execution.decide import HOLD, Decision, decide
from actors.execution.executor import ExecutorActor, SyncVenue
from actors.execution.orders import OrderPhase
from actors.portfolio.contract import GetPortfolio, PortfolioSnapshot, RecordFill
from actors.portfolio.positions import PositionActor
from actors.strategies.contract import Signal
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    LookupOrder,
    OpenOrder,
    OrderResult,
    PlaceOrder,
)
from actors.venues.paper_exchange import PaperExchange
from supervisor import EventKind, EventRecorder, SupervisedActor
from supervisor.clock import ManualClock
from supervisor.errors import MailboxFull
from tests.support.bot_helpers import attr, crash, venue_fills, wait_until
from tests.support.executor_helpers import (
    WAIT,
    HeldExchange,
    HeldPositions,
    Mate,
    bars,
    buy_signal,
    held,
    hold_a_sale_behind_its_entry,
    placed,
    placing,
    shared_tree,
    sold_what_was_bought,
    stats_now,
    unresolved,
    wait_held,
)


class Unanswering(PaperExchange):
    """The paper exchange, never answering an order (its reply lost, the order with it)."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PlaceOrder):
            self.defer_reply()
            return None
        return super().on_receive(message)


class Hanging(PaperExchange):
    """The paper exchange, answering neither orders nor lookups (a venue that hangs);
    its fill listing (the venue sync's) still answers."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PlaceOrder | LookupOrder):
            self.defer_reply()
            return None
        return super().on_receive(message)


class CountingHeldExchange(HeldExchange):
    """A held exchange (orders wait for ``release``) that counts the lookups it gets."""

    def __init__(self, settings: PaperExchange.Settings, release: threading.Event,
                 holding: threading.Event) -> None:
        super().__init__(settings, release, holding)
        self.lookups = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LookupOrder):
            self.lookups += 1
        return super().on_receive(message)


class FailOnceHeld(PositionActor):
    """The position actor, failing the first fill once ``release`` is set (a write that
    takes a while, then fails); ``failed`` is set once that answer is out."""

    def __init__(self, settings: PositionActor.Settings, release: threading.Event,
                 holding: threading.Event, failed: threading.Event) -> None:
        super().__init__(settings)
        self.release, self.holding, self.failed = release, holding, failed

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RecordFill) and not self.failed.is_set():
            self.holding.set()
            assert self.release.wait(WAIT), "the test never released the ledger"
            reply = self.defer_reply()
            if reply is not None:
                error = OSError("disk I/O error (on purpose)")
                reply.set_exception((OSError, error, None))
            self.failed.set()
            return None
        return super().on_receive(message)


@dataclass
class VenueBook:
    """What the stand-in venue has done: its orders and their two halves. The test keeps
    it, so it outlives a runtime, as a real venue outlives the process."""

    orders: dict[str, PlaceOrder] = field(default_factory=dict)
    parts: dict[str, tuple[Fill, Fill]] = field(default_factory=dict)


class PartialVenue(SupervisedActor):
    """Plays a live venue whose market orders fill in two halves: the second only once
    ``complete`` is set. Until then an order is answered, looked up and listed
    (``GetOpenOrders``) as ``open`` with the first half (as the ccxt exchange answers an
    order still open after its polls); then as ``filled`` with both. Its fill listing (the
    venue sync's) says the same."""

    def __init__(self, complete: threading.Event, book: VenueBook) -> None:
        super().__init__()
        self.complete = complete
        self.book = book
        self.lookups = 0

    def _result(self, coid: str) -> OrderResult:
        if self.complete.is_set():
            return OrderResult(coid, "filled", self.book.parts[coid])
        return OrderResult(coid, "open", self.book.parts[coid][:1], "still open")

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlaceOrder():
                half = message.quantity / 2
                coid = message.client_order_id
                first, second = (Fill(f"{coid}-{n}", coid, message.symbol, message.side,
                                      half, Decimal("100"), Decimal(0), 60.0 + n)
                                 for n in (1, 2))
                self.book.orders[coid] = message
                self.book.parts[coid] = (first, second)
                return self._result(coid)
            case LookupOrder(coid):
                self.lookups += 1
                return self._result(coid) if coid in self.book.parts else None
            case GetVenueFills():
                return [f for coid in self.book.parts for f in self._result(coid).fills]
            case GetOpenOrders():
                if self.complete.is_set():
                    return ()
                return tuple(OpenOrder(order, self.book.parts[coid][:1])
                             for coid, order in self.book.orders.items())
        return None


POISON = "test:AAA/USDT:120:sell"


def poisoned(raised: threading.Event) -> Callable[[ExecutorActor.Settings], ExecutorActor]:
    """The executor, whose decision raises (once) when it would act on ``POISON`` (a bug
    in a decision); ``raised`` is set then."""

    def decide_or_raise(request: Signal | ExitRequest, *rest: Any) -> Decision:
        decision = decide(request, *rest)
        if request.signal_id == POISON and decision != HOLD and not raised.is_set():
            raised.set()
            raise RuntimeError("a bug in a decision (on purpose)")
        return decision

    return lambda settings: ExecutorActor(settings, decide=decide_or_raise)


def _synced(rt: Any) -> None:
    wait_until(lambda: stats_now(rt).venue_synced, timeout=WAIT, what="the venue sync")


def test_a_tick_refused_by_a_full_mailbox_is_told_again(tmp_path: Path) -> None:
    """An order is never answered. While the shared thread is held, repeats of its
    signal fill the executor's mailbox (limit 3), so the timer's tick at the order's
    deadline is refused; it is told again once there is room. The order is looked up
    (never placed), and the repeats are let go."""
    clock = ManualClock()
    blocked, unblock = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, PositionActor, exchange=Unanswering, clock=clock,
                     mate=Mate(blocked, unblock), executor_spec={"mailbox_limit": 3})
    try:
        _synced(rt)
        rt.tell("exchange", bars(("AAA/USDT", 100)))
        buy = buy_signal("AAA/USDT", 100.0)
        rt.tell("executor", buy)
        wait_until(lambda: len(placing(rt)) == 1, timeout=WAIT,
                   what="the order out")
        rt.tell("mate", "block")
        assert blocked.wait(WAIT)
        told = 0
        while rt.try_tell("executor", buy):
            told += 1
        assert told == 3
        dead = rt.dead_letters
        clock.advance(7.0)  # past the order's deadline: the tick's tell is refused...
        assert rt.dead_letters == dead  # ...and kept to be told again
        unblock.set()

        def looked_up() -> bool:
            clock.advance(0.5)
            try:
                return not placing(rt) and not held(rt)
            except MailboxFull:  # still taking in what was lined up
                return False

        wait_until(looked_up, timeout=WAIT, what="the order looked up")
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert len(stats.sent) == 1 and stats.skipped.get(SkipReason.ALREADY_HANDLED) == 3, stats
        assert unresolved(rt) == set()  # the venue never had it
        assert stats.orders_by_phase == {OrderPhase.NOT_PLACED: 1}, stats
    finally:
        unblock.set()
        rt.stop()


def test_an_answer_in_before_its_deadline_is_not_taken_for_a_timeout(tmp_path: Path) -> None:
    """Two orders, sent a second apart, are answered after the first one's deadline has
    queued a tick but before the second's; the executor reads that tick only after both
    deadlines (the shared thread was held). Both answers came: nothing is looked up."""
    clock = ManualClock()
    release, holding = threading.Event(), threading.Event()
    blocked, unblock = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, PositionActor,
                     exchange=lambda s: CountingHeldExchange(s, release, holding),
                     exchange_thread=None, clock=clock, mate=Mate(blocked, unblock))
    try:
        _synced(rt)
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        assert holding.wait(WAIT), "AAA's order never reached the exchange"
        clock.advance(1.0)
        rt.tell("executor", buy_signal("BBB/USDT", 50.0))
        wait_until(lambda: len(placing(rt)) == 2, timeout=WAIT,
                   what="both orders out")
        rt.tell("mate", "block")
        assert blocked.wait(WAIT)
        clock.advance(4.5)  # AAA's deadline: its tick waits behind the held thread
        release.set()  # both orders filled and answered, after that tick
        wait_until(lambda: len(venue_fills(tmp_path / "venue.db")) == 2, timeout=WAIT,
                   what="both fills at the venue")
        clock.advance(1.0)  # BBB's deadline passes too before the tick is read
        unblock.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.filled == 2 and stats.fills_recorded == 2, stats
        assert attr(rt, "exchange", "lookups") == 0
    finally:
        release.set()
        unblock.set()
        rt.stop()


def test_an_entry_waits_for_a_failed_fill_even_when_the_failure_is_read_after_it(
    tmp_path: Path,
) -> None:
    """AAA's fill fails at the ledger; BBB's entry is queued before that failure's notice.
    The executor reads answers already in before it decides, so BBB waits for AAA's retry
    (as it would had the notice come first) and is sent once AAA's fill is in."""
    release, holding, failed = threading.Event(), threading.Event(), threading.Event()
    blocked, unblock = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, lambda s: FailOnceHeld(s, release, holding, failed),
                     mate=Mate(blocked, unblock))
    try:
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        assert holding.wait(WAIT), "AAA's fill never reached the ledger"
        rt.tell("mate", "block")
        assert blocked.wait(WAIT)
        bbb = buy_signal("BBB/USDT", 50.0)
        rt.tell("executor", bbb)  # queued first...
        release.set()  # ...then the failure's notice
        assert failed.wait(WAIT)
        unblock.set()
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert SkipReason.UNSETTLED not in stats.skipped, stats.skipped
        assert stats.fills_recorded == 2 and stats.unrecorded == 0, stats
        assert placed(rt, bbb) is not None
    finally:
        release.set()
        unblock.set()
        rt.stop()


def test_a_venue_sync_starts_while_lookups_keep_failing(tmp_path: Path) -> None:
    """The venue answers neither orders nor lookups. Two orders go out 2 s apart, so
    their lookups' retries would keep an ask out at every moment. A venue sync asked for
    meanwhile still starts (no retries while it waits) and answers."""
    clock = ManualClock()
    rt = shared_tree(tmp_path, PositionActor, exchange=Hanging, clock=clock)
    try:
        _synced(rt)
        rt.tell("exchange", bars(("AAA/USDT", 100), ("BBB/USDT", 50)))
        rt.tell("executor", buy_signal("AAA/USDT", 100.0))
        wait_until(lambda: len(placing(rt)) == 1, timeout=WAIT,
                   what="AAA out")
        clock.advance(2.2)
        rt.tell("executor", buy_signal("BBB/USDT", 50.0))
        wait_until(lambda: len(placing(rt)) == 2, timeout=WAIT,
                   what="BBB out")
        sync: pykka.Future[Any] = rt.ask_future("executor", SyncVenue())

        def answered() -> bool:
            clock.advance(0.5)
            return sync.done()

        wait_until(answered, timeout=WAIT, what="the venue sync")
        assert sync.get(timeout=0) == 0
        assert len(unresolved(rt)) == 2  # still unknown: no new risk
    finally:
        rt.stop()


def _partial_venue() -> tuple[ManualClock, threading.Event, VenueBook, Any]:
    """The test's clock, the event that lets the venue fill the rest, the venue's book,
    and a factory of partial venues over that book (one per runtime)."""
    complete, book = threading.Event(), VenueBook()

    def factory(_: PaperExchange.Settings) -> PartialVenue:
        return PartialVenue(complete, book)

    return ManualClock(), complete, book, factory


def _buy_aaa_half_filled(rt: Any) -> None:
    """Once synced, buy AAA at the partial venue; wait for its first half in the ledger."""
    _synced(rt)
    rt.tell("executor", buy_signal("AAA/USDT", 100.0))
    wait_until(lambda: stats_now(rt).fills_recorded == 1, timeout=WAIT,
               what="the first half in the ledger")


def _wait_skipped_unsettled(rt: Any) -> None:
    wait_until(lambda: stats_now(rt).skipped.get(SkipReason.UNSETTLED) == 1, timeout=WAIT,
               what="the skip")


def _venue_completes(rt: Any, clock: ManualClock, complete: threading.Event) -> None:
    """The venue fills the rest; the clock moves until the executor has seen it done."""
    complete.set()

    def done() -> bool:
        clock.advance(0.5)
        return unresolved(rt) == set()

    wait_until(done, timeout=WAIT, what="the order done")


def _assert_whole_position(rt: Any, book: VenueBook) -> None:
    """The ledger holds both halves of the venue's one order."""
    snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio())
    (parts,) = book.parts.values()
    assert snap.positions["AAA/USDT"].quantity == parts[0].quantity + parts[1].quantity


def test_an_order_still_open_records_its_fills_and_is_looked_up_until_done(
    tmp_path: Path,
) -> None:
    """The venue answers AAA's order "open" with its first half. That half goes to the
    ledger at once; the order is looked up on the clock while it stays open, and no entry
    goes out meanwhile (BBB is skipped). Once the venue has filled the rest, the next
    lookup says so and the second half is recorded, no fill twice."""
    clock, complete, book, factory = _partial_venue()
    rt = shared_tree(tmp_path, PositionActor, exchange=factory, clock=clock)
    try:
        _buy_aaa_half_filled(rt)
        assert unresolved(rt) == set(book.parts)
        rt.tell("executor", buy_signal("BBB/USDT", 50.0))  # AAA is open: no new risk
        _wait_skipped_unsettled(rt)

        def looked_up_again() -> bool:
            clock.advance(0.5)
            return attr(rt, "exchange", "lookups") >= 2

        wait_until(looked_up_again, timeout=WAIT, what="lookups while open")
        assert stats_now(rt).fills_recorded == 1
        complete.set()

        def done() -> bool:
            clock.advance(0.5)
            return stats_now(rt).fills_recorded == 2

        wait_until(done, timeout=WAIT, what="the second half in the ledger")
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.filled == 1 and stats.unrecorded == 0 and len(stats.sent) == 1, stats
        assert unresolved(rt) == set() and stats.orders_by_phase == {OrderPhase.FILLED: 1}
        _assert_whole_position(rt, book)
    finally:
        rt.stop()


def test_an_order_still_open_is_followed_by_the_executors_replacement(
    tmp_path: Path,
) -> None:
    """AAA's order is open with its first half when the executor crashes. The replacement
    takes the order over from the state its predecessor published: no entry goes out
    while it is open, and the second half reaches the ledger once the venue fills it."""
    clock, complete, book, factory = _partial_venue()
    rt = shared_tree(tmp_path, PositionActor, exchange=factory, clock=clock)
    recorder = EventRecorder(rt.events)
    try:
        _buy_aaa_half_filled(rt)
        crash(rt, "executor")

        def restarted() -> bool:
            clock.advance(0.2)  # the restart's backoff runs on the test's clock
            return bool(recorder.of(EventKind.RESTARTED, "executor"))

        wait_until(restarted, timeout=WAIT, what="the executor's restart")
        _synced(rt)
        assert unresolved(rt) == set(book.parts)
        rt.tell("exchange", bars(("BBB/USDT", 50)))
        bbb = Signal("test:BBB/USDT:120:buy", "test", "BBB/USDT", Side.BUY, 50.0, 120.0,
                     "a test")
        rt.tell("executor", bbb)
        _wait_skipped_unsettled(rt)
        _venue_completes(rt, clock, complete)
        rt.ask("executor", GetExecutorStats())  # every fill acknowledged
        _assert_whole_position(rt, book)
    finally:
        recorder.close()
        rt.stop()


def test_an_order_an_earlier_process_left_open_is_followed(tmp_path: Path) -> None:
    """AAA's order is open with its first half when the whole tree stops (a new process
    knows nothing of it). The new executor's venue sync asks the venue for its open
    orders and follows AAA's: no entry while it is open, the second half recorded once
    the venue fills it."""
    clock, complete, book, factory = _partial_venue()
    rt = shared_tree(tmp_path, PositionActor, exchange=factory, clock=clock)
    try:
        _buy_aaa_half_filled(rt)
    finally:
        rt.stop()
    rt = shared_tree(tmp_path, PositionActor, exchange=factory, clock=clock)
    try:
        _synced(rt)
        assert unresolved(rt) == set(book.orders)
        rt.tell("executor", buy_signal("BBB/USDT", 50.0))
        _wait_skipped_unsettled(rt)
        _venue_completes(rt, clock, complete)
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert stats.fills_recorded == 1 and stats.sent == (), stats  # the second half
        _assert_whole_position(rt, book)
    finally:
        rt.stop()


def test_signals_held_when_the_executor_crashes_go_to_its_replacement(tmp_path: Path) -> None:
    """A sale of AAA is held for AAA's entry fill (held at the ledger) when the executor
    crashes. The replacement gets the sale, and sells what was bought once the fill is in."""
    release, written = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, lambda s: HeldPositions(s, release, written))
    recorder = EventRecorder(rt.events)
    try:
        buy, sell = hold_a_sale_behind_its_entry(rt, written)
        crash(rt, "executor")
        recorder.wait_for(EventKind.RESTARTED, "executor", timeout=WAIT)
        release.set()
        sold_what_was_bought(rt, buy, sell)
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert [coid for coid, *_ in stats.sent] == [client_order_id(sell.signal_id)]
    finally:
        release.set()
        recorder.close()
        rt.stop()


def test_a_signal_whose_decision_raises_costs_only_itself(tmp_path: Path) -> None:
    """A sale and a stop-loss exit of AAA are held for AAA's entry fill. When the fill is
    in, deciding the sale raises (a bug) and the executor crashes: the exit, held behind
    it, goes to the replacement and sells."""
    raised = threading.Event()
    release, written = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, lambda s: HeldPositions(s, release, written),
                     executor=poisoned(raised))
    recorder = EventRecorder(rt.events)
    try:
        buy, sell = hold_a_sale_behind_its_entry(rt, written)
        stop = ExitRequest("exit:stop_loss:AAA/USDT:180", "AAA/USDT", "stop_loss", 90.0, 180.0)
        rt.tell("executor", stop)
        wait_held(rt, sell, stop)
        release.set()
        assert raised.wait(WAIT)
        recorder.wait_for(EventKind.RESTARTED, "executor", timeout=WAIT)
        sold_what_was_bought(rt, buy, stop)
        assert placed(rt, sell) is None  # the one that raised is not tried again
    finally:
        release.set()
        recorder.close()
        rt.stop()


def test_held_signals_keep_their_order_across_a_restart(tmp_path: Path) -> None:
    """A sale of AAA (bar 120) is held when the executor crashes, and a new buy of AAA
    (bar 180) is already queued behind the crash. The replacement acts on them in the
    order they came: it sells, then buys again (it ends long, as the strategy meant)."""
    release, written = threading.Event(), threading.Event()
    blocked, unblock = threading.Event(), threading.Event()
    rt = shared_tree(tmp_path, lambda s: HeldPositions(s, release, written),
                     mate=Mate(blocked, unblock))
    recorder = EventRecorder(rt.events)
    try:
        buy, sell = hold_a_sale_behind_its_entry(rt, written)
        rt.tell("mate", "block")
        assert blocked.wait(WAIT)
        crash(rt, "executor")
        again = Signal("test:AAA/USDT:180:buy", "test", "AAA/USDT", Side.BUY, 100.0, 180.0,
                       "a test")
        rt.tell("executor", again)  # queued before the replacement is started
        unblock.set()
        recorder.wait_for(EventKind.RESTARTED, "executor", timeout=WAIT)
        release.set()
        sold_what_was_bought(rt, buy, sell)
        wait_until(lambda: placed(rt, again), timeout=WAIT, what="the buy again")
        stats: ExecutorStats = rt.ask("executor", GetExecutorStats())
        assert SkipReason.ALREADY_HOLDING not in stats.skipped, stats.skipped
    finally:
        release.set()
        unblock.set()
        recorder.close()
        rt.stop()
