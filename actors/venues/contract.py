"""The venues' contract: what the executor and the venue sync ask of an exchange, and what a
venue (the paper exchange, a ccxt exchange, a new one) must implement (:class:`Venue`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from actors.common.messages import Fill, Side

__all__ = [
    "GetOpenOrders",
    "GetVenueFills",
    "GetVenueRecord",
    "LookupOrder",
    "OpenOrder",
    "OrderResult",
    "PlaceOrder",
    "Venue",
    "VenueAsk",
    "VenueRecord",
]


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


@dataclass(frozen=True, slots=True)
class GetVenueFills:
    """Ask the paper exchange for the fills it made, oldest first: all of them, or those at
    or after venue time ``since`` (as ccxt's ``fetch_my_trades(since=...)`` does)."""

    since: float | None = None


@dataclass(frozen=True, slots=True)
class GetVenueRecord:
    """Ask the venue how many of this bot's fills it has made in all: a
    :class:`VenueRecord` (``fills`` None when the venue cannot count them cheaply)."""


@dataclass(frozen=True, slots=True)
class VenueRecord:
    """How many fills the venue ``venue`` (the name its fills carry) has made for this
    bot, where that record is kept (for messages), and the digest of their fill ids
    (``actors.common.fill_digest``; None: not known)."""

    venue: str
    fills: int | None
    where: str
    digest: int | None = None


VenueAsk = PlaceOrder | LookupOrder | GetOpenOrders | GetVenueFills | GetVenueRecord


class Venue(Protocol):
    """An exchange as the executor and the venue sync use it: an actor that answers each
    :data:`VenueAsk` (at once, or later through ``defer_reply``) and takes ``Bars`` as a tell
    (the market's latest prices; a venue with prices of its own ignores them).

    ``PlaceOrder`` -> :class:`OrderResult`, idempotent by client order id;
    ``LookupOrder`` -> :class:`OrderResult`, or None for an id it never saw;
    ``GetOpenOrders`` -> ``tuple[OpenOrder, ...]``; ``GetVenueFills`` -> ``list[Fill]``,
    oldest first; ``GetVenueRecord`` -> :class:`VenueRecord`. A venue it cannot reach is
    an exception of the runtime's error base (``supervisor.errors.RuntimeErrorBase``).
    """

    def on_receive(self, message: Any) -> Any: ...
