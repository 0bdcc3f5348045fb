"""What ccxt's answers become for :class:`~actors.venues.ccxt_exchange.CcxtExchange`.

Pure functions from ccxt's dicts (orders, trades, tickers) to the bot's messages: a trade
into a :class:`~actors.common.messages.Fill` (exact decimals, the id
``<exchange>-<market id>-<trade id>``, its fee in the quote currency), a finished order into
an :class:`~actors.venues.contract.OrderResult`, an open one into the ``PlaceOrder`` it
stands for, a ticker into a :class:`Ticker`, and an order into the create's params. Also
the adapter's own asks and replies (:class:`GetTicker`, :class:`GetExchangeStats`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from actors.common.messages import Fill, Side, to_decimal
from actors.venues.contract import OrderResult, PlaceOrder

log = logging.getLogger("actors.venues.ccxt_exchange")  # the adapter's logger

__all__ = [
    "ExchangeStats",
    "GetExchangeStats",
    "GetTicker",
    "Ticker",
    "create_params",
    "fill_of",
    "filled_result",
    "placed_order",
    "ticker_of",
]


# -- messages ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GetTicker:
    """Ask the venue's ticker of ``symbol``; the reply is a :class:`Ticker`."""

    symbol: str


@dataclass(frozen=True, slots=True)
class Ticker:
    """Last, bid and ask prices of a symbol at the venue (None where it gave none)."""

    symbol: str
    last: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    at: float  # venue time, seconds since the epoch (0 when unknown)


@dataclass(frozen=True, slots=True)
class GetExchangeStats:
    """Ask the adapter's counters since it started; the reply is :class:`ExchangeStats`."""


@dataclass(frozen=True, slots=True)
class ExchangeStats:
    """What the adapter did in this incarnation.

    ``creates``: create requests sent (each at most once per client order id);
    ``ambiguous``: creates whose outcome was unknown and were looked up; ``not_placed``:
    of those, found absent; ``unknown``: of those, still unknown (OrderStatusUnknown);
    ``rejected``: creates the venue refused.
    """

    exchange: str
    creates: int
    ambiguous: int
    not_placed: int
    unknown: int
    rejected: int


# -- ccxt's dicts into messages ----------------------------------------------------------------
def create_params(order: PlaceOrder, market: dict[str, Any]) -> dict[str, Any]:
    """The params of the create of ``order`` in ``market``."""
    params: dict[str, Any] = {"clientOrderId": order.client_order_id}
    if order.reduce_only and market.get("contract"):
        params["reduceOnly"] = True  # spot has no such flag: a sell there only reduces
    return params


def filled_result(coid: str, status: Any, order: dict[str, Any],
                  fills: tuple[Fill, ...]) -> OrderResult:
    """A closed ``order`` with ``fills``: filled, its reason saying when only in part."""
    reason = ""
    amount = order.get("amount")
    got = sum((f.quantity for f in fills), Decimal(0))
    if amount is not None and got < to_decimal(amount, "amount"):
        reason = f"partially filled ({got} of {to_decimal(amount, 'amount')}, {status})"
    return OrderResult(coid, "filled", fills, reason)


def placed_order(coid: str, symbol: str, order: dict[str, Any]) -> PlaceOrder:
    """The request an open venue ``order`` of this bot stands for."""
    amount: Any = order.get("amount")
    return PlaceOrder(coid, symbol, Side(str(order.get("side"))), to_decimal(amount, "amount"))


def fill_of(exchange: str, trade: dict[str, Any], coid: str, market: dict[str, Any],
            order: dict[str, Any] | None, *, odd_fees: set[str]) -> Fill:
    """``trade`` (of ``order``, when known) as a Fill of ``coid``; a fee currency that is
    neither the quote nor the base is warned of once (then it is in ``odd_fees``)."""
    order = order or {}
    trade_id = trade.get("id")
    fill_id = f"{exchange}-{market['id']}-{trade_id}"
    side = trade.get("side") or order.get("side")
    price = to_decimal(trade["price"], "price")
    stamp = trade.get("timestamp") or order.get("lastTradeTimestamp") or \
        order.get("timestamp")
    return Fill(fill_id, coid, str(market.get("symbol") or trade.get("symbol")),
                Side(str(side)), to_decimal(trade["amount"], "quantity"), price,
                _fee(exchange, trade, market, price, odd_fees),
                float(stamp) / 1000 if stamp else 0.0, exchange)


def _fee(exchange: str, trade: dict[str, Any], market: dict[str, Any], price: Decimal,
         odd_fees: set[str]) -> Decimal:
    fees = trade.get("fees") or ([trade["fee"]] if trade.get("fee") else [])
    total = Decimal(0)
    for fee in fees:
        cost, currency = fee.get("cost"), fee.get("currency")
        if not cost:
            continue
        amount = to_decimal(cost, "fee")
        if currency == market.get("quote"):
            total += amount
        elif currency == market.get("base"):
            total += amount * price
        elif currency not in odd_fees:
            odd_fees.add(str(currency))
            log.warning("%s fee paid in %s is not converted to %s; recorded as 0",
                        exchange, currency, market.get("quote"))
    return max(total, Decimal(0))


def ticker_of(symbol: str, data: dict[str, Any]) -> Ticker:
    """ccxt's ticker of ``symbol`` as a Ticker."""

    def number(key: str) -> Decimal | None:
        value = data.get(key)
        return None if value is None else to_decimal(value, key)

    stamp = data.get("timestamp")
    return Ticker(symbol, number("last"), number("bid"), number("ask"),
                  float(stamp) / 1000 if stamp else 0.0)
