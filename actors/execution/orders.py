"""An order's lifecycle as one table, and the book of the executor's orders by client order id.

:data:`TABLE` says which event moves an order in which phase where (``None``: no record:
before its first event, or after it was handed over or decided without an order). The
executor's order lifecycle (``lifecycle.py``, its duplicate checks in ``checks.py``) is the
book's only writer: every change of an order's phase goes through :meth:`OrderBook.add` or
:meth:`OrderBook.apply`, and an event the table does not allow from the order's phase
raises :class:`IllegalTransition`. A client order id is placed at most once, and a terminal
phase is final. The book keeps the unresolved and placing records as they move, so what the
executor publishes costs only those. Pure: no actor, no clock (times are passed in).
The machine drawn: docs/state-machines.md ("Orders").

>>> book = OrderBook()
>>> book.add(OrderRecord("bv-1", "BTC/USDT"), OrderEvent.CHECK).phase
<OrderPhase.CHECKING_LEDGER: 'checking_ledger'>
>>> book.apply("bv-1", OrderEvent.SEND)
Traceback (most recent call last):
...
actors.execution.orders.IllegalTransition: order bv-1: send is not allowed from checking_ledger
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from actors.common.messages import Side
from actors.execution.contract import ExitRequest
from actors.strategies.contract import Signal
from actors.venues.contract import PlaceOrder

__all__ = [
    "CHECKS",
    "IN_FLIGHT",
    "SETTLED",
    "TABLE",
    "TERMINAL",
    "UNRESOLVED",
    "IllegalTransition",
    "OrderBook",
    "OrderEvent",
    "OrderPhase",
    "OrderRecord",
    "Placing",
    "Request",
    "allowed",
    "next_phase",
]

Request = Signal | ExitRequest  # what the executor acts on


class OrderPhase(enum.StrEnum):
    """Where an order (or the signal that may become one) is."""

    CHECKING_LEDGER = "checking_ledger"  # duplicate check: is it in the ledger?
    CHECKING_VENUE = "checking_venue"  # duplicate check: is it at the venue?
    CHECKED_NEW = "checked_new"  # both said no: decided again, in its arrival order
    PLACING = "placing"  # sent to the venue, unanswered
    UNKNOWN = "unknown"  # outcome not known; a lookup is due
    LOOKING_UP = "looking_up"  # outcome not known; a lookup is out
    OPEN = "open"  # the venue has it open; a lookup is due (on the timer)
    OPEN_LOOKING_UP = "open_looking_up"  # the venue had it open; a lookup is out
    FILLED = "filled"
    REJECTED = "rejected"  # the venue refused or cancelled it
    NOT_PLACED = "not_placed"  # the venue has no record of it
    DUPLICATE = "duplicate"  # the check found it in the ledger or at the venue: skipped
    UNCHECKED = "unchecked"  # the check failed: skipped (never risk a duplicate)
    # FILLED and REJECTED are terminal; NOT_PLACED, DUPLICATE and UNCHECKED are settled
    # (nothing out or due) until the venue lists the order open


class OrderEvent(enum.StrEnum):
    """What moves an order."""

    CHECK = "check"  # an earlier instance may have sent it: ask the ledger
    NOT_IN_LEDGER = "not_in_ledger"  # the ledger has no such order: ask the venue
    FOUND = "found"  # the ledger or the venue has it (done)
    NEW = "new"  # the venue has no such order either
    UNSURE = "unsure"  # a check's ask failed
    DECIDED = "decided"  # a checked signal was decided without an order
    HANDED_OVER = "handed_over"  # the instance ends: the signal goes to its replacement
    SEND = "send"  # the order goes to the venue
    NO_REPLY = "no_reply"  # no (usable) answer to the order: look it up
    FILLED = "filled"  # the venue's result: filled
    REJECTED = "rejected"  # the venue's result: anything but filled or open
    STILL_OPEN = "still_open"  # the venue's result: open (filled in part, or not yet)
    LOOK_UP = "look_up"  # a lookup by client order id is sent
    LOOKUP_FAILED = "lookup_failed"  # a lookup's ask failed (retried with backoff)
    NOT_FOUND = "not_found"  # the lookup: the venue has no such order
    ADOPT = "adopt"  # an earlier instance's order of unknown outcome
    FOLLOW_OPEN = "follow_open"  # an order the venue lists open (an earlier instance's)


class IllegalTransition(RuntimeError):
    """An event the table does not allow from an order's phase."""


_P, _E = OrderPhase, OrderEvent
_RESULTS = (_P.PLACING, _P.LOOKING_UP, _P.OPEN_LOOKING_UP)  # where a venue's result lands
_CHECKING = (_P.CHECKING_LEDGER, _P.CHECKING_VENUE)

TABLE: MappingProxyType[tuple[OrderPhase | None, OrderEvent], OrderPhase | None] = (
    MappingProxyType({
        (None, _E.CHECK): _P.CHECKING_LEDGER,
        (_P.CHECKING_LEDGER, _E.NOT_IN_LEDGER): _P.CHECKING_VENUE,
        **{(p, _E.FOUND): _P.DUPLICATE for p in _CHECKING},
        **{(p, _E.UNSURE): _P.UNCHECKED for p in _CHECKING},
        (_P.CHECKING_VENUE, _E.NEW): _P.CHECKED_NEW,
        (_P.CHECKING_VENUE, _E.STILL_OPEN): _P.OPEN,  # an earlier instance's, followed
        (_P.CHECKED_NEW, _E.DECIDED): None,  # checked again if it comes again
        **{(p, _E.HANDED_OVER): None for p in (*_CHECKING, _P.CHECKED_NEW)},
        (None, _E.SEND): _P.PLACING,
        (_P.CHECKED_NEW, _E.SEND): _P.PLACING,
        (_P.PLACING, _E.NO_REPLY): _P.UNKNOWN,
        **{(p, _E.FILLED): _P.FILLED for p in _RESULTS},
        **{(p, _E.REJECTED): _P.REJECTED for p in _RESULTS},
        **{(p, _E.STILL_OPEN): _P.OPEN for p in _RESULTS},
        (_P.UNKNOWN, _E.LOOK_UP): _P.LOOKING_UP,
        (_P.OPEN, _E.LOOK_UP): _P.OPEN_LOOKING_UP,
        (_P.UNKNOWN, _E.LOOKUP_FAILED): _P.UNKNOWN,  # the lookup could not be sent
        (_P.LOOKING_UP, _E.LOOKUP_FAILED): _P.UNKNOWN,
        (_P.OPEN, _E.LOOKUP_FAILED): _P.OPEN,
        (_P.OPEN_LOOKING_UP, _E.LOOKUP_FAILED): _P.OPEN,  # incl. "no such order" once open
        (_P.LOOKING_UP, _E.NOT_FOUND): _P.NOT_PLACED,
        (None, _E.ADOPT): _P.UNKNOWN,
        (None, _E.FOLLOW_OPEN): _P.OPEN,
        (_P.CHECKED_NEW, _E.FOLLOW_OPEN): _P.OPEN,
        # the venue lists it open: it reached the venue after the lookup, or an earlier
        # instance's order (a duplicate check's) is still open
        **{(p, _E.FOLLOW_OPEN): _P.OPEN
           for p in (_P.NOT_PLACED, _P.DUPLICATE, _P.UNCHECKED)},
    }))

_SOURCES = frozenset(p for p, _ in TABLE if p is not None)
TERMINAL = frozenset(p for p in OrderPhase if p not in _SOURCES)  # final: nothing leaves
UNRESOLVED = frozenset({_P.UNKNOWN, _P.LOOKING_UP, _P.OPEN, _P.OPEN_LOOKING_UP})
CHECKS = frozenset(_CHECKING)  # a duplicate check out
IN_FLIGHT = frozenset({*CHECKS, _P.PLACING, _P.LOOKING_UP, _P.OPEN_LOOKING_UP})  # an ask out
# nothing out, nothing due (only the venue listing the order open moves one on)
SETTLED = TERMINAL | {_P.NOT_PLACED, _P.DUPLICATE, _P.UNCHECKED}


def allowed(phase: OrderPhase | None, event: OrderEvent) -> bool:
    """Does the table move an order in ``phase`` by ``event``?"""
    return (phase, event) in TABLE


def next_phase(coid: str, phase: OrderPhase | None, event: OrderEvent) -> OrderPhase | None:
    """Where ``event`` moves an order in ``phase``; raises :class:`IllegalTransition` when
    the table has no such move."""
    try:
        return TABLE[phase, event]
    except KeyError:
        where = phase.value if phase is not None else "no record"
        raise IllegalTransition(
            f"order {coid}: {event.value} is not allowed from {where}") from None


@dataclass(frozen=True, slots=True)
class Placing:
    """An order sent (or to send) to the venue and what to do with its answer; ``price``:
    the price it was sized at (its signal's), which an entry decided before the reply
    counts it at (or the mark, if higher)."""

    order: PlaceOrder
    probe: bool
    reduces: bool
    exit_reason: str | None
    price: Decimal = Decimal(0)


@dataclass(slots=True, eq=False)
class OrderRecord:
    """One order (or signal under a duplicate check) by client order id. Its phase is the
    book's to set; the rest is the executor's data about it: ``seq`` and ``request`` (a
    signal under a check, by arrival number), ``placing`` (the order), lookup ``failures``
    and when the next is ``due``, whether the breaker has heard of it (``reported``), the
    ids of its fills sent to the ledger, since when the venue has it open, and whether
    that was alerted."""

    coid: str
    symbol: str
    seq: int = 0
    request: Request | None = None
    placing: Placing | None = None
    failures: int = 0
    due: float = 0.0
    reported: bool = False
    fills: set[str] = field(default_factory=set)
    open_since: float | None = None
    alerted: bool = False
    _phase: OrderPhase | None = field(default=None, init=False, repr=False)

    @property
    def phase(self) -> OrderPhase:
        assert self._phase is not None, f"order {self.coid} is not in a book"
        return self._phase

    @property
    def sent(self) -> Placing:
        """The order (a record past its checks has one)."""
        assert self.placing is not None, f"order {self.coid} has no order yet"
        return self.placing


class OrderBook:
    """Owns the executor's order records by client order id, and each one's phase. The
    questions below look at the live records only (not settled), so they cost what is in
    flight, not the history."""

    def __init__(self) -> None:
        self._live: dict[str, OrderRecord] = {}  # not settled
        self._settled: dict[str, OrderRecord] = {}
        self._counts: dict[OrderPhase, int] = dict.fromkeys(OrderPhase, 0)
        # kept as records move (in the order of their last move), so publishing them
        # costs what is unresolved or placing, not a scan of the live records
        self._unresolved: dict[str, OrderRecord] = {}
        self._placing: dict[str, OrderRecord] = {}

    def __len__(self) -> int:
        return len(self._live) + len(self._settled)

    def __iter__(self) -> Iterator[OrderRecord]:
        return iter([*self._live.values(), *self._settled.values()])

    def get(self, coid: str) -> OrderRecord | None:
        record = self._live.get(coid)
        return record if record is not None else self._settled.get(coid)

    def count(self, phase: OrderPhase) -> int:
        return self._counts[phase]

    def phase(self, coid: str) -> OrderPhase | None:
        record = self.get(coid)
        return record.phase if record is not None else None

    def add(self, record: OrderRecord, event: OrderEvent) -> OrderRecord:
        """``record`` is new to the book (or replaces the one of its client order id, whose
        phase ``event`` must be allowed from): it moves where ``event`` says."""
        current = self.get(record.coid)
        self._move(record, current.phase if current is not None else None, event)
        return record

    def apply(self, coid: str, event: OrderEvent) -> OrderRecord:
        """Move the order ``coid`` by ``event``; returns its record (a record dropped by
        the event is returned once more)."""
        record = self.get(coid)
        if record is None:
            raise IllegalTransition(f"order {coid}: {event.value} is not allowed from no "
                                    "record")
        self._move(record, record.phase, event)
        return record

    def _move(self, record: OrderRecord, phase: OrderPhase | None, event: OrderEvent) -> None:
        target = next_phase(record.coid, phase, event)
        old = self._live.pop(record.coid, None) or self._settled.pop(record.coid, None)
        if old is not None:
            self._counts[old.phase] -= 1
        self._unresolved.pop(record.coid, None)
        self._placing.pop(record.coid, None)
        if target is not None:
            self._counts[target] += 1
            (self._settled if target in SETTLED else self._live)[record.coid] = record
            if target in UNRESOLVED:
                self._unresolved[record.coid] = record
            elif target is _P.PLACING:
                self._placing[record.coid] = record
        record._phase = target

    # -- what the executor asks ------------------------------------------------------------
    def in_phase(self, *phases: OrderPhase) -> list[OrderRecord]:
        source = self._live.values() if SETTLED.isdisjoint(phases) else iter(self)
        return [r for r in source if r.phase in phases]

    def placing(self) -> list[OrderRecord]:
        """Orders sent, unanswered."""
        return list(self._placing.values())

    def unresolved(self) -> list[OrderRecord]:
        """Orders whose outcome is not known yet, or that the venue has open."""
        return list(self._unresolved.values())

    def unsettled_orders(self) -> tuple[tuple[PlaceOrder, OrderPhase], ...]:
        """The orders unresolved, then those placing, each with its phase (what the
        executor publishes for a replacement to look up)."""
        if not self._unresolved and not self._placing:
            return ()
        return (*((r.sent.order, r.phase) for r in self._unresolved.values()),
                *((r.sent.order, r.phase) for r in self._placing.values()))

    def checks(self) -> list[OrderRecord]:
        """Signals whose duplicate check is out, or checked and not decided yet."""
        return [r for r in self._live.values()
                if r.phase in CHECKS or r.phase is _P.CHECKED_NEW]

    def handled(self, coid: str) -> bool:
        """Is ``coid`` known (sent, checked, being checked), so a repeat is skipped?"""
        phase = self.phase(coid)
        return phase is not None and phase is not _P.CHECKED_NEW

    def busy(self, symbol: str) -> bool:
        """Is an ask about an order of ``symbol`` out (an order, a lookup, a check)?"""
        return any(r.symbol == symbol and r.phase in IN_FLIGHT
                   for r in self._live.values())

    def resolving(self) -> bool:
        """Is a lookup out?"""
        return any(r.phase in (_P.LOOKING_UP, _P.OPEN_LOOKING_UP)
                   for r in self._live.values())

    def has_sale(self, symbol: str) -> bool:
        """Is a sale of ``symbol`` sent and unanswered?"""
        return any(r.phase is _P.PLACING and r.symbol == symbol
                   and r.sent.order.side is Side.SELL for r in self._live.values())

    def unsettled_symbols(self) -> set[str]:
        """Symbols with an order of unresolved outcome."""
        return {r.symbol for r in self._live.values() if r.phase in UNRESOLVED}

    def counts(self) -> dict[str, int]:
        """How many orders are in each phase (the phases with any)."""
        return {p.value: n for p, n in self._counts.items() if n}
