"""Messages of the trading pipeline: bars, candidates, signals, orders, exits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from actors.common.messages import Fill, Side

__all__ = [
    "Bar",
    "Candidates",
    "ExitRequest",
    "GetOpenOrders",
    "LookupOrder",
    "OpenOrder",
    "OrderResult",
    "PlaceOrder",
    "Signal",
    "client_order_id",
]


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar of a symbol (the shape ccxt's fetch_ohlcv returns), ``at`` in seconds."""

    symbol: str
    at: float
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Candidates:
    """The scanner's ranked symbols for this cycle, best first."""

    symbols: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's decision to enter or leave; ``signal_id`` is deterministic."""

    signal_id: str
    strategy: str
    symbol: str
    side: Side
    price: float
    at: float
    reason: str
    stop_distance: float = 0.0  # price distance to the planned stop, for sizing


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """The exits actor asks the executor to close a position (reduce-only)."""

    signal_id: str
    symbol: str
    reason: str  # stop_loss | take_profit | trailing_stop | time_stop
    price: float
    at: float


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A market order to the exchange; ``client_order_id`` makes it idempotent there."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class LookupOrder:
    """Ask the exchange for an order by client order id (None if it never saw it)."""

    client_order_id: str


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What the exchange did with an order."""

    client_order_id: str
    status: str  # filled | rejected | open (filled in part so far: a live venue's)
    fills: tuple[Fill, ...] = field(default=())
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GetOpenOrders:
    """Ask the exchange for this bot's orders it still has open: a tuple of OpenOrder."""


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order the venue still has open (a market order filled in part), with its fills
    so far."""

    order: PlaceOrder
    fills: tuple[Fill, ...] = ()


def client_order_id(signal_id: str) -> str:
    """A client order id derived from the signal: the same signal always maps to it."""
    return "bv-" + hashlib.sha256(signal_id.encode()).hexdigest()[:24]
