"""What the executor does with one signal or exit request: a pure decision.

:func:`decide` takes the request, the portfolio snapshot, the breaker's gate, what is in
flight (:class:`InFlight`: orders placing, fills being recorded, unsettled symbols, the
checked-through time, a halt pending, the order book's phase of a client order id) and the
limits, and returns one of: :class:`Skip` (with a :class:`SkipReason`), :data:`HOLD` (wait for
an answer still out), :class:`Check` (a duplicate check first), :class:`Refuse` (the breaker's
state) or :class:`Place` (the order to send, with the gate's permission). Entries are sized by
:func:`actors.execution.sizing.size_entry`. The gate is asked last, only for an order that is
placed: in HALF_OPEN its check takes a probe slot. Pure: no actor, no clock, no logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from actors.common.messages import Fill, Side
from actors.execution.contract import ExitRequest, SkipReason, client_order_id
from actors.execution.orders import OrderPhase, Request
from actors.execution.sizing import InFlightBuy, RiskLimits, size_entry
from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import BreakerGate, BreakerState, OrderIntent, Permission

__all__ = [
    "HOLD",
    "Check",
    "Decision",
    "Hold",
    "InFlight",
    "Limits",
    "Place",
    "Refuse",
    "Skip",
    "decide",
    "is_sale",
]

ZERO = Decimal(0)


class InFlight(Protocol):
    """What is out or not settled, as the decision asks it (each asked only if needed)."""

    @property
    def checked_through(self) -> float | None:
        """Signals at or before this time may have been sent by an earlier instance (None:
        not known yet, all are)."""

    @property
    def halt_pending(self) -> bool:
        """A halt was asked of the breaker and not answered yet: no order."""

    def phase(self, coid: str) -> OrderPhase | None:
        """The order book's phase of ``coid`` (None: no record)."""

    def has_sale(self, symbol: str) -> bool:
        """A sale of ``symbol`` is sent and not in the ledger yet."""

    def busy(self, symbol: str) -> bool:
        """Something of ``symbol`` is out (an order, a fill, a lookup, a check)."""

    def resolving(self) -> bool:
        """An uncertain fill or order is being resolved (an entry waits for that)."""

    def unsettled_symbols(self) -> set[str]:
        """Symbols with a fill not in the ledger yet or an order of unknown outcome."""

    def writing(self) -> list[Fill]:
        """Buy fills on their way to the ledger."""

    def unanswered(self) -> list[InFlightBuy]:
        """Buy orders sent and not answered yet."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The sizing limits and the most positions open at once."""

    risk: RiskLimits
    max_open_positions: int


@dataclass(frozen=True, slots=True)
class Skip:
    """Do not act on it, for ``reason`` (counted in ``ExecutorStats.skipped``)."""

    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Hold:
    """Wait: an answer the decision depends on is still out."""


HOLD = Hold()


@dataclass(frozen=True, slots=True)
class Check:
    """An earlier instance may have sent it: check ledger and venue for ``coid`` first."""

    coid: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """The breaker refuses (or a halt it has not taken yet stands): its state."""

    state: BreakerState


@dataclass(frozen=True, slots=True)
class Place:
    """Send this order; ``permission`` is the gate's (its probe slot taken, if any)."""

    coid: str
    side: Side
    quantity: Decimal
    reduces: bool
    price: Decimal
    permission: Permission
    exit_reason: str | None = None


Decision = Skip | Hold | Check | Refuse | Place


def is_sale(request: Request) -> bool:
    return isinstance(request, ExitRequest) or request.side is Side.SELL


def decide(request: Request, snap: PortfolioSnapshot | None, gate: BreakerGate,
           flight: InFlight, limits: Limits) -> Decision:
    """What to do with ``request`` (see the module docstring)."""
    symbol = request.symbol
    if is_sale(request):
        if flight.has_sale(symbol):
            return Skip(SkipReason.SALE_IN_FLIGHT)
        if flight.busy(symbol):
            return HOLD
        # a sale depends on its symbol's position only
        held = snap.positions.get(symbol) if snap is not None else None
        if held is None or held.quantity <= 0:
            return Skip(SkipReason.EXIT_WITHOUT_POSITION if isinstance(request, ExitRequest)
                        else SkipReason.SELL_WITHOUT_POSITION)
        reason = request.reason if isinstance(request, ExitRequest) else None
        return _order(request, gate, flight, Side.SELL, held.quantity, reduces=True,
                      exit_reason=reason)
    assert not isinstance(request, ExitRequest)
    if flight.busy(symbol) or flight.resolving():  # an entry decides on the whole account
        return HOLD
    # An entry does not wait for other symbols' orders and fills: they are counted
    # (conservatively: a fill the snapshot already has counts twice, an unanswered buy
    # with in_flight_margin_pct on top, sales not at all) against cash, exposure and
    # open positions.
    if snap is None:
        return Skip(SkipReason.NO_PORTFOLIO)
    if symbol in snap.positions:
        return Skip(SkipReason.ALREADY_HOLDING)
    writing = flight.writing()
    unanswered = flight.unanswered()
    opening = ({f.symbol for f in writing} | {b.symbol for b in unanswered}) \
        - snap.positions.keys()
    if len(snap.positions) + len(opening) >= limits.max_open_positions:
        return Skip(SkipReason.MAX_OPEN_POSITIONS)
    price = Decimal(repr(request.price))
    qty = size_entry(limits.risk, price, request.stop_distance, snap=snap, writing=writing,
                     unanswered=unanswered)
    if isinstance(qty, SkipReason):
        return Skip(qty)
    return _order(request, gate, flight, Side.BUY, qty, reduces=False, price=price)


def _order(request: Request, gate: BreakerGate, flight: InFlight, side: Side, qty: Decimal, *,
           reduces: bool, exit_reason: str | None = None, price: Decimal = ZERO) -> Decision:
    symbol = request.symbol
    unsettled = flight.unsettled_symbols()
    if symbol in unsettled or (unsettled and not reduces):
        # The portfolio does not show every fill yet: sizing and "already holding" could
        # be wrong. No new risk anywhere, and nothing more for these symbols, until then.
        return Skip(SkipReason.UNSETTLED)
    coid = client_order_id(request.signal_id)
    phase = flight.phase(coid)
    if phase is not None and phase is not OrderPhase.CHECKED_NEW:
        return Skip(SkipReason.ALREADY_HANDLED)
    checked = flight.checked_through
    if (checked is None or request.at <= checked) and phase is None:
        return Check(coid)  # an earlier instance may have sent it
    if flight.halt_pending:  # the breaker has not taken the halt yet
        return Refuse(BreakerState.HALTED)
    # Only now ask the breaker: in HALF_OPEN the check takes a probe slot, which must go
    # to an order that is really sent (and reported back with a ProbeResult).
    permission = gate.check(OrderIntent(symbol, reduces_exposure=reduces))
    if not permission.allowed:
        return Refuse(permission.state)
    return Place(coid, side, qty, reduces, price, permission, exit_reason)
