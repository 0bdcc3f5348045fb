"""The executor's orders from decision to end: sent, answered, looked up, checked, followed.

:class:`OrderLifecycle` owns the order book (:mod:`actors.execution.orders`: every phase
change goes through its table), the orders sent and exits made by this instance, the
checked-through time (a signal at or before it may have been sent by an earlier instance:
checked first, by :mod:`~actors.execution.checks`), the newest signal time acted on, a
halt asked of the breaker and not answered yet, and the exit plan of each symbol's last
entry (its strategy's stop and target, published for the exits actor; forgotten when a sale
fills or the entry ends without a fill). It places what
:func:`~actors.execution.decide.decide` says, acts on the venue's results (fills to the
outbox, the breaker told once), looks a lost reply up by client order id (never resends) and
follows orders open at the venue. It is the decision's
:class:`~actors.execution.decide.InFlight`. What it sends, tells and publishes goes through
:class:`~actors.execution.state.Effects` (the executor, which owns the asks). The rules:
docs/trading-bot.md.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

from actors.common.messages import Alert, Fill, HaltTrading, Side
from actors.execution.checks import DuplicateChecks
from actors.execution.decide import Place
from actors.execution.exit_rules import ExitPlan
from actors.execution.orders import (
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
from actors.execution.outbox import Outbox
from actors.execution.settings import Settings
from actors.execution.sizing import InFlightBuy
from actors.execution.state import Effects, Kind
from actors.execution.venue_sync import VenueSync
from actors.risk.contract import ApiResult, ProbeResult
from actors.strategies.contract import Signal
from actors.venues.contract import LookupOrder, OpenOrder, OrderResult, PlaceOrder
from supervisor.backoff import Backoff
from supervisor.errors import RuntimeErrorBase

__all__ = ["OrderLifecycle"]

log = logging.getLogger("actors.execution.executor")  # the executor's log, for its pieces too

ZERO = Decimal(0)

class OrderLifecycle:
    """Owns this instance's orders (see the module docstring)."""

    def __init__(self, settings: Settings, retry: Backoff, outbox: Outbox,
                 effects: Effects) -> None:
        self.settings, self._retry, self._outbox, self._do = settings, retry, outbox, effects
        self.book = OrderBook()  # client order id -> its order (or duplicate check)
        self.checks = DuplicateChecks(self.book, settings, effects, self._settled)
        self.sent: list[tuple[str, str, bool, str]] = []
        self.exits: list[tuple[str, str]] = []
        self.filled = 0
        # signals at or before this time may have been sent by an earlier instance: check
        # them; until the start sync has set it, everything would be checked
        self.checked_through: float | None = None
        self.acted = -math.inf  # the newest signal time this instance acted on
        # a venue sync found lost state and asked the breaker to halt: no order at all
        # until the breaker has answered (it is HALTED then; an operator resets it)
        self.halt: str | None = None
        self.plans: dict[str, tuple[str, ExitPlan]] = {}  # symbol -> (entry's coid, plan)

    # -- what the decision asks (InFlight) -------------------------------------------------
    @property
    def halt_pending(self) -> bool:
        return self.halt is not None

    def phase(self, coid: str) -> OrderPhase | None:
        return self.book.phase(coid)

    def has_sale(self, symbol: str) -> bool:
        """A sale of ``symbol`` sent and not yet in the ledger: another sale (a strategy's
        and an exit's, or a repeat) is skipped at once, the first sells all that was held.
        Should it fail or fill in part, the next sale signal or exit sells what remains."""
        return self.book.has_sale(symbol) or self._outbox.has_sale(symbol)

    def busy(self, symbol: str) -> bool:
        return self.book.busy(symbol) or self._outbox.busy(symbol)

    def resolving(self) -> bool:
        return self.book.resolving() or self._outbox.resolving()

    def unsettled_symbols(self) -> set[str]:
        return self._outbox.unsettled_symbols() | self.book.unsettled_symbols()

    def writing(self) -> list[Fill]:
        return self._outbox.buys_writing()

    def unanswered(self) -> list[InFlightBuy]:
        return [InFlightBuy(p.order.symbol, p.order.quantity, p.price)
                for p in (r.sent for r in self.book.placing()) if p.order.side is Side.BUY]

    # -- the instance starts and ends ------------------------------------------------------
    def adopt(self, unresolved: tuple[tuple[PlaceOrder, OrderPhase], ...]) -> None:
        """An earlier instance's orders not seen to their end: looked up after the sync."""
        now = self._do.now()
        for order, phase in unresolved:
            still_open = phase in (OrderPhase.OPEN, OrderPhase.OPEN_LOOKING_UP)
            if self.book.get(order.client_order_id) is None:
                self.book.add(OrderRecord(
                    order.client_order_id, order.symbol,
                    placing=Placing(order, False, order.reduce_only, None), due=now,
                    reported=True, open_since=now if still_open else None),
                    OrderEvent.FOLLOW_OPEN if still_open else OrderEvent.ADOPT)

    def synced(self, sync: VenueSync) -> None:
        """A venue sync succeeded: the checked-through time of the first instance of this
        process, and the orders the venue has open followed."""
        if self.checked_through is None:
            newest = sync.newest_fill_time()
            self.checked_through = -math.inf if newest is None \
                else newest + self.settings.duplicate_check_margin
        self._follow_open(sync.open_orders)

    def halting(self, reason: str) -> None:
        """Ask the breaker to halt trading; no order from this instance until it has."""
        self.halt = reason
        try:
            self._do.ask(self.settings.breaker, HaltTrading(reason, by="executor"), "halt")
        except RuntimeErrorBase as exc:
            self.failed("halt", "", exc)

    # -- deciding and placing --------------------------------------------------------------
    def place(self, request: Request, seq: int, d: Place) -> None:
        """Send the order ``d`` (decided for ``request``, arrival ``seq``); an entry's
        exit plan replaces its symbol's (published with the order)."""
        if not d.reduces and isinstance(request, Signal):
            self.plans[request.symbol] = (d.coid, ExitPlan.of(
                request.price, request.stop_distance, request.take_profit))
        if request.at > self.acted:  # published first: an instance started after a crash
            self.acted = request.at  # in the middle of the send checks that signal
            self._do.publish()
        order = PlaceOrder(d.coid, request.symbol, d.side, d.quantity, reduce_only=d.reduces)
        self.sent.append((d.coid, d.side.value, d.reduces, d.permission.state.value))
        if d.exit_reason is not None:
            self.exits.append((d.coid, d.exit_reason))
        record = self.book.add(OrderRecord(d.coid, request.symbol, seq, placing=Placing(
            order, d.permission.probe, d.reduces, d.exit_reason, d.price)), OrderEvent.SEND)
        try:
            self._do.ask(self.settings.exchange, order, "order", d.coid)
        except RuntimeErrorBase as exc:
            log.warning("order %s not sent (%s); looking it up", d.coid, exc)
            self._look_up(record)
            return
        self._do.publish()  # a replacement looks it up if this instance dies now

    # -- on the timer, and per signal ------------------------------------------------------
    def waiting(self) -> list[OrderRecord]:
        """Orders of unknown outcome or open at the venue, with no lookup out."""
        return self.book.in_phase(OrderPhase.UNKNOWN, OrderPhase.OPEN)

    def next_due(self) -> float | None:
        """When the earliest lookup of an order with none out is due."""
        return min((r.due for r in self.waiting()), default=None)

    def look_up_due(self, now: float) -> None:
        for record in self.waiting():
            if record.due <= now:
                self._send_lookup(record)

    def unknown(self) -> list[OrderRecord]:
        return self.book.in_phase(OrderPhase.UNKNOWN)

    def look_up_unknown(self, unknown: list[OrderRecord]) -> None:
        """A signal came: look the orders of unknown outcome up now (an order the venue said
        is still open keeps to the timer: its backoff spares the venue's rate limits)."""
        for record in unknown:
            if record.phase is OrderPhase.UNKNOWN:
                self._send_lookup(record)

    # -- answers ---------------------------------------------------------------------------
    def answered(self, kind: Kind, key: str, value: Any) -> None:
        match kind:
            case "order":
                record = self.book.get(key)
                if record is None or record.phase is not OrderPhase.PLACING:
                    return
                if isinstance(value, OrderResult):
                    self._settled(record, value)
                else:
                    log.warning("no order result for %s (%r); looking it up", key, value)
                    self._look_up(record)
            case "lookup":
                self._looked_up(key, value)
            case "in_ledger":
                self.checks.in_ledger(key, bool(value))
            case "at_venue":
                self.checks.at_venue(key, value)
            case "halt":
                self.halt = None  # the breaker is HALTED (its gate refuses)

    def failed(self, kind: Kind, key: str, exc: Exception) -> None:
        match kind:
            case "order":
                record = self.book.get(key)
                if record is not None and record.phase is OrderPhase.PLACING:
                    log.warning("no reply to order %s (%s: %s); looking it up", key,
                                type(exc).__name__, exc)
                    self._look_up(record)
            case "lookup":
                record = self.book.get(key)
                if record is not None and record.phase in UNRESOLVED:
                    self._lookup_failed(record, exc)
            case "in_ledger" | "at_venue":
                self.checks.unsure(key, exc)
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
                self._do.record(fill)
        if status == "open":
            self._still_open(record, result)
        elif status == "filled":
            self.filled += 1
            self.book.apply(coid, OrderEvent.FILLED)
            if order.reduce_only:  # all that was held is sold
                self.plans.pop(order.symbol, None)
        else:
            log.warning("order %s for %s rejected: %s", coid, order.symbol, result.reason)
            self.book.apply(coid, OrderEvent.REJECTED)
            if not record.fills:
                self._entry_void(order)
        self._do.publish()

    def _entry_void(self, order: PlaceOrder) -> None:
        """``order`` ended without a fill: if it is the entry of its symbol's plan, the
        plan goes (no position came of it)."""
        kept = self.plans.get(order.symbol)
        if kept is not None and kept[0] == order.client_order_id:
            del self.plans[order.symbol]

    def _still_open(self, record: OrderRecord, result: OrderResult) -> None:
        """The venue has the order open: look it up on the timer until it is done; alert
        once it has been open ``open_alert_after`` seconds (no new risk meanwhile)."""
        s = self.settings
        order = record.sent.order
        coid = order.client_order_id
        now = self._do.now()
        record.failures += 1
        if record.open_since is None:
            record.open_since = now
            log.warning("order %s for %s is still open at the exchange (%d fill(s) so far); "
                        "looking it up until it is done", coid, order.symbol,
                        len(result.fills))
        since = record.open_since
        if not record.alerted and now - since >= s.open_alert_after:
            record.alerted = True
            self._do.tell(s.alerts, Alert(
                f"executor.order_open.{coid}", "warning", "An order stays open at the venue",
                f"{coid} {order.side.value} {order.quantity} {order.symbol}: open for "
                f"{now - since:.0f}s, {len(record.fills)} fill(s) so far; no new entries "
                f"until it is done"))
        record.due = now + self._retry.delay(record.failures)
        record.reported = True
        self.book.apply(coid, OrderEvent.STILL_OPEN)

    def _report(self, placing: Placing, ok: bool, reason: str) -> None:
        s = self.settings
        self._do.tell(s.breaker, ApiResult(ok, "place_order"))
        if placing.probe:
            self._do.tell(s.breaker, ProbeResult(ok, reason))

    # -- lost replies: looked up by client order id, never resent --------------------------
    def _look_up(self, record: OrderRecord) -> None:
        """No (usable) answer to ``record``'s order: look it up by client order id."""
        record.due = self._do.now()
        self.book.apply(record.coid, OrderEvent.NO_REPLY)
        self._do.publish()
        if not self._do.syncing():  # else once the sync is done (it must not wait for this)
            self._send_lookup(record)

    def _send_lookup(self, record: OrderRecord) -> None:
        coid = record.coid
        try:
            self._do.ask(self.settings.exchange, LookupOrder(coid), "lookup", coid)
        except RuntimeErrorBase as exc:
            self._lookup_failed(record, exc)
            return
        self.book.apply(coid, OrderEvent.LOOK_UP)
        self._do.publish()

    def _looked_up(self, coid: str, found: Any) -> None:
        record = self.book.get(coid)
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
        self.book.apply(coid, OrderEvent.NOT_FOUND)
        self._entry_void(placing.order)
        self._do.publish()
        if not record.reported:
            self._report(placing, False, "not placed")
        log.warning("order %s for %s was not placed (the exchange has no record of it)",
                    coid, placing.order.symbol)

    def _lookup_failed(self, record: OrderRecord, exc: Exception) -> None:
        self.book.apply(record.coid, OrderEvent.LOOKUP_FAILED)
        record.failures += 1
        record.due = self._do.now() + self._retry.delay(record.failures)
        self._do.publish()
        if not record.reported:
            record.reported = True
            self._report(record.sent, False, "no reply")
            log.warning("order %s: outcome unknown, the lookup failed (%s: %s); no new risk "
                        "until it is known", record.coid, type(exc).__name__, exc)

    def _follow_open(self, orders: tuple[OpenOrder, ...]) -> None:
        """Follow the orders the venue still has open that this instance does not know of
        (an earlier process's): looked up until they are done, no new risk meanwhile."""
        now = self._do.now()
        new = [o for o in orders
               if allowed(self.book.phase(o.order.client_order_id), OrderEvent.FOLLOW_OPEN)]
        for o in orders:
            if self.book.phase(o.order.client_order_id) in TERMINAL:
                log.warning("venue sync: the venue lists order %s open, which it said is %s",
                            o.order.client_order_id,
                            self.book.phase(o.order.client_order_id))
        for o in new:
            self.book.add(OrderRecord(
                o.order.client_order_id, o.order.symbol,
                placing=Placing(o.order, False, o.order.reduce_only, None), due=now,
                reported=True, fills={f.fill_id for f in o.fills}, open_since=now),
                OrderEvent.FOLLOW_OPEN)
        if new:
            log.warning("venue sync: following %d order(s) the venue still has open: %s",
                        len(new), ", ".join(f"{o.order.client_order_id} {o.order.side.value} "
                                            f"{o.order.quantity} {o.order.symbol}"
                                            for o in new[:5]))
