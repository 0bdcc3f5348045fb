"""The executor: turns signals and exit requests into orders, safely, without ever waiting.

Before every order it reads the breaker's published gate and sizes entries by risk
(:mod:`actors.execution.sizing`). A client order id derived from the signal means a signal
never places two orders; a lost reply is looked up by that id, never resubmitted; fills go
to the position actor with retries (safe by fill id). Every ask goes out with
``ask_notify`` and one timer (``_Tick``) runs what is due; a signal that depends on an
answer still out is held, in order. On start it syncs the venue's fills into the ledger
(:mod:`actors.execution.venue_sync`) and sends no order until that has succeeded. Each
order's phase is its record's in the order book (:mod:`actors.execution.orders`). The rules
(held signals, unresolved orders, duplicate checks, lost state): docs/trading-bot.md.
"""

from __future__ import annotations

import logging
import math
from bisect import insort
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import pykka
from pydantic import BaseModel, ConfigDict, Field

from actors.common.messages import Alert, Fill, HaltTrading, InvalidFill, Side
from actors.execution.contract import (
    ExecutorStats,
    ExitRequest,
    GetExecutorStats,
    SkipReason,
    client_order_id,
)
from actors.execution.orders import (
    CHECKS,
    TERMINAL,
    UNRESOLVED,
    OrderBook,
    OrderEvent,
    OrderPhase,
    OrderRecord,
    Placing,
    Request,
    allowed,
)
from actors.execution.sizing import InFlightBuy, RiskLimits, size_entry
from actors.execution.venue_sync import Step, SyncEvent, SyncPhase, VenueSync, next_sync_phase
from actors.portfolio.contract import (
    FillRecorded,
    GetLedgerSummary,
    HasOrder,
    PortfolioSnapshot,
    RecordFill,
    RecordFills,
)
from actors.risk.contract import (
    ApiResult,
    BreakerGate,
    BreakerState,
    OrderIntent,
    Permission,
    ProbeResult,
    gate_or_unknown,
)
from actors.strategies.contract import Signal
from actors.venues.contract import (
    GetOpenOrders,
    LookupOrder,
    OpenOrder,
    OrderResult,
    PlaceOrder,
)
from supervisor import SupervisedActor
from supervisor.backoff import Backoff
from supervisor.context import Replied
from supervisor.errors import ActorNotRunning, AskTimeout, RuntimeErrorBase
from supervisor.peers import Peer
from supervisor.pending_asks import PendingAsk, PendingAsks

log = logging.getLogger(__name__)

__all__ = [
    "ExecutorActor",
    "ExecutorState",
    "SyncVenue",
]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SyncVenue:
    """Reconcile the ledger with the venue's fills now (once this executor's own orders
    and fills out are answered).

    As an ask, the reply is the number of fills recovered (or the exception that stopped it).
    """


@dataclass(frozen=True, slots=True)
class _RetrySync:
    """Timer: try the venue sync again after a failure."""


@dataclass(frozen=True, slots=True)
class _Handoff:
    """Told by an executor that ends to its replacement: the signals it held, in order."""

    requests: tuple[Signal | ExitRequest, ...]


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: asks past their deadline, retries due, stats answers due (at ``at``)."""

    at: float


@dataclass(frozen=True, slots=True)
class ExecutorState:
    """Published by the executor: the venue time of its oldest fill not yet in the ledger
    (None when there is none), so a restarted executor syncs from far enough back; and the
    newest signal time an instance may have sent an order for (``checked_through``: a
    later signal is new, an earlier or equal one is checked against ledger and exchange);
    and the orders it has not seen the end of (``unresolved``, each with its phase)."""

    unrecorded_since: float | None
    checked_through: float | None = None  # None: not known yet (no venue sync so far)
    # orders sent whose outcome is not known yet (placing, unknown, looking up), or that
    # the venue said are still open (open, open looking up): a replacement looks them up
    # after its venue sync (no new risk until then)
    unresolved: tuple[tuple[PlaceOrder, OrderPhase], ...] = ()


Kind = Literal["order", "record", "lookup", "in_ledger", "at_venue", "sync", "halt"]


@dataclass(frozen=True, slots=True)
class _For:
    """What an ask out was for: its kind and key (a client order id, a fill id)."""

    kind: Kind
    key: str = ""


@dataclass(slots=True)
class _Unrecorded:
    """A fill the ledger has not acknowledged: failed tries, when the next is due, whether
    one is out, whether it was alerted."""

    fill: Fill
    failures: int = 0
    due: float = 0.0
    out: bool = False
    alerted: bool = False


class ExecutorActor(SupervisedActor):
    """Owns the orders it has sent in this incarnation, the fills still to record, the
    asks it has out and the signals held until those are answered."""

    accepts: ClassVar[tuple[type, ...]] = (
        Signal, ExitRequest, GetExecutorStats, SyncVenue)
    publishes: ClassVar[type] = ExecutorState

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        risk_per_trade_pct: Decimal = Field(Decimal("1.0"), gt=0, le=100)
        default_stop_pct: Decimal = Field(Decimal("2.0"), gt=0, le=100)
        max_position_pct: Decimal = Field(Decimal("25"), gt=0, le=100)
        max_exposure_pct: Decimal = Field(Decimal("80"), gt=0)
        max_open_positions: int = Field(4, ge=1)
        min_notional: Decimal = Field(Decimal("10"), ge=0)
        # A buy sent to the exchange and not answered yet counts against cash, equity and
        # exposure at its signal's price (or the mark, if higher) plus this much (fees,
        # slippage, the price's move until it fills), so the next entry need not wait for
        # its reply.
        in_flight_margin_pct: Decimal = Field(Decimal("1.0"), ge=0, le=100)
        order_timeout: float = Field(5.0, gt=0)  # seconds for any answer (then: look up)
        record_attempts: int = Field(5, ge=1)  # tries before an unrecorded fill is alerted
        retry_initial: float = Field(0.2, gt=0)  # seconds before the 1st retry (doubles)
        retry_max: float = Field(2.0, gt=0)  # seconds between retries, at most
        max_held: int = Field(1000, ge=1)  # signals held at once; more are skipped
        open_alert_after: float = Field(60.0, gt=0)  # s an order may stay open unalerted
        venue_sync: Literal["recent", "full", "off"] = "recent"
        venue_sync_lookback: float = Field(86400.0, ge=0)  # venue seconds before the newest
        venue_sync_batch: int = Field(1000, ge=1)  # fills per RecordFills
        venue_sync_retry: float = Field(1.0, gt=0)  # seconds between failed syncs
        duplicate_check_margin: float = Field(3600.0, ge=0)  # venue s, see the docstring
        positions: Annotated[str, Peer(accepts=(HasOrder, RecordFill, RecordFills,
                                                GetLedgerSummary),
                                       publishes=PortfolioSnapshot)] = "positions"
        breaker: Annotated[str, Peer(accepts=(ApiResult, ProbeResult, HaltTrading),
                                     publishes=BreakerGate)] = "breaker"
        exchange: Annotated[str, Peer(accepts=(PlaceOrder, LookupOrder,
                                               GetOpenOrders))] = "exchange"
        alerts: Annotated[str, Peer(accepts=(Alert,))] = "alerts"

    def __init__(self, settings: ExecutorActor.Settings | None = None) -> None:
        super().__init__()
        s = self.settings = settings or ExecutorActor.Settings()
        self._limits = RiskLimits(s.risk_per_trade_pct, s.default_stop_pct,
                                  s.max_position_pct, s.max_exposure_pct, s.min_notional,
                                  s.in_flight_margin_pct)
        self._retry = Backoff(initial=s.retry_initial, maximum=max(s.retry_max,
                                                                   s.retry_initial),
                              jitter=s.retry_initial / 2)
        self.sent: list[tuple[str, str, bool, str]] = []
        self.orders = OrderBook()  # client order id -> its order (or duplicate check)
        self.refused: Counter[str] = Counter()
        self.skipped: Counter[SkipReason] = Counter()
        self.filled = 0
        self.fills_recorded = 0
        self.recording: dict[str, Fill] = {}  # fill id -> fill out to the ledger
        self.unrecorded: dict[str, _Unrecorded] = {}  # fill id -> fill a try failed for
        self.held: list[tuple[int, Request]] = []  # waiting for an answer, by arrival
        self._arrivals = 0  # signals and exit requests received by this instance
        self.refused_fills: list[Fill] = []  # fills the ledger refused for good (alerted)
        self.exits: list[tuple[str, str]] = []
        self.recovered = 0
        self.synced = False
        self._asks: PendingAsks[_For] | None = None
        self._tick_at: float | None = None  # when the earliest _Tick scheduled is due
        self._stats_waiters: list[tuple[float, pykka.Future[Any]]] = []
        self._sync_waiters: list[pykka.Future[Any]] = []  # for the next sync
        self._sync_answering: list[pykka.Future[Any]] = []  # for the sync under way
        self._sync: VenueSync | None = None  # the venue sync under way
        self._sync_phase = SyncPhase.IDLE  # whether one runs or waits to (_sync_event)
        self._sync_from: float | None = None  # an earlier instance's oldest unrecorded fill
        # signals at or before this time may have been sent by an earlier instance: check
        # them; until the start sync has set it, everything would be checked
        self._checked_through: float | None = None
        self._acted = -math.inf  # the newest signal time this instance acted on
        self._sync_pending = False
        # a venue sync found lost state and asked the breaker to halt: no order at all
        # until the breaker has answered (it is HALTED then; an operator resets it)
        self._halt_pending: str | None = None
        self._stopping = False  # stopped for good: acting on the answers out, nothing new

    def on_start(self) -> None:
        self._asks = PendingAsks(self.ctx, self.settings.order_timeout)
        earlier = self.ctx.peek(self.ctx.name)
        if isinstance(earlier, ExecutorState):
            self._sync_from = earlier.unrecorded_since
            self._checked_through = earlier.checked_through
            now = self.ctx.clock.now()
            for order, phase in earlier.unresolved:  # looked up after the sync
                still_open = phase in (OrderPhase.OPEN, OrderPhase.OPEN_LOOKING_UP)
                if self.orders.get(order.client_order_id) is None:
                    self.orders.add(OrderRecord(
                        order.client_order_id, order.symbol,
                        placing=Placing(order, False, order.reduce_only, None), due=now,
                        reported=True, open_since=now if still_open else None),
                        OrderEvent.FOLLOW_OPEN if still_open else OrderEvent.ADOPT)
        if self.settings.venue_sync == "off":
            self._checked_through = math.inf  # nothing known of earlier processes
            self.synced = True
            return
        self._sync_event(SyncEvent.WANT)
        self._progress()

    def on_stopping(self) -> bool:
        """Stopped for good: go on while an order or a fill is out, acting on their answers
        (the last fills reach the ledger), and send nothing new; the child's ``linger``
        bounds it. A restart does not wait: the replacement looks up what was out."""
        assert self._asks is not None
        self._stopping = True
        return any(a.what.kind in ("order", "record") for a in self._asks)

    def on_stop(self) -> None:
        if self._stopping and (self.orders.placing() or self.recording):
            log.warning("stopping with %d order(s) unanswered and %d fill(s) unacknowledged; "
                        "the next start's venue sync records what the venue filled",
                        len(self.orders.placing()), len(self.recording))
        self._end_waiters(None)
        self._pass_on_held()

    def on_failure(self, *exc_info: Any) -> None:
        self._end_waiters(exc_info[1] if isinstance(exc_info[1], Exception) else None)
        self._pass_on_held()

    def _pass_on_held(self) -> None:
        """This instance ends with signals held or being checked: a replacement gets them
        (one ``_Handoff``, which it puts ahead of what it received itself); with none to
        follow, they are counted and logged as dropped."""
        checks = self.orders.checks()
        waiting = sorted([*self.held, *((r.seq, r.request) for r in checks
                                        if r.phase in CHECKS and r.request is not None)],
                         key=lambda e: e[0])
        self.held = []
        for record in checks:
            self.orders.apply(record.coid, OrderEvent.HANDED_OVER)
        if not waiting:
            return
        if not self.ctx.stopping_for_good and self.ctx.try_tell(
                self.ctx.name, _Handoff(tuple(r for _, r in waiting))):
            return
        self.skipped[SkipReason.DROPPED_AT_STOP] += len(waiting)
        log.warning("stopping with %d signal(s) held; not acted on: %s", len(waiting),
                    ", ".join(r.signal_id for _, r in waiting[:5]))

    def on_receive(self, message: Any) -> Any:
        match message:
            case Replied():
                assert self._asks is not None
                ask = self._asks.take(message.token)
                if ask is not None:
                    self._answered(ask)
            case Signal() | ExitRequest():
                self._arrived(message)
            case _Tick():
                self._tick(message.at)
            case _Handoff():
                # an earlier instance's: ahead of what this one has received itself
                first = min((seq for seq, _ in self.held), default=self._arrivals + 1)
                n = len(message.requests)
                self.held[:0] = [(first - n + i, r) for i, r in enumerate(message.requests)]
            case GetExecutorStats():
                reply = self.defer_reply()
                if reply is not None:
                    due = self.ctx.clock.now() + self.settings.order_timeout
                    self._stats_waiters.append((due, reply))
            case SyncVenue():
                reply = self.defer_reply()
                if reply is not None:
                    self._sync_waiters.append(reply)
                self._sync_event(SyncEvent.WANT)
            case _RetrySync():
                self._sync_pending = False
                if not self.synced:
                    self._sync_event(SyncEvent.WANT)
            case _:
                return super().on_receive(message)
        self._progress()
        return None

    # -- the loop: what to do after every message ----------------------------------------------
    def _progress(self) -> None:
        assert self._asks is not None
        if self._stopping:
            return
        if self._sync_phase is SyncPhase.WANTED and not self._asks:
            self._start_sync()
        if self.held and not self._syncing():
            self._release_held()
        self._arm()
        if self._stats_waiters:
            self._answer_stats()

    def _arm(self) -> None:
        """Schedule a ``_Tick`` for the earliest deadline or retry due, unless one is (a
        timer's message is never lost to a full mailbox: see ``ActorContext.schedule``)."""
        assert self._asks is not None
        at = self._asks.next_deadline()
        unresolved = self.orders.in_phase(OrderPhase.UNKNOWN, OrderPhase.OPEN)
        if (self.unrecorded or unresolved) and not self._syncing():
            dues = [u.due for u in self.unrecorded.values() if not u.out]
            dues += [r.due for r in unresolved]
            if at is not None:
                dues.append(at)
            at = min(dues, default=None)
        if self._stats_waiters:
            due = min(d for d, _ in self._stats_waiters)
            at = due if at is None else min(at, due)
        if at is None or (self._tick_at is not None and self._tick_at <= at):
            return
        self._tick_at = at
        self.ctx.schedule(max(0.0, at - self.ctx.clock.now()), _Tick(at))

    def _syncing(self) -> bool:
        """A venue sync runs or waits to: no retries meanwhile (it records the venue's
        fills itself, and a retry out would keep it from starting)."""
        return self._sync_phase is not SyncPhase.IDLE

    def _sync_event(self, event: SyncEvent) -> None:
        self._sync_phase = next_sync_phase(self._sync_phase, event)

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
        if self._syncing():
            return
        for u in list(self.unrecorded.values()):
            if not u.out and u.due <= now:
                self._send_record(u.fill)
        for record in self.orders.in_phase(OrderPhase.UNKNOWN, OrderPhase.OPEN):
            if record.due <= now:
                self._send_lookup(record)

    def _idle(self) -> bool:
        """Nothing out, nothing held, no fill within its first tries, no sync to run."""
        return (not self._asks and not self.held and self._sync_phase is SyncPhase.IDLE
                and all(u.failures >= self.settings.record_attempts
                        for u in self.unrecorded.values()))

    def _answer_stats(self) -> None:
        if self._idle():
            due, self._stats_waiters = self._stats_waiters, []
        else:
            now = self.ctx.clock.now()
            due = [w for w in self._stats_waiters if w[0] <= now]
            if not due:
                return
            self._stats_waiters = [w for w in self._stats_waiters if w[0] > now]
        stats = self._stats()
        for _, reply in due:
            reply.set(stats)

    def _stats(self) -> ExecutorStats:
        return ExecutorStats(len(self.sent), self.filled, dict(self.refused),
                             dict(self.skipped), self.fills_recorded, len(self.unrecorded),
                             tuple(self.sent), self.recovered, self.synced, tuple(self.exits),
                             self.orders.counts())

    def _end_waiters(self, exc: Exception | None) -> None:
        """This instance ends: answer whoever still waits on it."""
        stats, self._stats_waiters = self._stats_waiters, []
        for _, reply in stats:
            if exc is None:
                reply.set(self._stats())
            else:
                reply.set_exception((type(exc), exc, exc.__traceback__))
        self._fail_sync_waiters(exc or ActorNotRunning(self.ctx.name, "stopped"))

    def _fail_sync_waiters(self, exc: Exception, *, queued: bool = True) -> None:
        """Fail the asks waiting for the sync under way (and, if ``queued``, for the next)."""
        waiters, self._sync_answering = self._sync_answering, []
        if queued:
            waiters += self._sync_waiters
            self._sync_waiters = []
        for reply in waiters:
            reply.set_exception((type(exc), exc, exc.__traceback__))

    # -- signals: act now, hold, or skip --------------------------------------------------------
    def _arrived(self, request: Request) -> None:
        self._arrivals += 1
        seq = self._arrivals
        if self._syncing():
            self._hold(seq, request)  # the ledger is being reconciled with the venue
            return
        if not self.synced:
            self._not_ready(request)
            return
        self._retry_stuck()
        if self.held and any(r.symbol == request.symbol for _, r in self.held):
            self._hold(seq, request)  # behind an earlier one of its symbol
            return
        if self._consider(seq, request):
            self._hold(seq, request)

    def _consider(self, seq: int, request: Request) -> bool:
        """Act on ``request`` (arrival number ``seq``) or skip it; True when it must wait
        (hold it). Answers already in are read first, so what is decided does not depend
        on whether their ``Replied`` came before ``request`` or after."""
        self._read_answered()
        symbol = request.symbol
        if _is_sale(request) and self._has_sale(symbol):
            self._skip(SkipReason.SALE_IN_FLIGHT)
        elif self._busy(symbol) or (not _is_sale(request) and self._resolving()):
            return True
        elif isinstance(request, ExitRequest):
            self._on_exit(request, seq)
        else:
            self._on_signal(request, seq)
        self._decided(request)  # found new by a duplicate check: decided now, either way
        return False

    def _decided(self, request: Request) -> None:
        """``request`` was decided: a check that found it new is spent (a repeat is checked
        again, unless an order went out for it)."""
        if self.orders.count(OrderPhase.CHECKED_NEW):
            coid = client_order_id(request.signal_id)
            if self.orders.phase(coid) is OrderPhase.CHECKED_NEW:
                self.orders.apply(coid, OrderEvent.DECIDED)

    def _hold(self, seq: int, request: Request) -> None:
        if len(self.held) >= self.settings.max_held:
            self._skip(SkipReason.TOO_MANY_HELD)
            log.warning("not acting on %s: %d signals are held already", request.signal_id,
                        len(self.held))
            return
        self.held.append((seq, request))

    def _release_held(self) -> None:
        """Act on the held signals that can go now, in order; a symbol's later signals
        stay behind its first that must still wait."""
        if not self.synced:  # the sync they waited for failed
            held, self.held = self.held, []
            for _, request in held:
                self._not_ready(request)
            return
        while self.held:
            held, self.held = self.held, []
            kept: list[tuple[int, Request]] = []
            waiting: set[str] = set()
            for i, (seq, request) in enumerate(held):
                try:
                    wait = request.symbol in waiting or self._consider(seq, request)
                except BaseException:
                    # the rest stay held (a replacement gets them); this one may be the
                    # cause, so it is not passed on
                    self.held = kept + held[i + 1 :] + self.held
                    log.error("deciding %s raised; it is dropped", request.signal_id)
                    raise
                if wait:
                    waiting.add(request.symbol)
                    kept.append((seq, request))
            progress = len(kept) < len(held)
            self.held = kept + self.held
            if not progress:
                return

    def _not_ready(self, request: Request) -> None:
        """No order before the ledger has every venue fill (it sizes and guards orders)."""
        self._decided(request)
        self._skip(SkipReason.NOT_RECONCILED)
        log.warning("not acting on %s: the ledger is not reconciled with the venue yet",
                    request.signal_id)

    def _busy(self, symbol: str) -> bool:
        """Is something of ``symbol`` out (an order, a fill, a lookup, a duplicate check) or
        a fill of it within its first tries? Its portfolio may change with the answer."""
        attempts = self.settings.record_attempts
        return (self.orders.busy(symbol)
                or any(f.symbol == symbol for f in self.recording.values())
                or any(u.fill.symbol == symbol and (u.out or u.failures < attempts)
                       for u in self.unrecorded.values()))

    def _resolving(self) -> bool:
        """Is an uncertain fill or order being resolved (a try or lookup out, or a fill
        within its first tries)? An entry waits for that: it decides on the whole account."""
        attempts = self.settings.record_attempts
        return (self.orders.resolving()
                or any(u.out or u.failures < attempts for u in self.unrecorded.values()))

    def _retry_stuck(self) -> None:
        """A signal came: try the stuck fills and orders now (as they would be on a timer),
        so a ledger or exchange that is back is seen before the signal is decided. An
        order the venue said is still open keeps to the timer (its backoff spares the
        venue's rate limits)."""
        unknown = self.orders.in_phase(OrderPhase.UNKNOWN)
        if not self.unrecorded and not unknown:
            return
        attempts = self.settings.record_attempts
        for u in list(self.unrecorded.values()):
            if not u.out and u.failures >= attempts:
                self._send_record(u.fill)
        for record in unknown:
            if record.phase is OrderPhase.UNKNOWN:
                self._send_lookup(record)

    def _has_sale(self, symbol: str) -> bool:
        """Is a sale of ``symbol`` sent and not yet in the ledger? Then another sale (a
        strategy's and an exit's, or a repeat) is skipped at once: the first sells all that
        was held. Should it fail or fill in part, the next sale signal or exit sells what
        remains; a sale unanswered for ``order_timeout`` is looked up (see :meth:`_tick`)."""
        return (self.orders.has_sale(symbol)
                or any(f.symbol == symbol and f.side is Side.SELL
                       for f in self.recording.values()))

    def _read_answered(self) -> None:
        """Act on the orders and fills whose answers are in, before their ``Replied``."""
        assert self._asks is not None
        if self.recording or self.orders.count(OrderPhase.PLACING):
            for ask in self._asks.take_answered(lambda w: w.kind in ("order", "record")):
                self._answered(ask)

    # -- deciding ------------------------------------------------------------------------------
    def _snapshot(self) -> PortfolioSnapshot | None:
        snap = self.ctx.peek(self.settings.positions)
        return snap if isinstance(snap, PortfolioSnapshot) else None

    def _skip(self, why: SkipReason) -> None:
        self.skipped[why] += 1

    def _on_signal(self, signal: Signal, seq: int) -> None:
        # a sell depends on its symbol's position only; a buy on the whole account
        if signal.side is Side.SELL:
            snap = self._snapshot()
            held = snap.positions.get(signal.symbol) if snap is not None else None
            if held is None or held.quantity <= 0:
                self._skip(SkipReason.SELL_WITHOUT_POSITION)
                return
            self._order(signal, seq, Side.SELL, held.quantity, reduces=True)
            return
        # An entry does not wait for other symbols' orders and fills: they are counted
        # (conservatively: a fill the snapshot already has counts twice, an unanswered buy
        # with in_flight_margin_pct on top, sales not at all) against cash, exposure and
        # open positions.
        snap = self._snapshot()
        if snap is None:
            self._skip(SkipReason.NO_PORTFOLIO)
            return
        if signal.symbol in snap.positions:
            self._skip(SkipReason.ALREADY_HOLDING)
            return
        writing = [f for f in self.recording.values() if f.side is Side.BUY]
        unanswered = [InFlightBuy(p.order.symbol, p.order.quantity, p.price)
                      for p in (r.sent for r in self.orders.placing())
                      if p.order.side is Side.BUY]
        opening = ({f.symbol for f in writing} | {b.symbol for b in unanswered}) \
            - snap.positions.keys()
        if len(snap.positions) + len(opening) >= self.settings.max_open_positions:
            self._skip(SkipReason.MAX_OPEN_POSITIONS)
            return
        price = Decimal(repr(signal.price))
        qty = size_entry(self._limits, price, signal.stop_distance, snap=snap,
                         writing=writing, unanswered=unanswered)
        if isinstance(qty, SkipReason):
            self._skip(qty)
            return
        self._order(signal, seq, Side.BUY, qty, reduces=False, price=price)

    def _on_exit(self, request: ExitRequest, seq: int) -> None:
        snap = self._snapshot()
        held = snap.positions.get(request.symbol) if snap is not None else None
        if held is None or held.quantity <= 0:
            self._skip(SkipReason.EXIT_WITHOUT_POSITION)
            return
        self._order(request, seq, Side.SELL, held.quantity, reduces=True,
                    exit_reason=request.reason)

    # -- sending -------------------------------------------------------------------------------
    def _order(self, request: Request, seq: int, side: Side, qty: Decimal, *, reduces: bool,
               exit_reason: str | None = None, price: Decimal = ZERO) -> None:
        s = self.settings
        symbol = request.symbol
        unsettled = self._unsettled_symbols()
        if symbol in unsettled or (unsettled and not reduces):
            # The portfolio does not show every fill yet: sizing and "already holding" could
            # be wrong. No new risk anywhere, and nothing more for these symbols, until then.
            self._skip(SkipReason.UNSETTLED)
            return
        coid = client_order_id(request.signal_id)
        phase = self.orders.phase(coid)
        if phase is not None and phase is not OrderPhase.CHECKED_NEW:
            self._skip(SkipReason.ALREADY_HANDLED)
            return
        checked = self._checked_through
        if (checked is None or request.at <= checked) and phase is None:
            self._check(coid, seq, request)  # an earlier instance may have sent it
            return
        if self._halt_pending is not None:  # the breaker has not taken the halt yet
            self.refused[BreakerState.HALTED.value] += 1
            return
        # Only now ask the breaker: in HALF_OPEN the check takes a probe slot, which must go
        # to an order that is really sent (and reported back with a ProbeResult).
        permission: Permission = gate_or_unknown(self.ctx.peek(s.breaker)).check(
            OrderIntent(symbol, reduces_exposure=reduces))
        if not permission.allowed:
            self.refused[permission.state.value] += 1
            return
        self._acting_on(request.at)
        order = PlaceOrder(coid, symbol, side, qty, reduce_only=reduces)
        self.sent.append((coid, side.value, reduces, permission.state.value))
        if exit_reason is not None:
            self.exits.append((coid, exit_reason))
        record = self.orders.add(OrderRecord(coid, symbol, seq, placing=Placing(
            order, permission.probe, reduces, exit_reason, price)), OrderEvent.SEND)
        assert self._asks is not None
        try:
            self._asks.send(s.exchange, order, _For("order", coid))
        except RuntimeErrorBase as exc:
            log.warning("order %s not sent (%s); looking it up", coid, exc)
            self._look_up(record)
            return
        self._publish_state()  # a replacement looks it up if this instance dies now

    def _check(self, coid: str, seq: int, request: Request) -> None:
        """Is ``coid`` in the ledger, or at the exchange? Asked in turn; ``request`` is
        acted on again once both say no (:meth:`_answered`)."""
        assert self._asks is not None
        self.orders.add(OrderRecord(coid, request.symbol, seq, request), OrderEvent.CHECK)
        try:
            self._asks.send(self.settings.positions, HasOrder(coid), _For("in_ledger", coid))
        except RuntimeErrorBase as exc:
            self._unsure(coid, exc)

    def _unsure(self, coid: str, exc: Exception) -> None:
        if self.orders.phase(coid) in CHECKS:
            self.orders.apply(coid, OrderEvent.UNSURE)
        self._skip(SkipReason.UNCHECKED)  # never risk a duplicate
        log.warning("not acting on order %s: could not check for duplicates (%s: %s)", coid,
                    type(exc).__name__, exc)

    # -- answers -------------------------------------------------------------------------------
    def _answered(self, ask: PendingAsk[_For]) -> None:
        try:
            value = ask.future.get(timeout=0)
        except Exception as exc:
            self._ask_failed(ask.what, exc)
            return
        what = ask.what
        match what.kind:
            case "order":
                record = self.orders.get(what.key)
                if record is None or record.phase is not OrderPhase.PLACING:
                    return
                if isinstance(value, OrderResult):
                    self._settled(record, value)
                else:
                    log.warning("no order result for %s (%r); looking it up", what.key, value)
                    self._look_up(record)
            case "record":
                sent = self.recording.pop(what.key, None)
                retried = self.unrecorded.pop(what.key, None)
                if sent is not None or retried is not None:
                    if not (isinstance(value, FillRecorded) and value.duplicate):
                        self.fills_recorded += 1  # (a fill it had already is not counted)
                    self._publish_state()
            case "lookup":
                self._looked_up(what.key, value)
            case "in_ledger":
                self._in_ledger(what.key, bool(value))
            case "at_venue":
                self._at_venue(what.key, value)
            case "sync":
                self._sync_step(value)
            case "halt":
                self._halt_pending = None  # the breaker is HALTED (its gate refuses)

    def _ask_failed(self, what: _For, exc: Exception) -> None:
        match what.kind:
            case "order":
                record = self.orders.get(what.key)
                if record is not None and record.phase is OrderPhase.PLACING:
                    log.warning("no reply to order %s (%s: %s); looking it up", what.key,
                                type(exc).__name__, exc)
                    self._look_up(record)
            case "record":
                fill = self.recording.pop(what.key, None)
                u = self.unrecorded.get(what.key)
                if fill is None and u is not None:
                    fill = u.fill
                if fill is not None:
                    self._record_failed(fill, exc)
            case "lookup":
                record = self.orders.get(what.key)
                if record is not None and record.phase in UNRESOLVED:
                    self._lookup_failed(record, exc)
            case "in_ledger" | "at_venue":
                self._unsure(what.key, exc)
            case "sync":
                self._sync_failed(exc)
            case "halt":  # still no order from this instance: the halt stands here
                log.error("the breaker did not take the halt (%s: %s); this executor sends "
                          "no order", type(exc).__name__, exc)

    def _settled(self, record: OrderRecord, result: OrderResult) -> None:
        """Act on what the exchange did with ``record``'s order. The breaker hears of the
        order once. Every fill listed is recorded, whatever the status: an order still
        ``open`` has filled in part, and stays an order of unknown outcome, looked up until
        it is done (no new risk meanwhile)."""
        placing = record.sent
        order = placing.order
        coid = order.client_order_id
        status = result.status
        if not record.reported:
            self._report(placing, status in ("filled", "open"), result.reason)
        sent = record.fills
        kind = placing.exit_reason or ("exit" if placing.reduces else "entry")
        for fill in result.fills:
            if fill.fill_id not in sent:
                sent.add(fill.fill_id)
                log.info("filled %s %s %s @ %s (%s)", fill.side.value, fill.quantity,
                         fill.symbol, fill.price, kind)
                self._send_record(fill)
        if status == "open":
            self._still_open(record, result)
        elif status == "filled":
            self.filled += 1
            self.orders.apply(coid, OrderEvent.FILLED)
        else:
            log.warning("order %s for %s rejected: %s", coid, order.symbol, result.reason)
            self.orders.apply(coid, OrderEvent.REJECTED)
        self._publish_state()

    def _still_open(self, record: OrderRecord, result: OrderResult) -> None:
        """The venue has the order open: look it up on the timer until it is done; alert
        once it has been open ``open_alert_after`` seconds (no new risk meanwhile)."""
        s = self.settings
        order = record.sent.order
        coid = order.client_order_id
        now = self.ctx.clock.now()
        record.failures += 1
        if record.open_since is None:
            record.open_since = now
            log.warning("order %s for %s is still open at the exchange (%d fill(s) so far); "
                        "looking it up until it is done", coid, order.symbol,
                        len(result.fills))
        since = record.open_since
        if not record.alerted and now - since >= s.open_alert_after:
            record.alerted = True
            self.ctx.try_tell(s.alerts, Alert(
                f"executor.order_open.{coid}", "warning", "An order stays open at the venue",
                f"{coid} {order.side.value} {order.quantity} {order.symbol}: open for "
                f"{now - since:.0f}s, {len(record.fills)} fill(s) so far; no new entries "
                f"until it is done"))
        record.due = now + self._retry.delay(record.failures)
        record.reported = True
        self.orders.apply(coid, OrderEvent.STILL_OPEN)

    def _report(self, placing: Placing, ok: bool, reason: str) -> None:
        s = self.settings
        self.ctx.try_tell(s.breaker, ApiResult(ok, "place_order"))
        if placing.probe:
            self.ctx.try_tell(s.breaker, ProbeResult(ok, reason))

    # -- lost replies: looked up by client order id, never resent ------------------------------
    def _look_up(self, record: OrderRecord) -> None:
        """No (usable) answer to ``record``'s order: look it up by client order id."""
        record.due = self.ctx.clock.now()
        self.orders.apply(record.coid, OrderEvent.NO_REPLY)
        self._publish_state()
        if not self._syncing():  # else once the sync is done (it must not wait for this)
            self._send_lookup(record)

    def _send_lookup(self, record: OrderRecord) -> None:
        assert self._asks is not None
        coid = record.coid
        try:
            self._asks.send(self.settings.exchange, LookupOrder(coid), _For("lookup", coid))
        except RuntimeErrorBase as exc:
            self._lookup_failed(record, exc)
            return
        self.orders.apply(coid, OrderEvent.LOOK_UP)
        self._publish_state()

    def _looked_up(self, coid: str, found: Any) -> None:
        record = self.orders.get(coid)
        if record is None or record.phase not in UNRESOLVED:
            return
        placing = record.sent
        if isinstance(found, OrderResult):
            if record.reported and found.status != "open":
                log.warning("order %s: found at the exchange (%s) after its outcome was "
                            "unknown", coid, found.status)
            self._settled(record, found)
            return
        if record.phase is OrderPhase.OPEN_LOOKING_UP:  # "no such order" once open: a
            self._lookup_failed(record, LookupError(  # lookup gone wrong
                f"the exchange had no order {coid}, which it had said was open"))
            return
        self.orders.apply(coid, OrderEvent.NOT_FOUND)
        self._publish_state()
        if not record.reported:
            self._report(placing, False, "not placed")
        log.warning("order %s for %s was not placed (the exchange has no record of it)",
                    coid, placing.order.symbol)

    def _lookup_failed(self, record: OrderRecord, exc: Exception) -> None:
        self.orders.apply(record.coid, OrderEvent.LOOKUP_FAILED)
        record.failures += 1
        record.due = self.ctx.clock.now() + self._retry.delay(record.failures)
        self._publish_state()
        if not record.reported:
            record.reported = True
            self._report(record.sent, False, "no reply")
            log.warning("order %s: outcome unknown, the lookup failed (%s: %s); no new risk "
                        "until it is known", record.coid, type(exc).__name__, exc)

    # -- duplicate checks ----------------------------------------------------------------------
    def _in_ledger(self, coid: str, found: bool) -> None:
        if self.orders.phase(coid) is not OrderPhase.CHECKING_LEDGER:
            return
        if found:
            self.orders.apply(coid, OrderEvent.FOUND)
            self._skip(SkipReason.IN_LEDGER)
            return
        self.orders.apply(coid, OrderEvent.NOT_IN_LEDGER)
        assert self._asks is not None
        try:
            self._asks.send(self.settings.exchange, LookupOrder(coid), _For("at_venue", coid))
        except RuntimeErrorBase as exc:
            self._unsure(coid, exc)

    def _at_venue(self, coid: str, found: Any) -> None:
        record = self.orders.get(coid)
        if record is None or record.phase is not OrderPhase.CHECKING_VENUE:
            return
        request = record.request
        assert request is not None
        if isinstance(found, OrderResult):
            self._skip(SkipReason.AT_VENUE)
            if found.status != "open":
                self.orders.apply(coid, OrderEvent.FOUND)
                for fill in found.fills:
                    self._send_record(fill)
                return
            # an earlier instance's order, still open: follow it
            sale = _is_sale(request)
            quantity = sum((f.quantity for f in found.fills), ZERO)
            record.placing = Placing(PlaceOrder(coid, request.symbol,
                                                Side.SELL if sale else Side.BUY, quantity,
                                                reduce_only=sale), False, sale, None)
            record.reported = True
            self._settled(record, found)
            return
        self.orders.apply(coid, OrderEvent.NEW)
        insort(self.held, (record.seq, request), key=lambda e: e[0])  # in arrival order

    # -- recording fills -----------------------------------------------------------------------
    def _send_record(self, fill: Fill) -> None:
        """Send ``fill`` to the ledger without waiting for its commit: the executor is free
        for the next order while the ledger writes. Until it is acknowledged its symbol's
        next decisions wait (held) and the fill counts as unrecorded in the state this
        actor publishes, so a restart after a crash looks for it at the venue."""
        assert self._asks is not None
        u = self.unrecorded.get(fill.fill_id)
        try:
            self._asks.send(self.settings.positions, RecordFill(fill),
                            _For("record", fill.fill_id))
        except RuntimeErrorBase as exc:
            self._record_failed(fill, exc)
            return
        if u is not None:
            u.out = True
        else:
            self.recording[fill.fill_id] = fill

    def _record_failed(self, fill: Fill, exc: Exception) -> None:
        s = self.settings
        if isinstance(exc, InvalidFill):  # the ledger refuses it: retrying cannot change that
            self.unrecorded.pop(fill.fill_id, None)
            self._refused(fill, exc)
            self._publish_state()
            return
        u = self.unrecorded.get(fill.fill_id)
        if u is None:
            u = self.unrecorded[fill.fill_id] = _Unrecorded(fill)
            log.warning("fill %s not acknowledged (%s: %s); sending it again", fill.fill_id,
                        type(exc).__name__, exc)
        u.out = False
        u.failures += 1
        u.due = self.ctx.clock.now() + self._retry.delay(u.failures)
        if u.failures >= s.record_attempts and not u.alerted:
            u.alerted = True
            log.error("fill %s not recorded yet (%s); will retry", fill.fill_id, exc)
            self.ctx.try_tell(s.alerts, Alert(
                "executor.fill_unrecorded", "critical", "A fill could not be recorded yet",
                f"{fill.fill_id} {fill.side.value} {fill.quantity} {fill.symbol}: {exc}"))
        self._publish_state()

    def _refused(self, fill: Fill, exc: InvalidFill) -> None:
        self.refused_fills.append(fill)
        log.critical("the ledger refused fill %s: %s", fill.fill_id, exc)
        self.ctx.try_tell(self.settings.alerts, Alert(
            f"executor.fill_refused.{fill.fill_id}", "critical",
            "The ledger refused a fill the venue made",
            f"{fill.fill_id} {fill.side.value} {fill.quantity} {fill.symbol}: {exc}"))

    def _unsettled_symbols(self) -> set[str]:
        """Symbols with a fill not yet in the ledger or an order of unknown outcome."""
        return ({u.fill.symbol for u in self.unrecorded.values()}
                | self.orders.unsettled_symbols())

    def _publish_state(self) -> None:
        oldest = min((u.fill.at for u in self.unrecorded.values()), default=None)
        if self.recording:
            sending = min(f.at for f in self.recording.values())
            oldest = sending if oldest is None else min(oldest, sending)
        if self._sync_from is not None:
            oldest = self._sync_from if oldest is None else min(oldest, self._sync_from)
        checked = self._checked_through
        if checked is not None:
            checked = max(checked, self._acted)
        unresolved = tuple((r.sent.order, r.phase) for r in self.orders.unresolved())
        unresolved += tuple((r.sent.order, r.phase) for r in self.orders.placing())
        self.ctx.publish(ExecutorState(oldest, checked, unresolved))

    def _acting_on(self, at: float) -> None:
        """About to send an order for a signal of time ``at``: publish the mark first, so an
        instance started after a crash in the middle of the send checks that signal."""
        if at > self._acted:
            self._acted = at
            self._publish_state()

    # -- venue sync ----------------------------------------------------------------------------
    def _start_sync(self) -> None:
        """Record every venue fill the ledger lacks (:class:`~actors.execution.venue_sync.VenueSync`
        gives the steps)."""
        s = self.settings
        self._sync_event(SyncEvent.START)
        self._sync_answering, self._sync_waiters = self._sync_waiters, []
        self._sync = VenueSync(s.venue_sync, s.venue_sync_lookback, s.venue_sync_batch,
                               reach_back=self._sync_from)
        self._sync_ask(self._sync.start())

    def _sync_ask(self, step: Step) -> None:
        assert self._asks is not None
        role, message = step
        target = self.settings.positions if role == "ledger" else self.settings.exchange
        try:
            self._asks.send(target, message, _For("sync"))
        except RuntimeErrorBase as exc:
            self._sync_failed(exc)

    def _sync_step(self, value: Any) -> None:
        sync = self._sync
        if sync is None:
            return
        try:
            step = sync.answer(value)
        except TypeError as exc:
            self._sync_failed(exc)
            return
        if step is not None:
            self._sync_ask(step)
        else:
            self._sync_done(sync)

    def _sync_done(self, sync: VenueSync) -> None:
        s = self.settings
        self._sync = None
        self._sync_event(SyncEvent.DONE)
        self.synced = True
        self._sync_from = None
        if self._checked_through is None:  # the first instance of this process
            newest = sync.newest_fill_time()
            self._checked_through = -math.inf if newest is None \
                else newest + s.duplicate_check_margin
        recovered, rejected, where = sync.recovered, sync.rejected, sync.scope()
        self.recovered += len(recovered)
        self._follow_open(sync.open_orders)
        self._publish_state()
        if recovered:
            listed = ", ".join(f"{f.fill_id} {f.side.value} {f.quantity} {f.symbol}"
                               for f in recovered[:5])
            more = f" and {len(recovered) - 5} more" if len(recovered) > 5 else ""
            log.warning("venue sync: recorded %d fill(s) the ledger lacked (%s%s); %d %s "
                        "checked", len(recovered), listed, more, len(sync.fills), where)
            self.ctx.try_tell(s.alerts, Alert(
                "executor.venue_sync", "warning",
                f"Recovered {len(recovered)} fill(s) the ledger lacked",
                f"the venue had filled them but the ledger had no record (a crash between "
                f"fill and record): {listed}{more}"))
        else:
            log.info("venue sync: the ledger has all %d %s", len(sync.fills), where)
        self._lost_state(sync)
        if rejected:
            log.error("venue sync: the ledger refused %d venue fill(s): %s", len(rejected),
                      "; ".join(f"{fid}: {why}" for fid, why in rejected[:5]))
            self.ctx.try_tell(s.alerts, Alert(
                "executor.venue_sync_rejected", "critical",
                f"The ledger refused {len(rejected)} venue fill(s)",
                "; ".join(f"{fid}: {why}" for fid, why in rejected[:5])))
        waiters, self._sync_answering = self._sync_answering, []
        for reply in waiters:
            reply.set(len(recovered))

    def _lost_state(self, sync: VenueSync) -> None:
        """The ledger or the venue's record was lost (what the sync's counts say): a
        critical alert, and trading halts until an operator acts (the venue's fills are
        recorded already: they are facts)."""
        summary, record = sync.summary, sync.record
        ledger = summary.database if summary is not None and summary.database else "the ledger"
        venue = record.where if record is not None else "the venue"
        found: list[str] = []
        if sync.ledger_empty:
            count = record.fills if record is not None and record.fills else len(sync.fills)
            found.append(
                f"the ledger {ledger} had no fill while the venue ({venue}) has {count} of "
                "this bot's fills: the ledger was lost or replaced. The venue's fills are "
                "recorded again; its corrections and conflict history are gone")
        if sync.phantom:
            found.append(
                f"the venue's record {venue} lacks {sync.phantom} fill(s) that the ledger "
                f"{ledger} has: the venue's record was lost or replaced")
        if not found:
            return
        reason = "; ".join(found) + ". Check, then `botvisor breaker close`"
        log.critical("venue sync: %s; trading halted", reason)
        self.ctx.try_tell(self.settings.alerts, Alert(
            "executor.lost_state", "critical", "State lost: trading halted", reason))
        self._halt_pending = reason
        assert self._asks is not None
        try:
            self._asks.send(self.settings.breaker, HaltTrading(reason, by="executor"),
                            _For("halt"))
        except RuntimeErrorBase as exc:
            self._ask_failed(_For("halt"), exc)

    def _follow_open(self, orders: tuple[OpenOrder, ...]) -> None:
        """Follow the orders the venue still has open that this instance does not know of
        (an earlier process's): looked up until they are done, no new risk meanwhile."""
        now = self.ctx.clock.now()
        new = [o for o in orders
               if allowed(self.orders.phase(o.order.client_order_id), OrderEvent.FOLLOW_OPEN)]
        for o in orders:
            if self.orders.phase(o.order.client_order_id) in TERMINAL:
                log.warning("venue sync: the venue lists order %s open, which it said is %s",
                            o.order.client_order_id,
                            self.orders.phase(o.order.client_order_id))
        for o in new:
            self.orders.add(OrderRecord(
                o.order.client_order_id, o.order.symbol,
                placing=Placing(o.order, False, o.order.reduce_only, None), due=now,
                reported=True, fills={f.fill_id for f in o.fills}, open_since=now),
                OrderEvent.FOLLOW_OPEN)
        if new:
            log.warning("venue sync: following %d order(s) the venue still has open: %s",
                        len(new), ", ".join(f"{o.order.client_order_id} {o.order.side.value} "
                                            f"{o.order.quantity} {o.order.symbol}"
                                            for o in new[:5]))

    def _sync_failed(self, exc: Exception) -> None:
        s = self.settings
        self._sync = None
        self._sync_event(SyncEvent.FAILED)
        self.synced = False
        log.error("venue sync failed (%s: %s); no orders until it succeeds, retrying in %gs",
                  type(exc).__name__, exc, s.venue_sync_retry)
        self.ctx.try_tell(s.alerts, Alert(
            "executor.venue_sync_failed", "error", "Venue sync failed; not trading",
            f"{type(exc).__name__}: {exc}"))
        self._fail_sync_waiters(exc, queued=False)  # a SyncVenue since gets its own try
        if not self._sync_pending:
            self._sync_pending = True
            self.ctx.schedule(s.venue_sync_retry, _RetrySync())


def _is_sale(request: Request) -> bool:
    return isinstance(request, ExitRequest) or request.side is Side.SELL
