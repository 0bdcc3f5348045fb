"""A live venue through ccxt: a drop-in replacement for the paper exchange.

It is a :class:`~actors.venues.contract.Venue` (and also answers ``GetTicker`` and
``GetExchangeStats``). Reads are retried with backoff on transient errors; an order is
created once per client order id (``@unsafe_to_retry``) and, when its outcome is unknown,
looked up by that id: found, absent ("not placed"), or :class:`OrderStatusUnknown`.
Fills are exact decimals with the id ``<exchange>-<market id>-<trade id>``. Credentials
come only from environment variables or files and are masked everywhere; ``ccxt`` is
imported lazily. Its settings refuse a tree whose market is not a live feed of this venue
(:mod:`actors.venues.price_guard`). What it guarantees and how to configure it:
docs/live-exchange.md.

This module is the actor; its settings and credentials are in
:mod:`actors.venues.ccxt_settings`, the calls to ccxt and their errors in
:mod:`actors.venues.ccxt_client`, what ccxt's dicts become (and the adapter's own messages) in
:mod:`actors.venues.ccxt_translate`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from actors.common.messages import Fill, to_decimal
from actors.market.contract import Bars
from actors.venues.ccxt_client import (
    CcxtClient,
    OrderStatusUnknown,
    VenueError,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    open_client,
    scrub_signatures,
)
from actors.venues.ccxt_settings import (
    CcxtMissing,
    CcxtSettings,
    CredentialsError,
    import_ccxt,
    resolve_credentials,
)
from actors.venues.ccxt_translate import (
    ExchangeStats,
    GetExchangeStats,
    GetTicker,
    Ticker,
    create_params,
    fill_of,
    filled_result,
    placed_order,
    ticker_of,
)
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    GetVenueRecord,
    LookupOrder,
    OpenOrder,
    OrderResult,
    PlaceOrder,
    VenueRecord,
)
from supervisor import SupervisedActor
from supervisor.host.secrets import secrets_of
from supervisor.retry import unsafe_to_retry

log = logging.getLogger(__name__)

# The error classes are re-exported: their module is this one's name, the name error rules
# give them (config.yaml's ``errors:``), though they are defined beside it.
__all__ = [
    "CcxtExchange",
    "CcxtMissing",
    "CredentialsError",
    "OrderStatusUnknown",
    "VenueError",
    "VenueOrderNotFound",
    "VenueRateLimited",
    "VenueRejected",
    "VenueUnavailable",
]

T = TypeVar("T")

_MIN_CREDENTIAL = 4  # a credential this long or longer is masked wherever it appears


class CcxtExchange(SupervisedActor):
    """Owns one ccxt client (its session and loaded markets), the credentials it signs with,
    and the orders it created or found in this incarnation (client order id -> result)."""

    accepts: ClassVar[tuple[type, ...]] = (
        Bars, PlaceOrder, LookupOrder, GetVenueFills, GetVenueRecord, GetOpenOrders, GetTicker,
        GetExchangeStats)

    Settings = CcxtSettings  # its settings model, by the name configs and tests use

    def __init__(self, settings: CcxtSettings) -> None:
        super().__init__()
        self.settings = settings
        self._api: CcxtClient | None = None  # from on_start to on_stop
        self._known: dict[str, OrderResult] = {}  # client order id -> result (exists at venue)
        self._sent: set[str] = set()  # client order ids a create was sent for
        self._odd_fee_currencies: set[str] = set()
        self._counts = {"creates": 0, "ambiguous": 0, "not_placed": 0, "unknown": 0,
                        "rejected": 0}

    def __repr__(self) -> str:
        return f"CcxtExchange({self.settings.exchange}, sandbox={self.settings.sandbox})"

    # -- lifecycle -----------------------------------------------------------------------------
    def on_start(self) -> None:
        s = self.settings
        ccxt = import_ccxt()
        creds = resolve_credentials(s, os.environ)
        # masked from now on in every log record of the process, and in venue errors
        secrets_of(self.ctx.runtime).add(creds.values(), min_length=_MIN_CREDENTIAL)
        self._api = open_client(ccxt, s, creds, self._scrub, self.ctx.clock)
        log.info("ccxt %s %s: %s%s, credentials from %s", ccxt.__version__, s.exchange,
                 ", ".join(s.symbols), " (sandbox)" if s.sandbox else "",
                 ", ".join(creds.sources))

    def on_stop(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            api.close()

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()

    # -- messages ------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case Bars():
                return None  # the venue has its own prices
            case PlaceOrder():
                return self._place(message)
            case LookupOrder(coid):
                return self._lookup(coid)
            case GetVenueFills(since):
                return self._venue_fills(since)
            case GetVenueRecord():  # counting every trade costs a full listing: not known
                return VenueRecord(self.settings.exchange, None,
                                   f"the {self.settings.exchange} account")
            case GetOpenOrders():
                return self._open_orders()
            case GetTicker(symbol):
                return self._ticker(symbol)
            case GetExchangeStats():
                c = self._counts
                return ExchangeStats(self.settings.exchange, c["creates"], c["ambiguous"],
                                     c["not_placed"], c["unknown"], c["rejected"])
        return super().on_receive(message)

    # -- calling ccxt --------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """``text`` with every credential (every secret the runtime masks) and request
        signature replaced by ``***``; URLs stay readable but for their signature."""
        return scrub_signatures(secrets_of(self.ctx.runtime).scrub(text, urls=False))

    def _venue(self) -> CcxtClient:
        if self._api is None:
            raise VenueError("client", "the ccxt client is closed")
        return self._api

    def _call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._venue().call(operation, fn, *args, **kwargs)

    def _read(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read: retried on VenueUnavailable (network, timeouts, 5xx, rate limits)."""
        return self._venue().read(operation, fn, *args, **kwargs)

    def _client(self) -> Any:
        return self._venue().client()

    def _market(self, symbol: str) -> dict[str, Any] | None:
        return self._venue().market(symbol)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.ctx.clock.sleep(seconds)

    # -- placing -------------------------------------------------------------------------------
    def _place(self, order: PlaceOrder) -> OrderResult:
        coid = order.client_order_id
        known = self._known.get(coid)
        if known is not None:
            return known  # this client order id was sent or found already: never twice
        s = self.settings
        if order.symbol not in s.symbols:
            return self._refused(coid, f"{order.symbol} is not in this exchange's symbols")
        if order.quantity <= 0:
            return self._refused(coid, "quantity must be > 0")
        market = self._market(order.symbol)
        if market is None:
            return self._refused(coid, f"{s.exchange} has no market {order.symbol}")
        if s.lookup_before_create or coid in self._sent:
            try:
                found = self._find(coid, order.symbol)
            except VenueError as exc:
                raise type(exc)("place_order", f"{coid} not sent: could not check whether it "
                                f"is at {s.exchange} already ({exc})", exc.ccxt_error) from None
            if found is not None:
                log.warning("order %s is already at %s; not creating it again", coid,
                            s.exchange)
                return self._remember(coid, self._result(coid, order.symbol, found))
        try:
            created = self._venue().retrier.call(self._create, order)  # marked: exactly one call
        except VenueRejected as exc:
            return self._refused(coid, str(exc))
        except VenueError as exc:
            return self._settle(order, exc)
        return self._remember(coid, self._result(coid, order.symbol, created))

    @unsafe_to_retry
    def _create(self, order: PlaceOrder) -> dict[str, Any]:
        """Send the create request once; whatever happens, never again for this order."""
        self._counts["creates"] += 1
        self._sent.add(order.client_order_id)  # from now on, a lookup comes first
        params = create_params(order, self._market(order.symbol) or {})
        created: dict[str, Any] = self._call(
            "create_order", self._client().create_order, order.symbol, "market",
            order.side.value, float(order.quantity), None, params)
        return created

    def _settle(self, order: PlaceOrder, failure: VenueError) -> OrderResult:
        """The create's outcome is unknown: find the order by its client order id."""
        s = self.settings
        coid = order.client_order_id
        self._counts["ambiguous"] += 1
        log.warning("create of %s on %s failed with an unknown outcome (%s); looking it up "
                    "by client order id, never resubmitting", coid, s.exchange, failure)
        problem: VenueError | None = None
        for attempt in range(s.lookup_attempts):
            if attempt:
                self._sleep(s.lookup_interval)
            try:
                found = self._find(coid, order.symbol)
            except VenueError as exc:
                problem = exc
                continue
            if found is not None:
                log.warning("order %s was placed despite the failed reply; using its fills",
                            coid)
                return self._remember(coid, self._result(coid, order.symbol, found))
        if problem is not None:
            self._counts["unknown"] += 1
            raise OrderStatusUnknown(
                "place_order", f"{coid}: the create failed ({failure}) and looking the "
                f"order up failed too ({problem}); it may exist at {s.exchange}")
        self._counts["not_placed"] += 1
        waited = s.lookup_interval * (s.lookup_attempts - 1)
        reason = (f"not placed: {s.exchange} has no order {coid} after "
                  f"{s.lookup_attempts} lookup(s) over {waited:g}s (create failed: {failure})")
        log.warning("order %s %s", coid, reason)
        return OrderResult(coid, "rejected", (), reason)

    def _refused(self, coid: str, reason: str) -> OrderResult:
        self._counts["rejected"] += 1
        return OrderResult(coid, "rejected", (), reason)

    def _remember(self, coid: str, result: OrderResult) -> OrderResult:
        if result.status != "open":
            self._known[coid] = result
        return result

    # -- looking up ----------------------------------------------------------------------------
    def _lookup(self, coid: str) -> OrderResult | None:
        known = self._known.get(coid)
        if known is not None and known.status != "open":
            return known
        for symbol in self.settings.symbols:
            found = self._find(coid, symbol)
            if found is not None:
                return self._remember(coid, self._result(coid, symbol, found))
        return None

    def _find(self, coid: str, symbol: str) -> dict[str, Any] | None:
        """The venue's order with client order id ``coid`` in ``symbol``, None if it has
        none; VenueError when the venue cannot tell (after retries)."""
        s = self.settings
        ex = self._client()
        if s.lookup_method == "fetch_order":
            try:
                order: dict[str, Any] = self._read("fetch_order", ex.fetch_order, None,
                                                   symbol, {"clientOrderId": coid})
            except VenueOrderNotFound:
                return None
            return order
        since = int((self.ctx.clock.wall() - s.lookup_window) * 1000)
        return self._venue().find_listed(coid, symbol, s.lookup_method, since)

    # -- orders into results -------------------------------------------------------------------
    def _result(self, coid: str, symbol: str, order: dict[str, Any]) -> OrderResult:
        s = self.settings
        ex = self._client()
        polls = 0
        while order.get("status") == "open" and polls < s.fill_wait_attempts:
            self._sleep(s.lookup_interval)
            order = self._read("fetch_order", ex.fetch_order, str(order["id"]), symbol)
            polls += 1
        status = order.get("status")
        fills = self._order_fills(coid, symbol, order)
        if status == "open":
            log.warning("order %s is still open at %s after %d poll(s)", coid, s.exchange,
                        polls)
            return OrderResult(coid, "open", fills, f"still open at {s.exchange}")
        if fills:
            return filled_result(coid, status, order, fills)
        return self._refused(coid, f"{s.exchange} {status or 'unknown'} the order without a fill")

    def _order_fills(self, coid: str, symbol: str, order: dict[str, Any]) -> tuple[Fill, ...]:
        """Every fill of ``order``: from the order itself when it lists them all with ids,
        else from the venue's trades of that order (re-read while they are incomplete)."""
        s = self.settings
        market = self._market(symbol) or {"id": symbol, "symbol": symbol}
        order_id = str(order.get("id") or "")
        filled = order.get("filled")
        want = to_decimal(filled, "filled") if filled is not None else None
        listed = [t for t in order.get("trades") or [] if t.get("id") is not None]
        fills = tuple(self._fill(t, coid, market, order) for t in listed)
        got = sum((f.quantity for f in fills), Decimal(0))
        if (want is not None and got >= want) or (want is None and fills):
            return fills
        for attempt in range(s.fill_wait_attempts + 1):
            if attempt:
                self._sleep(s.lookup_interval)
            trades = self._venue().order_trades(order_id, symbol, order)
            fills = tuple(self._fill(t, coid, market, order) for t in trades)
            got = sum((f.quantity for f in fills), Decimal(0))
            if want is None or got >= want:
                return fills
        raise VenueError("fetch_order_trades",
                         f"order {coid} filled {want} but its trades add up to {got}")

    def _fill(self, trade: dict[str, Any], coid: str, market: dict[str, Any],
              order: dict[str, Any] | None = None) -> Fill:
        return fill_of(self.settings.exchange, trade, coid, market, order,
                       odd_fees=self._odd_fee_currencies)

    # -- venue fills ---------------------------------------------------------------------------
    def _venue_fills(self, since: float | None) -> list[Fill]:
        s = self.settings
        since_ms = None if since is None else int(since * 1000)
        fills: list[Fill] = []
        for symbol in s.symbols:
            market = self._market(symbol)
            if market is None:
                raise VenueError("fetch_my_trades", f"{s.exchange} has no market {symbol}")
            trades = self._venue().my_trades(symbol, since_ms, s.trades_page_limit,
                                             s.max_trade_pages)
            coids = self._venue().coids_of(symbol, trades, since_ms)
            for trade in trades:
                coid = coids.get(str(trade.get("order")), "")
                if not coid.startswith(s.client_order_prefix):
                    continue
                fill = self._fill(trade, coid, market)
                if since is None or fill.at >= since:
                    fills.append(fill)
        fills.sort(key=lambda f: (f.at, f.fill_id))
        return fills

    def _open_orders(self) -> tuple[OpenOrder, ...]:
        """This bot's orders (client order id with the prefix) the venue still has open, in
        every configured symbol, with their fills so far."""
        s = self.settings
        ex = self._client()
        found: list[OpenOrder] = []
        for symbol in s.symbols:
            for order in self._read("fetch_open_orders", ex.fetch_open_orders, symbol):
                coid = str(order.get("clientOrderId") or "")
                if not coid or not coid.startswith(s.client_order_prefix):
                    continue
                place = placed_order(coid, symbol, order)
                found.append(OpenOrder(place, self._order_fills(coid, symbol, dict(order))))
        return tuple(found)

    # -- ticker --------------------------------------------------------------------------------
    def _ticker(self, symbol: str) -> Ticker:
        ex = self._client()
        data: dict[str, Any] = self._read("fetch_ticker", ex.fetch_ticker, symbol)
        return ticker_of(symbol, data)
