"""The executor: turns signals and exit requests into orders, safely.

Before every order it asks the circuit breaker (a lock-free read of the breaker's
published gate). It sizes entries by risk (risk per trade over the stop distance, capped
by position size, total exposure, open positions and cash). Each order carries a client
order id derived from its signal, so the same signal can never place two orders; after a
restart it checks the ledger and the exchange for that id before sending anything. Order
submission is never retried blindly: when a reply is lost it looks the order up by its
client order id. Fills go to the position actor with retries, which the fill id makes safe.

Venue sync: the process can die (or this actor crash) after the venue filled an order and
before the ledger recorded the fill. So, on every start, before it handles any message, the
executor asks the exchange for its fills (``GetVenueFills``, since a little before the
ledger's newest fill, or everything with ``venue_sync: full``) and records them in batches
(``RecordFills``, one transaction each; the ledger skips fill ids it already has). What was
recovered is logged, counted (``ExecutorStats.recovered``) and alerted. Fills this actor
could not record yet are published (their oldest venue time), so a restarted executor
reaches back far enough for them. Until a sync has succeeded no order is sent; a failed sync
is retried on a timer.

Duplicate checks: asking the ledger (``HasOrder``) and the exchange (``LookupOrder``) before
an order is needed only for a signal an earlier instance (of this process, or of an earlier
one) could have acted on. The executor publishes ``ExecutorState.checked_through``: the
newest signal (bar) time any instance may have sent an order for, raised *before* each
order is sent. A restarted instance inherits it; the first instance of a process (nothing
published yet) sets it, at its venue sync on start, to the newest venue (or ledger) fill
time plus ``duplicate_check_margin`` (venue seconds: a fill's venue time can trail its
signal's bar time, e.g. the paper exchange stamps a fill with the last bar it has seen of
the symbol), so a market replayed from bar 0 after a process restart is checked until it is
past what the earlier process traded. A signal newer than the inherited mark cannot have
been sent before, so it goes out without the asks; this instance's own repeats are caught
by its ``seen`` set. With ``venue_sync: off`` every order is checked.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from actors.book import ZERO
from actors.breaker_gate import OrderIntent, Permission, gate_or_unknown
from actors.breaker_messages import ApiResult, ProbeResult
from actors.messages import Alert, Fill, InvalidFill, Side
from actors.paper_exchange import GetVenueFills
from actors.pipeline_messages import (
    ExitRequest,
    LookupOrder,
    OrderResult,
    PlaceOrder,
    Signal,
    client_order_id,
)
from actors.position_messages import (
    FillsRecorded,
    GetLastFillTime,
    HasOrder,
    PortfolioSnapshot,
    RecordFill,
    RecordFills,
)
from supervisor import SupervisedActor
from supervisor.context import Replied
from supervisor.errors import RuntimeErrorBase
from supervisor.future import ReplyFuture
from supervisor.retry import Retrier

log = logging.getLogger(__name__)

__all__ = ["ExecutorActor", "ExecutorState", "ExecutorStats", "GetExecutorStats", "SyncVenue"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GetExecutorStats:
    """Ask for ExecutorStats."""


@dataclass(frozen=True, slots=True)
class ExecutorStats:
    """What the executor did: orders sent, refused, skipped, fills recorded."""

    orders: int
    filled: int
    refused: dict[str, int]
    skipped: dict[str, int]
    fills_recorded: int
    unrecorded: int
    sent: tuple[tuple[str, str, bool, str], ...]  # (client order id, side, reduces, state)
    recovered: int = 0  # venue fills the ledger lacked, recorded by venue syncs
    venue_synced: bool = False  # a venue sync has succeeded in this incarnation
    exits: tuple[tuple[str, str], ...] = ()  # (client order id, reason) of exit orders sent


@dataclass(frozen=True, slots=True)
class SyncVenue:
    """Reconcile the ledger with the venue's fills now.

    As an ask, the reply is the number of fills recovered (or the exception that stopped it).
    """


@dataclass(frozen=True, slots=True)
class _RetrySync:
    """Timer: try the venue sync again after a failure."""


@dataclass(frozen=True, slots=True)
class ExecutorState:
    """Published by the executor: the venue time of its oldest fill not yet in the ledger
    (None when there is none), so a restarted executor syncs from far enough back; and the
    newest signal time an instance may have sent an order for (``checked_through``: a
    later signal is new, an earlier or equal one is checked against ledger and exchange)."""

    unrecorded_since: float | None
    checked_through: float | None = None  # None: not known yet (no venue sync so far)


def _split(items: list[T], take: Callable[[T], bool]) -> tuple[list[T], list[T]]:
    """``items`` parted into those ``take`` picks and the rest, each in order, looking at
    each item once (a future that completes meanwhile waits for the next look)."""
    taken: list[T] = []
    kept: list[T] = []
    for item in items:
        (taken if take(item) else kept).append(item)
    return taken, kept


@dataclass(frozen=True, slots=True)
class _Placing:
    """An order sent to the exchange, its reply future, and what to do with the answer;
    ``price``: the price it was sized at (its signal's), which an entry decided before the
    reply counts it at (or the mark, if higher)."""

    order: PlaceOrder
    future: ReplyFuture[Any] | None
    probe: bool
    reduces: bool
    exit_reason: str | None
    price: Decimal = ZERO
    sent_at: float = 0.0  # clock.now() when it was sent


class ExecutorActor(SupervisedActor):
    """Owns the orders it has sent in this incarnation and the fills still to record."""

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
        order_timeout: float = Field(5.0, gt=0)
        record_attempts: int = Field(5, ge=1)
        venue_sync: Literal["recent", "full", "off"] = "recent"
        venue_sync_lookback: float = Field(86400.0, ge=0)  # venue seconds before the newest
        venue_sync_batch: int = Field(1000, ge=1)  # fills per RecordFills
        venue_sync_retry: float = Field(1.0, gt=0)  # seconds between failed syncs
        duplicate_check_margin: float = Field(3600.0, ge=0)  # venue s, see the docstring
        positions: str = "positions"
        breaker: str = "breaker"
        exchange: str = "exchange"
        alerts: str = "alerts"

    def __init__(self, settings: ExecutorActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or ExecutorActor.Settings()
        self.sent: list[tuple[str, str, bool, str]] = []
        self.seen: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.filled = 0
        self.fills_recorded = 0
        self.unrecorded: list[Fill] = []
        # fills sent to the ledger whose acknowledgement has not been read yet
        self.recording: list[tuple[Fill, ReplyFuture[Any]]] = []
        # orders sent to the exchange whose reply has not been read yet
        self.placing: list[_Placing] = []
        self.unknown: dict[str, str] = {}  # client order id -> symbol: sent, outcome unknown
        self.refused_fills: list[Fill] = []  # fills the ledger refused for good (alerted)
        self.exits: list[tuple[str, str]] = []
        self.recovered = 0
        self.synced = False
        self._sync_from: float | None = None  # an earlier instance's oldest unrecorded fill
        # signals at or before this time may have been sent by an earlier instance: check
        # them; until the start sync has set it, everything would be checked
        self._checked_through: float | None = None
        self._acted = -math.inf  # the newest signal time this instance acted on
        self._sync_pending = False
        self._retrier: Retrier | None = None

    def on_start(self) -> None:
        self._retrier = Retrier(attempts=self.settings.record_attempts, clock=self.ctx.clock)
        earlier = self.ctx.peek(self.ctx.name)
        if isinstance(earlier, ExecutorState):
            self._sync_from = earlier.unrecorded_since
            self._checked_through = earlier.checked_through
        if self.settings.venue_sync == "off":
            self._checked_through = math.inf  # nothing known of earlier processes
            self.synced = True
            return
        try:
            self._sync_venue()
        except Exception as exc:
            self._sync_failed(exc)

    def on_stop(self) -> None:
        if self.placing:
            self._settle_orders()  # a clean stop leaves no order unanswered
        if self.recording:
            self._settle()  # nor a fill unacknowledged

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Replied):  # an order's reply came: its fills go to the ledger
            if self.placing:
                self._settle_orders(only_answered=True)
            return None
        if isinstance(message, _RetrySync):
            self._sync_pending = False
            if self.synced:
                return None
        if isinstance(message, (SyncVenue, _RetrySync)):
            try:
                return self._sync_venue()
            except Exception as exc:
                self._sync_failed(exc)
                if isinstance(message, SyncVenue) and self._reply_to is not None:
                    raise
                return None
        if self.unrecorded or self.unknown:
            self._record_pending()
        match message:
            case Signal():
                if self._ready(message.signal_id):
                    self._on_signal(message)
            case ExitRequest():
                if self._ready(message.signal_id):
                    self._on_exit(message)
            case GetExecutorStats():
                if self.placing:
                    self._settle_orders()
                if self.recording:
                    self._settle()
                return ExecutorStats(len(self.sent), self.filled, dict(self.refused),
                                     dict(self.skipped), self.fills_recorded,
                                     len(self.unrecorded), tuple(self.sent), self.recovered,
                                     self.synced, tuple(self.exits))
            case _:
                return super().on_receive(message)
        return None

    # -- venue sync ----------------------------------------------------------------------------
    def _ready(self, what: str) -> bool:
        """No order before the ledger has every venue fill (it sizes and guards orders)."""
        if self.synced:
            return True
        self._skip("venue not reconciled yet")
        log.warning("not acting on %s: the ledger is not reconciled with the venue yet", what)
        return False

    def _sync_venue(self) -> int:
        """Record every venue fill the ledger lacks; returns how many were recovered."""
        s = self.settings
        assert self._retrier is not None
        # This instance's own orders and fills first: a fill it is still sending is not one
        # the ledger lacks (it would be counted, and alerted, as recovered)
        if self.placing:
            self._settle_orders()
        if self.recording:
            self._settle()
        since: float | None = None
        newest: Any = None
        if s.venue_sync == "recent":
            newest = self.ctx.ask(s.positions, GetLastFillTime(), timeout=s.order_timeout)
            if newest is not None:
                since = float(newest) - s.venue_sync_lookback
                if self._sync_from is not None:
                    since = min(since, self._sync_from)
        fills = self.ctx.ask(s.exchange, GetVenueFills(since), timeout=s.order_timeout)
        if self._checked_through is None:  # the first instance of this process
            times = [f.at for f in fills]
            if s.venue_sync == "recent" and newest is not None:
                times.append(float(newest))
            self._checked_through = max(times) + s.duplicate_check_margin if times \
                else -math.inf
        recovered: list[Fill] = []
        rejected: list[tuple[str, str]] = []
        for start in range(0, len(fills), s.venue_sync_batch):
            chunk = fills[start : start + s.venue_sync_batch]
            reply = self._retrier.call(self.ctx.ask, s.positions, RecordFills(tuple(chunk)),
                                       timeout=s.order_timeout)
            assert isinstance(reply, FillsRecorded)
            new = {r.fill_id for r in reply.recorded if not r.duplicate}
            recovered.extend(f for f in chunk if f.fill_id in new)
            rejected.extend(reply.rejected)
        self.synced = True
        self._sync_from = None
        self.recovered += len(recovered)
        self._publish_state()
        where = "venue fill(s)" + ("" if since is None else f" since venue time {since:.0f}")
        if recovered:
            listed = ", ".join(f"{f.fill_id} {f.side.value} {f.quantity} {f.symbol}"
                               for f in recovered[:5])
            more = f" and {len(recovered) - 5} more" if len(recovered) > 5 else ""
            log.warning("venue sync: recorded %d fill(s) the ledger lacked (%s%s); %d %s "
                        "checked", len(recovered), listed, more, len(fills), where)
            self.ctx.try_tell(s.alerts, Alert(
                "executor.venue_sync", "warning",
                f"Recovered {len(recovered)} fill(s) the ledger lacked",
                f"the venue had filled them but the ledger had no record (a crash between "
                f"fill and record): {listed}{more}"))
        else:
            log.info("venue sync: the ledger has all %d %s", len(fills), where)
        if rejected:
            log.error("venue sync: the ledger refused %d venue fill(s): %s", len(rejected),
                      "; ".join(f"{fid}: {why}" for fid, why in rejected[:5]))
            self.ctx.try_tell(s.alerts, Alert(
                "executor.venue_sync_rejected", "critical",
                f"The ledger refused {len(rejected)} venue fill(s)",
                "; ".join(f"{fid}: {why}" for fid, why in rejected[:5])))
        return len(recovered)

    def _sync_failed(self, exc: Exception) -> None:
        s = self.settings
        self.synced = False
        log.error("venue sync failed (%s: %s); no orders until it succeeds, retrying in %gs",
                  type(exc).__name__, exc, s.venue_sync_retry)
        self.ctx.try_tell(s.alerts, Alert(
            "executor.venue_sync_failed", "error", "Venue sync failed; not trading",
            f"{type(exc).__name__}: {exc}"))
        if not self._sync_pending:
            self._sync_pending = True
            self.ctx.schedule(s.venue_sync_retry, _RetrySync())

    def _publish_state(self) -> None:
        oldest = min((f.at for f in self.unrecorded), default=None)
        if self.recording:
            sending = min(f.at for f, _ in self.recording)
            oldest = sending if oldest is None else min(oldest, sending)
        if self._sync_from is not None:
            oldest = self._sync_from if oldest is None else min(oldest, self._sync_from)
        checked = self._checked_through
        if checked is not None:
            checked = max(checked, self._acted)
        self.ctx.publish(ExecutorState(oldest, checked))

    def _acting_on(self, at: float) -> None:
        """About to send an order for a signal of time ``at``: publish the mark first, so an
        instance started after a crash in the middle of the send checks that signal."""
        if at > self._acted:
            self._acted = at
            self._publish_state()

    # -- deciding ------------------------------------------------------------------------------
    def _portfolio(self, symbol: str) -> PortfolioSnapshot | None:
        """The position actor's snapshot for a decision about ``symbol`` alone (a sale):
        any reply or acknowledgement still outstanding for that symbol is read first, so
        the snapshot has every fill this executor made in it."""
        if self.placing:
            self._settle_orders(symbol=symbol)
        if self.recording:
            self._settle(symbol=symbol)
        return self._snapshot()

    def _entry_portfolio(self, symbol: str
                         ) -> tuple[PortfolioSnapshot | None, list[Fill], list[_Placing]]:
        """The snapshot for an entry in ``symbol``, the buy fills the ledger has not
        acknowledged yet, and the buy orders the exchange has not answered yet (an entry
        depends on the whole account).

        Replies and acknowledgements already in are read first. An order or a fill of
        ``symbol`` itself is waited for; those of other symbols are returned instead, to be
        counted against cash, exposure and open positions (:meth:`_on_signal`), so an entry
        need not wait for another symbol's order or commit. The count is conservative: a
        fill the snapshot already has is counted twice (less cash, more exposure), an
        unanswered buy counts with ``in_flight_margin_pct`` on top of its price, and
        sales (they free cash and close positions) are not counted."""
        if self.placing:
            self._settle_orders(only_answered=True)
            self._settle_orders(symbol=symbol)
        if self.recording:
            self._settle(only_acknowledged=True)
            self._settle(symbol=symbol)
        return (self._snapshot(), [f for f, _ in self.recording if f.side is Side.BUY],
                [p for p in self.placing if p.order.side is Side.BUY])

    def _snapshot(self) -> PortfolioSnapshot | None:
        snap = self.ctx.peek(self.settings.positions)
        return snap if isinstance(snap, PortfolioSnapshot) else None

    def _skip(self, why: str) -> None:
        self.skipped[why] += 1

    def _sale_in_flight(self, symbol: str) -> bool:
        """Is a sale of ``symbol`` sent and not yet in the ledger? Then another sale (a
        strategy's and an exit's, or a repeat) is skipped at once: the first sells all that
        was held. Waiting for it (an exchange round trip and a commit) only to find nothing
        left would hold up every order behind; should it fail or fill in part, the next
        sale signal or exit sells what remains. Replies and acknowledgements already in are
        read first; a sale unanswered for ``order_timeout`` is waited out (then looked up)
        instead, so a lost reply cannot block the symbol's sales."""
        if self.placing:
            self._settle_orders(only_answered=True)
            now = self.ctx.clock.now()
            for p in self.placing:
                if p.order.symbol == symbol and p.order.side is Side.SELL:
                    if now - p.sent_at < self.settings.order_timeout:
                        return True
                    self._settle_orders(symbol=symbol)
                    break
        if self.recording:
            self._settle(only_acknowledged=True)
        return any(f.symbol == symbol and f.side is Side.SELL for f, _ in self.recording)

    def _on_signal(self, signal: Signal) -> None:
        # a sell depends on its symbol's position only; a buy on the whole account
        if signal.side is Side.SELL:
            if self._sale_in_flight(signal.symbol):
                self._skip("sale already in flight")
                return
            snap = self._portfolio(signal.symbol)
            held = snap.positions.get(signal.symbol) if snap is not None else None
            if held is None or held.quantity <= 0:
                self._skip("sell signal without a position")
                return
            self._order(signal.signal_id, signal.symbol, Side.SELL, held.quantity, signal.at,
                        reduces=True)
            return
        snap, writing, unanswered = self._entry_portfolio(signal.symbol)
        if snap is None:
            self._skip("no portfolio yet")
            return
        if signal.symbol in snap.positions:
            self._skip("already holding")
            return
        opening = ({f.symbol for f in writing} | {p.order.symbol for p in unanswered}) \
            - snap.positions.keys()
        if len(snap.positions) + len(opening) >= self.settings.max_open_positions:
            self._skip("max open positions")
            return
        price = Decimal(repr(signal.price))
        qty = self._size(signal, price, snap, writing, unanswered)
        if qty is None:
            return
        self._order(signal.signal_id, signal.symbol, Side.BUY, qty, signal.at, reduces=False,
                    price=price)

    def _on_exit(self, request: ExitRequest) -> None:
        if self._sale_in_flight(request.symbol):
            self._skip("sale already in flight")
            return
        snap = self._portfolio(request.symbol)
        held = snap.positions.get(request.symbol) if snap is not None else None
        if held is None or held.quantity <= 0:
            self._skip("exit without a position")
            return
        self._order(request.signal_id, request.symbol, Side.SELL, held.quantity, request.at,
                    reduces=True, exit_reason=request.reason)

    def _size(self, signal: Signal, price: Decimal, snap: PortfolioSnapshot,
              writing: list[Fill], unanswered: list[_Placing]) -> Decimal | None:
        """Size an entry at ``price`` by risk, capped by position size, exposure and cash.

        The buy fills in ``writing`` (not in the ledger yet) count as the snapshot will
        once they are in, or worse: cash less their cost and fees; equity less their fees
        and what they paid over the mark; exposure plus each at the higher of its fill
        price and its mark. A buy order not answered yet counts at its price (or the mark,
        if higher) plus ``in_flight_margin_pct``: all of it off cash and onto exposure, the
        margin off equity."""
        s = self.settings
        equity, cash, gross = snap.equity, snap.cash, snap.gross_exposure
        for fill in writing:
            mark = snap.marks.get(fill.symbol, fill.price)
            cash -= fill.quantity * fill.price + fill.fee
            equity -= fill.fee + max(ZERO, (fill.price - mark) * fill.quantity)
            gross += max(fill.price, mark) * fill.quantity
        if unanswered:
            margin = 1 + s.in_flight_margin_pct / 100
            for placing in unanswered:
                mark = snap.marks.get(placing.order.symbol, placing.price)
                notional = placing.order.quantity * max(placing.price, mark)
                cost = notional * margin
                cash -= cost
                equity -= cost - notional
                gross += cost
        if price <= 0 or equity <= 0:
            self._skip("no equity")
            return None
        stop = Decimal(repr(signal.stop_distance)) if signal.stop_distance > 0 else \
            price * s.default_stop_pct / 100
        qty = equity * s.risk_per_trade_pct / 100 / stop
        notional_cap = min(
            equity * s.max_position_pct / 100,
            equity * s.max_exposure_pct / 100 - gross,
            cash * Decimal("0.98"),
        )
        qty = min(qty, notional_cap / price).quantize(Decimal("0.00000001"), ROUND_DOWN)
        if qty <= 0 or qty * price < s.min_notional:
            self._skip("below minimum size or no headroom")
            return None
        return qty

    # -- sending -------------------------------------------------------------------------------
    def _order(self, signal_id: str, symbol: str, side: Side, qty: Decimal, at: float, *,
               reduces: bool, exit_reason: str | None = None, price: Decimal = ZERO) -> None:
        s = self.settings
        unsettled = self._unsettled_symbols()
        if symbol in unsettled or (unsettled and not reduces):
            # The portfolio does not show every fill yet: sizing and "already holding" could
            # be wrong. No new risk anywhere, and nothing more for these symbols, until then.
            self._skip("earlier fills or orders not settled yet")
            return
        coid = client_order_id(signal_id)
        if coid in self.seen:
            self._skip("signal already handled")
            return
        checked = self._checked_through
        if (checked is None or at <= checked) and self._known(coid):
            self.seen.add(coid)
            return  # an earlier instance may have sent it: it did
        # Only now ask the breaker: in HALF_OPEN the check takes a probe slot, which must go
        # to an order that is really sent (and reported back with a ProbeResult).
        permission: Permission = gate_or_unknown(self.ctx.peek(s.breaker)).check(
            OrderIntent(symbol, reduces_exposure=reduces))
        if not permission.allowed:
            self.refused[permission.state.value] += 1
            return
        self.seen.add(coid)
        self._acting_on(at)
        order = PlaceOrder(coid, symbol, side, qty, reduce_only=reduces)
        self.sent.append((coid, side.value, reduces, permission.state.value))
        if exit_reason is not None:
            self.exits.append((coid, exit_reason))
        try:
            future = self.ctx.ask_notify(s.exchange, order, coid)
        except RuntimeErrorBase as exc:
            log.warning("order %s not sent (%s); looking it up", coid, exc)
            self._settled(_Placing(order, None, permission.probe, reduces, exit_reason),
                          self._look_up(order))
            return
        self.placing.append(_Placing(order, future, permission.probe, reduces, exit_reason,
                                     price, self.ctx.clock.now()))

    def _settle_orders(self, only_answered: bool = False, symbol: str | None = None) -> None:
        """Read the exchange's replies to the orders sent by :meth:`_order` (a lost reply
        is looked up by client order id, never resubmitted), then act on each: all of
        them (or those of ``symbol``), waiting as needed, or ``only_answered`` (those
        already in, as when a ``Replied`` says one came)."""
        if only_answered or symbol is not None:
            pending, waiting = _split(self.placing, (lambda p: p.future is not None
                                                     and p.future.done()) if only_answered
                                      else (lambda p: p.order.symbol == symbol))
            if not pending:
                return
            self.placing = waiting
        else:
            pending, self.placing = self.placing, []
        for placing in pending:
            assert placing.future is not None
            try:
                reply = placing.future.get(timeout=self.settings.order_timeout)
                result = reply if isinstance(reply, OrderResult) else None
            except Exception as exc:  # no answer, or the exchange failed on it: unknown
                log.warning("no reply to order %s (%s: %s); looking it up",
                            placing.order.client_order_id, type(exc).__name__, exc)
                result = self._look_up(placing.order)
            self._settled(placing, result)

    def _settled(self, placing: _Placing, result: OrderResult | None) -> None:
        s = self.settings
        order = placing.order
        ok = result is not None and result.status == "filled"
        self.ctx.try_tell(s.breaker, ApiResult(ok, "place_order"))
        if placing.probe:
            self.ctx.try_tell(s.breaker, ProbeResult(ok, result.reason if result else "no reply"))
        if result is None:
            self.unknown[order.client_order_id] = order.symbol  # looked up before anything else
            self._publish_state()
            return
        if not ok:
            log.warning("order %s for %s rejected: %s", order.client_order_id, order.symbol,
                        result.reason)
            return
        self.filled += 1
        for fill in result.fills:
            log.info("filled %s %s %s @ %s (%s)", fill.side.value, fill.quantity, fill.symbol,
                     fill.price,
                     placing.exit_reason or ("exit" if placing.reduces else "entry"))
            self._send_fill(fill)
        self._publish_state()

    def _send_fill(self, fill: Fill) -> None:
        """Send ``fill`` to the ledger without waiting for its commit: the executor is free
        for the next order while the ledger writes. The acknowledgement is read before the
        next decision that depends on the fill (:meth:`_portfolio`), so none is ever made
        on a portfolio that lacks it; until then the fill counts as unrecorded in the state
        this actor publishes, so a restart after a crash looks for it at the venue."""
        try:
            future = self.ctx.ask_future(self.settings.positions, RecordFill(fill))
        except RuntimeErrorBase:
            self._record(fill)  # the ledger is not taking messages: the retrying way
            return
        self.recording.append((fill, future))

    def _settle(self, only_acknowledged: bool = False, symbol: str | None = None) -> None:
        """Read the ledger's acknowledgements of the fills sent by :meth:`_send_fill`: all
        of them (or those of ``symbol``), waiting as needed, or ``only_acknowledged``
        (those already in). A fill that failed goes the retrying way (:meth:`_record`)."""
        if only_acknowledged or symbol is not None:
            pending, waiting = _split(self.recording, (lambda e: e[1].done())
                                      if only_acknowledged
                                      else (lambda e: e[0].symbol == symbol))
            if not pending:
                return
            self.recording = waiting
        else:
            pending, self.recording = self.recording, []
        for fill, future in pending:
            try:
                future.get(timeout=self.settings.order_timeout)
            except InvalidFill as exc:
                self._refused(fill, exc)
                continue
            except Exception as exc:  # a timeout, or the ledger failed before the commit
                log.warning("fill %s not acknowledged (%s: %s); sending it again",
                            fill.fill_id, type(exc).__name__, exc)
                self._record(fill)
                continue
            self.fills_recorded += 1
        self._publish_state()

    def _known(self, coid: str) -> bool:
        """Could an earlier instance have sent it: is it in the ledger, or at the exchange?"""
        s = self.settings
        try:
            if self.ctx.ask(s.positions, HasOrder(coid), timeout=s.order_timeout):
                self._skip("already in the ledger")
                return True
            found = self.ctx.ask(s.exchange, LookupOrder(coid), timeout=s.order_timeout)
        except RuntimeErrorBase as exc:
            self._skip(f"could not check for duplicates: {type(exc).__name__}")
            return True  # unsure: never risk a duplicate order
        if isinstance(found, OrderResult):
            self._skip("already at the exchange")
            for fill in found.fills:
                self._record(fill)
            return True
        return False

    def _look_up(self, order: PlaceOrder) -> OrderResult | None:
        """What happened to ``order`` at the exchange (None: still unknown). Never resends."""
        try:
            found = self.ctx.ask(self.settings.exchange, LookupOrder(order.client_order_id),
                                 timeout=self.settings.order_timeout)
        except RuntimeErrorBase:
            found = None
        return found if isinstance(found, OrderResult) else None

    # -- recording fills -----------------------------------------------------------------------
    def _record(self, fill: Fill, *, retry: bool = True) -> None:
        """Send ``fill`` to the ledger (with retries unless ``retry`` is False: a pending
        fill is tried once per message, so the executor never stalls on a ledger that is
        down)."""
        assert self._retrier is not None
        s = self.settings
        try:
            if retry:
                self._retrier.call(self.ctx.ask, s.positions, RecordFill(fill),
                                   timeout=s.order_timeout)
            else:
                self.ctx.ask(s.positions, RecordFill(fill), timeout=s.order_timeout)
            self.fills_recorded += 1
        except InvalidFill as exc:  # the ledger refuses it: retrying cannot change that
            self._refused(fill, exc)
        except Exception as exc:
            self.unrecorded.append(fill)
            self._publish_state()
            if not retry:
                return  # still pending: already logged and alerted
            log.error("fill %s not recorded yet (%s); will retry", fill.fill_id, exc)
            self.ctx.try_tell(self.settings.alerts, Alert(
                "executor.fill_unrecorded", "critical", "A fill could not be recorded yet",
                f"{fill.fill_id} {fill.side.value} {fill.quantity} {fill.symbol}: {exc}"))

    def _refused(self, fill: Fill, exc: InvalidFill) -> None:
        self.refused_fills.append(fill)
        log.critical("the ledger refused fill %s: %s", fill.fill_id, exc)
        self.ctx.try_tell(self.settings.alerts, Alert(
            f"executor.fill_refused.{fill.fill_id}", "critical",
            "The ledger refused a fill the venue made",
            f"{fill.fill_id} {fill.side.value} {fill.quantity} {fill.symbol}: {exc}"))

    def _record_pending(self) -> None:
        pending, self.unrecorded = self.unrecorded, []
        for fill in pending:
            self._record(fill, retry=False)
        for coid in list(self.unknown):  # orders sent whose outcome is still unknown
            try:
                found = self.ctx.ask(self.settings.exchange, LookupOrder(coid),
                                     timeout=self.settings.order_timeout)
            except RuntimeErrorBase:
                continue  # still unknown: ask again with the next message
            del self.unknown[coid]
            if isinstance(found, OrderResult):
                for fill in found.fills:
                    self._record(fill)
        if not self.unrecorded:
            self._publish_state()

    def _unsettled_symbols(self) -> set[str]:
        """Symbols with a fill not yet in the ledger or an order of unknown outcome."""
        if not self.unrecorded and not self.unknown:
            return set()
        return {f.symbol for f in self.unrecorded} | set(self.unknown.values())
