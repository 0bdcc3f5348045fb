"""The executor's duplicate checks: a signal an earlier instance may have sent is looked for
before it is acted on.

:class:`DuplicateChecks` moves a checked signal's record in the order book (every change
through its table): it asks the ledger (``HasOrder``), then the venue (``LookupOrder`` by
client order id). Found in the ledger, or done at the venue (its fills recorded): skipped.
Open at the venue: an earlier instance's order, followed (``follow``: the order lifecycle
takes it from there). New: decided again, in its arrival order (``Effects.again``); once
decided without an order its record is dropped, so a repeat is checked again. An ask that
fails: skipped, never risking a duplicate. The instance ending hands the signals under a
check over to its replacement. The rules: docs/trading-bot.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.common.messages import Side
from actors.execution.contract import SkipReason, client_order_id
from actors.execution.decide import is_sale
from actors.execution.orders import (
    CHECKS,
    OrderBook,
    OrderEvent,
    OrderPhase,
    OrderRecord,
    Placing,
    Request,
)
from actors.execution.settings import Settings
from actors.execution.state import Effects
from actors.portfolio.contract import HasOrder
from actors.venues.contract import LookupOrder, OrderResult, PlaceOrder
from supervisor.errors import RuntimeErrorBase

__all__ = ["DuplicateChecks"]

log = logging.getLogger("actors.execution.executor")  # the executor's log, for its pieces too

ZERO = Decimal(0)


class DuplicateChecks:
    """Owns the duplicate checks' steps (see the module docstring); the records are the
    book's."""

    def __init__(self, book: OrderBook, settings: Settings, effects: Effects,
                 follow: Callable[[OrderRecord, OrderResult], None]) -> None:
        self.book, self.settings, self._do, self._follow = book, settings, effects, follow

    def check(self, coid: str, seq: int, request: Request) -> None:
        """Is ``coid`` in the ledger, or at the exchange? Asked in turn; ``request`` is
        decided again once both say no."""
        self.book.add(OrderRecord(coid, request.symbol, seq, request), OrderEvent.CHECK)
        try:
            self._do.ask(self.settings.positions, HasOrder(coid), "in_ledger", coid)
        except RuntimeErrorBase as exc:
            self.unsure(coid, exc)

    def hand_over(self) -> list[tuple[int, Request]]:
        """The instance ends: the signals under a duplicate check, by arrival number (for
        the replacement); their records leave the book."""
        checks = self.book.checks()
        waiting = [(r.seq, r.request) for r in checks
                   if r.phase in CHECKS and r.request is not None]
        for record in checks:
            self.book.apply(record.coid, OrderEvent.HANDED_OVER)
        return waiting

    def decided(self, request: Request) -> None:
        """``request`` was decided: a check that found it new is spent (a repeat is checked
        again, unless an order went out for it)."""
        if self.book.count(OrderPhase.CHECKED_NEW):
            coid = client_order_id(request.signal_id)
            if self.book.phase(coid) is OrderPhase.CHECKED_NEW:
                self.book.apply(coid, OrderEvent.DECIDED)

    def unsure(self, coid: str, exc: Exception) -> None:
        if self.book.phase(coid) in CHECKS:
            self.book.apply(coid, OrderEvent.UNSURE)
        self._do.skip(SkipReason.UNCHECKED)  # never risk a duplicate
        log.warning("not acting on order %s: could not check for duplicates (%s: %s)", coid,
                    type(exc).__name__, exc)

    def in_ledger(self, coid: str, found: bool) -> None:
        if self.book.phase(coid) is not OrderPhase.CHECKING_LEDGER:
            return
        if found:
            self.book.apply(coid, OrderEvent.FOUND)
            self._do.skip(SkipReason.IN_LEDGER)
            return
        self.book.apply(coid, OrderEvent.NOT_IN_LEDGER)
        try:
            self._do.ask(self.settings.exchange, LookupOrder(coid), "at_venue", coid)
        except RuntimeErrorBase as exc:
            self.unsure(coid, exc)

    def at_venue(self, coid: str, found: Any) -> None:
        record = self.book.get(coid)
        if record is None or record.phase is not OrderPhase.CHECKING_VENUE:
            return
        request = record.request
        assert request is not None
        if isinstance(found, OrderResult):
            self._do.skip(SkipReason.AT_VENUE)
            if found.status != "open":
                self.book.apply(coid, OrderEvent.FOUND)
                for fill in found.fills:
                    self._do.record(fill)
                return
            # an earlier instance's order, still open: follow it
            sale = is_sale(request)
            quantity = sum((f.quantity for f in found.fills), ZERO)
            record.placing = Placing(PlaceOrder(coid, request.symbol,
                                                Side.SELL if sale else Side.BUY, quantity,
                                                reduce_only=sale), False, sale, None)
            record.reported = True
            self._follow(record, found)
            return
        self.book.apply(coid, OrderEvent.NEW)
        self._do.again(record.seq, request)  # in arrival order
