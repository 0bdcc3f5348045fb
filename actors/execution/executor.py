"""The executor: turns signals and exit requests into orders, safely, without ever waiting.

The actor routes messages, owns its asks out (``PendingAsks``, one ``Tick`` timer for what
is due) and publishes its state (:mod:`~actors.execution.state`); the pieces it is made of
each own one job: :mod:`~actors.execution.decide` (skip, hold, check, refuse or place: pure,
sized by :mod:`~actors.execution.sizing`), :mod:`~actors.execution.lifecycle` (the orders, in
the book of :mod:`~actors.execution.orders`: sent, looked up when a reply is lost, never
resent, followed while open), :mod:`~actors.execution.checks` (duplicate checks),
:mod:`~actors.execution.outbox` (fills to the ledger, retried), :mod:`~actors.execution.held`
(signals waiting for an answer, in order, handed over), :mod:`~actors.execution.sync_driver`
(the venue sync of :mod:`~actors.execution.venue_sync`, run on start; no order until it has
succeeded) and :mod:`~actors.execution.stats`. The rules: docs/trading-bot.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from actors.common.messages import Fill
from actors.execution.contract import ExecutorStats, ExitRequest, GetExecutorStats, SkipReason
from actors.execution.decide import (
    Check,
    Decision,
    Hold,
    InFlight,
    Limits,
    Place,
    Refuse,
    Skip,
    decide,
)
from actors.execution.held import HeldSignals
from actors.execution.lifecycle import OrderLifecycle
from actors.execution.orders import OrderPhase, Request
from actors.execution.outbox import Outbox
from actors.execution.settings import Settings as ExecutorSettings
from actors.execution.state import (
    AskFor,
    ExecutorState,
    Handoff,
    Kind,
    RetrySync,
    SyncVenue,
    Tick,
)
from actors.execution.stats import StatsWaiters
from actors.execution.sync_driver import SyncDriver
from actors.execution.venue_sync import Step, VenueSync
from actors.market.contract import AwaitIdle
from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import BreakerGate, gate_or_unknown
from actors.strategies.contract import Signal
from supervisor import SupervisedActor
from supervisor.backoff import Backoff
from supervisor.context import Replied
from supervisor.errors import ActorNotRunning, AskTimeout, RuntimeErrorBase
from supervisor.pending_asks import PendingAsk, PendingAsks

log = logging.getLogger(__name__)

__all__ = ["ExecutorActor", "ExecutorState", "SyncVenue"]


# the decision (a test may give one that fails on purpose)
Decide = Callable[[Request, PortfolioSnapshot | None, BreakerGate, InFlight, Limits], Decision]


class ExecutorActor(SupervisedActor):
    """Routes signals, answers and timers to the pieces; owns the asks out, the counts of
    what it did, and the state it publishes."""

    accepts: ClassVar[tuple[type, ...]] = (
        Signal, ExitRequest, GetExecutorStats, SyncVenue, AwaitIdle)
    publishes: ClassVar[type] = ExecutorState
    Settings = ExecutorSettings

    def __init__(self, settings: ExecutorSettings | None = None, *,
                 decide: Decide = decide) -> None:
        super().__init__()
        s = self.settings = settings or ExecutorSettings()
        self._decide = decide
        self._limits = s.limits()
        retry = Backoff(initial=s.retry_initial, maximum=max(s.retry_max, s.retry_initial),
                        jitter=s.retry_initial / 2)
        self.outbox = Outbox(retry, s.record_attempts, changed=self.publish,
                             ask=lambda m, key: self.ask(s.positions, m, "record", key),
                             alert=lambda a: self.tell(s.alerts, a))
        self.desk = OrderLifecycle(s, retry, self.outbox, self)
        self.held = HeldSignals(s.max_held)
        self.sync = SyncDriver(s.venue_sync, s.venue_sync_lookback, s.venue_sync_batch,
                               retry=s.venue_sync_retry,
                               alert=lambda a: self.tell(self.settings.alerts, a))
        self.refused: Counter[str] = Counter()
        self.skipped: Counter[SkipReason] = Counter()
        self.recovered = 0
        self._asks: PendingAsks[AskFor] | None = None
        self._tick_at: float | None = None  # when the earliest Tick scheduled is due
        self._stats_waiters = StatsWaiters(s.order_timeout)
        self._held_published = 0  # the held signals' version last published
        self._stopping = False  # stopped for good: acting on the answers out, nothing new

    def on_start(self) -> None:
        self._asks = PendingAsks(self.ctx, self.settings.order_timeout)
        earlier = self.ctx.peek(self.ctx.name)
        if isinstance(earlier, ExecutorState):
            self.sync.reach_back = earlier.unrecorded_since
            self.desk.checked_through = earlier.checked_through
            self.desk.adopt(earlier.unresolved)
            self.desk.plans = {symbol: (coid, plan) for symbol, coid, plan in earlier.plans}
            if earlier.held:  # the predecessor's, handed over (or dropped): published anew
                self._held_published = -1
        if self.settings.venue_sync == "off":
            self.desk.checked_through = float("inf")  # nothing known of earlier processes
            return
        self.sync.want()
        self._progress()

    def on_stopping(self) -> bool:
        """Stopped for good: go on while an order or a fill is out, acting on their answers
        (the last fills reach the ledger), and send nothing new; the child's ``linger``
        bounds it. A restart does not wait: the replacement looks up what was out."""
        assert self._asks is not None
        self._stopping = True
        return any(a.what.kind in ("order", "record") for a in self._asks)

    def on_stop(self) -> None:
        placing, recording = len(self.desk.book.placing()), len(self.outbox.recording)
        if self._stopping and (placing or recording):
            log.warning("stopping with %d order(s) unanswered and %d fill(s) unacknowledged; "
                        "the next start's venue sync records what the venue filled",
                        placing, recording)
        self._end_waiters(None)
        self._pass_on_held()

    def on_failure(self, *exc_info: Any) -> None:
        self._end_waiters(exc_info[1] if isinstance(exc_info[1], Exception) else None)
        self._pass_on_held()

    def _pass_on_held(self) -> None:
        """This instance ends with signals held or being checked: a replacement gets them
        (one ``Handoff``, which it puts ahead of what it received itself); with none to
        follow, they are counted and logged as dropped."""
        waiting = self.held.pass_on(self.desk.checks.hand_over())
        if not waiting or (not self.ctx.stopping_for_good
                           and self.ctx.try_tell(self.ctx.name, Handoff(waiting))):
            return
        self.skipped[SkipReason.DROPPED_AT_STOP] += len(waiting)
        log.warning("stopping with %d signal(s) held; not acted on: %s", len(waiting),
                    ", ".join(r.signal_id for r in waiting[:5]))

    def on_receive(self, message: Any) -> Any:
        match message:
            case Replied():
                assert self._asks is not None
                ask = self._asks.take(message.token)
                if ask is not None:
                    self._answered(ask)
            case Signal() | ExitRequest():
                self._arrived(message)
            case Tick():
                self._tick(message.at)
            case Handoff():  # an earlier instance's: ahead of what this one has received
                self.held.handoff(message.requests)
            case GetExecutorStats(wait=False):
                return self._stats()  # as things stand: nothing moves for a read
            case GetExecutorStats() | AwaitIdle():  # AwaitIdle: the lockstep replay's
                reply = self.defer_reply()
                if reply is not None:
                    self._stats_waiters.add(reply, self.ctx.clock.now())
            case SyncVenue():
                self.sync.want(self.defer_reply())
            case RetrySync():
                self.sync.retry_timer()
            case _:
                return super().on_receive(message)
        self._progress()
        return None

    # -- the loop: what to do after every message ------------------------------------------
    def _progress(self) -> None:
        assert self._asks is not None
        if self._stopping:  # only the answers out are acted on now
            return
        self._sync_next(self.sync.due(not self._asks))
        if self.held and not self.sync.busy:
            if not self.sync.synced:  # the sync they waited for failed
                for _, request in self.held.take_all():
                    self._not_ready(request)
            else:
                self.held.release(self._consider)
        self._arm()
        if self._stats_waiters:  # all once nothing is out, held, or within its first tries
            self._stats_waiters.answer(
                not self._asks and not self.held and not self.sync.busy
                and self.outbox.settled(), self.ctx.clock.now(), self._stats)
        if self.held.version != self._held_published:
            self.publish()

    def _arm(self) -> None:
        """Schedule a ``Tick`` for the earliest deadline or retry due, unless one is (a
        timer's message is never lost to a full mailbox: see ``ActorContext.schedule``)."""
        assert self._asks is not None
        dues = [self._asks.next_deadline()]
        if not self.sync.busy:
            dues += [self.outbox.next_due(), self.desk.next_due()]
        dues.append(self._stats_waiters.next_due())
        at = min((d for d in dues if d is not None), default=None)
        if at is None or (self._tick_at is not None and self._tick_at <= at):
            return
        self._tick_at = at
        self.ctx.schedule(max(0.0, at - self.ctx.clock.now()), Tick(at))

    def _tick(self, at: float) -> None:
        assert self._asks is not None
        if self._tick_at == at:
            self._tick_at = None
        now = self.ctx.clock.now()
        for ask in self._asks.take_expired(now):
            if ask.future.done():  # answered in time, its Replied still to come (or lost)
                self._answered(ask)
            else:
                self._ask_failed(ask.what, AskTimeout(ask.target, type(ask.message).__name__,
                                                      self.settings.order_timeout))
        if self.sync.busy:  # the sync records the venue's fills itself: no retries
            return
        self.outbox.retry(self.outbox.due(now), now)
        self.desk.look_up_due(now)

    def _stats(self) -> ExecutorStats:
        d = self.desk
        return ExecutorStats(len(d.sent), d.filled, dict(self.refused), dict(self.skipped),
                             self.outbox.recorded, len(self.outbox), tuple(d.sent),
                             self.recovered, self.sync.synced, tuple(d.exits),
                             d.book.counts(), tuple(u.failures for u in self.outbox))

    def _end_waiters(self, exc: Exception | None) -> None:
        """This instance ends: answer whoever still waits on it."""
        self._stats_waiters.end(exc, self._stats)
        self.sync.fail_waiters(exc or ActorNotRunning(self.ctx.name, "stopped"))

    # -- signals: act now, hold, or skip ---------------------------------------------------
    def _arrived(self, request: Request) -> None:
        seq = self.held.arrive()
        if self.sync.busy:
            self._hold(seq, request)  # the ledger is being reconciled with the venue
            return
        if not self.sync.synced:
            self._not_ready(request)
            return
        unknown = self.desk.unknown()  # a signal came: retry the stuck fills and orders
        if self.outbox.unrecorded or unknown:  # now, so a ledger or exchange back is seen
            self.outbox.retry(self.outbox.stuck(), self.now())
            self.desk.look_up_unknown(unknown)
        if self.held and self.held.holds(request.symbol):
            self._hold(seq, request)  # behind an earlier one of its symbol
            return
        if self._consider(seq, request):
            self._hold(seq, request)

    def _consider(self, seq: int, request: Request) -> bool:
        """Act on ``request`` (arrival number ``seq``) or skip it; True when it must wait
        (hold it). Answers already in are read first, so what is decided does not depend
        on whether their ``Replied`` came before ``request`` or after."""
        assert self._asks is not None
        if self.outbox.recording or self.desk.book.count(OrderPhase.PLACING):
            for ask in self._asks.take_answered(lambda w: w.kind in ("order", "record")):
                self._answered(ask)
        if self.settings.serial and (self.outbox.recording
                                     or self.desk.book.count(OrderPhase.PLACING)):
            return True  # serial: only once nothing is out (held, decided on its answer)
        snap = self.ctx.peek(self.settings.positions)
        decision = self._decide(request, snap if isinstance(snap, PortfolioSnapshot) else None,
                                gate_or_unknown(self.ctx.peek(self.settings.breaker)),
                                self.desk, self._limits)
        match decision:
            case Hold():
                return True
            case Skip(reason):
                self.skip(reason)
            case Check(coid):
                self.desk.checks.check(coid, seq, request)
            case Refuse(state):
                self.refused[state.value] += 1
            case Place():
                self.desk.place(request, seq, decision)
        self.desk.checks.decided(request)  # found new by a duplicate check: decided now, either way
        return False

    def _hold(self, seq: int, request: Request) -> None:
        if not self.held.hold(seq, request):
            self.skip(SkipReason.TOO_MANY_HELD)

    def _not_ready(self, request: Request) -> None:
        """No order before the ledger has every venue fill (it sizes and guards orders)."""
        self.desk.checks.decided(request)
        self.skipped[SkipReason.NOT_RECONCILED] += 1
        log.warning("not acting on %s: the ledger is not reconciled with the venue yet",
                    request.signal_id)

    # -- answers ---------------------------------------------------------------------------
    def _answered(self, ask: PendingAsk[AskFor]) -> None:
        try:
            value = ask.future.get(timeout=0)
        except Exception as exc:
            self._ask_failed(ask.what, exc)
            return
        what = ask.what
        if what.kind == "record":
            self.outbox.answered(what.key, value)
        elif what.kind == "sync":
            try:
                step = self.sync.answer(value)
            except TypeError as exc:
                self._sync_failed(exc)
                return
            self._sync_next(step)
        else:
            self.desk.answered(what.kind, what.key, value)

    def _ask_failed(self, what: AskFor, exc: Exception) -> None:
        if what.kind == "record":
            self.outbox.not_answered(what.key, exc, self.now())
        elif what.kind == "sync":
            self._sync_failed(exc)
        else:
            self.desk.failed(what.kind, what.key, exc)

    # -- the state published ---------------------------------------------------------------
    def publish(self) -> None:
        """Publish the state a replacement starts from (and the held signals)."""
        oldest, since = self.outbox.oldest(), self.sync.reach_back
        if since is not None:
            oldest = since if oldest is None else min(oldest, since)
        checked = self.desk.checked_through
        if checked is not None:
            checked = max(checked, self.desk.acted)
        self._held_published = self.held.version
        self.ctx.publish(ExecutorState(oldest, checked, self.desk.book.unsettled_orders(),
                                       self.held.signal_ids(), tuple(
                                           (symbol, coid, plan) for symbol, (coid, plan)
                                           in self.desk.plans.items())))

    # -- venue sync ------------------------------------------------------------------------
    def _sync_next(self, step: Step | VenueSync | None) -> None:
        """Send the sync's next step; or it is done: the ledger has the venue's fills."""
        if isinstance(step, VenueSync):
            sync = self.sync.done()
            self.desk.synced(sync)
            self.recovered += len(sync.recovered)
            self.publish()
            halt = self.sync.report(sync)
            if halt is not None:
                self.desk.halting(halt)
            self.sync.answer_waiters(len(sync.recovered))
        elif step is not None:
            role, message = step
            try:
                self.ask(self.settings.positions if role == "ledger"
                         else self.settings.exchange, message, "sync")
            except RuntimeErrorBase as exc:
                self._sync_failed(exc)

    def _sync_failed(self, exc: Exception) -> None:
        if self.sync.failed(exc):  # a SyncVenue since gets its own try
            self.ctx.schedule(self.settings.venue_sync_retry, RetrySync())

    # -- Effects: what the pieces have the actor do ----------------------------------------
    def ask(self, target: str, message: Any, kind: Kind, key: str = "") -> None:
        assert self._asks is not None
        self._asks.send(target, message, AskFor(kind, key))

    def tell(self, target: str, message: Any) -> None:
        self.ctx.try_tell(target, message)

    def now(self) -> float:
        return self.ctx.clock.now()

    def record(self, fill: Fill) -> None:
        self.outbox.send(fill, self.now())

    def syncing(self) -> bool:
        return self.sync.busy

    def skip(self, reason: SkipReason) -> None:
        self.skipped[reason] += 1

    def again(self, seq: int, request: Request) -> None:
        self.held.reinsert(seq, request)
