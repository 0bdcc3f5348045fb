"""Calling ccxt for :class:`~actors.venues.ccxt_exchange.CcxtExchange`: the client and its errors.

:class:`CcxtClient` owns one ccxt exchange object once it is made: every call to it, each
failure turned into a masked :class:`VenueError` of the class that says what it means
(:meth:`CcxtClient.translate`), reads retried on :class:`VenueUnavailable`, the markets
loaded once, and the reads that take more than one call. Also here: the logger
handed to ccxt (:class:`ScrubbingLog`); :func:`open_client` makes the client of the
settings. The error classes keep ``actors.venues.ccxt_exchange`` as their module, the name
error rules give them (config.yaml's ``errors:``); that module re-exports them.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from actors.venues.ccxt_settings import CcxtSettings, Credentials
from supervisor.clock import Clock
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity, class_name
from supervisor.errors import RateLimited, RuntimeErrorBase
from supervisor.host.secrets import MASK
from supervisor.retry import Retrier

log = logging.getLogger("actors.venues.ccxt_exchange")  # the adapter's logger

__all__ = [
    "CcxtClient",
    "OrderStatusUnknown",
    "ScrubbingLog",
    "VenueError",
    "VenueOrderNotFound",
    "VenueRateLimited",
    "VenueRejected",
    "VenueUnavailable",
    "open_client",
    "scrub_signatures",
]

T = TypeVar("T")

_RULE_MODULE = "actors.venues.ccxt_exchange"  # where error rules find these classes
_SIGNATURE = re.compile(r"(?i)\b(signature|sign|apikey|api_key|passphrase)=[^&\s\"']+")
_MESSAGE_LIMIT = 300

# ccxt error classes after which a create certainly did not place an order.
_REFUSED = (
    "InsufficientFunds",
    "InvalidOrder",
    "BadRequest",  # BadSymbol too
    "AuthenticationError",  # PermissionDenied, AccountSuspended too
    "OperationRejected",
    "ArgumentsRequired",
    "NotSupported",
)


# -- errors ----------------------------------------------------------------------------------
class VenueError(RuntimeErrorBase):
    """The venue could not answer a request; the message is masked (no secrets).

    A subclass of the runtime's error base so that callers which guard their asks with it
    (the executor does) treat a venue failure like any failed ask: no answer, no guess.
    """

    __module__ = _RULE_MODULE

    def __init__(self, operation: str, message: str, ccxt_error: str = "") -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.ccxt_error = ccxt_error


class VenueUnavailable(VenueError, ConnectionError):
    """Network trouble, a timeout, a 5xx answer: the request may be retried (reads only)."""

    __module__ = _RULE_MODULE


class VenueRateLimited(VenueUnavailable, RateLimited):
    """The venue asked us to slow down (429/418 or its rate-limit error code)."""

    __module__ = _RULE_MODULE


class VenueOrderNotFound(VenueError):
    """The venue says it has no such order."""

    __module__ = _RULE_MODULE


class VenueRejected(VenueError):
    """The venue refused the request for good (bad order, no funds, bad credentials...)."""

    __module__ = _RULE_MODULE


class OrderStatusUnknown(VenueError):
    """A create's outcome is unknown and could not be settled by looking the order up.

    The order may or may not exist at the venue. Nothing was resubmitted; look it up later
    (``LookupOrder``) or let the next venue sync find its fills.
    """

    __module__ = _RULE_MODULE


def scrub_signatures(text: str) -> str:
    """``text`` with every request signature (and key in a query) replaced by ``***``."""
    return _SIGNATURE.sub(lambda m: f"{m.group(1)}={MASK}", text)


class ScrubbingLog(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to ccxt: formats each record and scrubs credentials (the runtime's
    masker) and request signatures out of it."""

    def __init__(self, logger: logging.Logger, scrub: Callable[[str], str]) -> None:
        super().__init__(logger, {})
        self._scrub = scrub

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.pop("exc_info", None)  # a traceback could carry what we scrub
            self.logger.log(level, "%s", self._scrub(text), **kwargs)


# -- the client ------------------------------------------------------------------------------
def open_client(ccxt: ModuleType, s: CcxtSettings, creds: Credentials,
                scrub: Callable[[str], str], clock: Clock) -> CcxtClient:
    """The client of the settings ``s``, signing with ``creds``; ``scrub`` masks what it
    logs and what its errors say."""
    config: dict[str, Any] = {
        "apiKey": creds.api_key,
        "secret": creds.secret,
        "enableRateLimit": s.rate_limit,
        "timeout": s.timeout_ms,
        "options": copy.deepcopy(s.options),
    }
    if creds.password is not None:
        config["password"] = creds.password
    ex = getattr(ccxt, s.exchange)(config)
    if s.sandbox:
        ex.set_sandbox_mode(True)
    if s.urls:
        ex.urls = ex.deep_extend(ex.urls, copy.deepcopy(s.urls))
    # ccxt logs every request's headers (the API key among them) at DEBUG: scrub them.
    ex.logger = ScrubbingLog(logging.getLogger(f"{_RULE_MODULE}.http"), scrub)
    retry = s.retry
    handler = ErrorHandler(
        {class_name(VenueUnavailable): Rule(Severity.WARNING, Directive.RESUME,
                                             retryable=True)},
        include_defaults=False,
        default=Rule(Severity.ERROR, Directive.RESUME, retryable=False),
    )
    retrier = Retrier(handler, attempts=retry.attempts, backoff=retry.backoff(),
                      clock=clock, max_elapsed=retry.max_elapsed)
    return CcxtClient(ccxt, ex, retrier, scrub)


class CcxtClient:
    """Owns one ccxt exchange object ``ex`` of the module ``ccxt``: calls to it, whose
    failures are masked by ``scrub`` (credentials and signatures out) and cut short; reads
    retried by ``retrier``; its markets loaded at the first use; the client order ids of
    the venue's orders, once looked up."""

    def __init__(self, ccxt: ModuleType, ex: Any, retrier: Retrier,
                 scrub: Callable[[str], str]) -> None:
        self.retrier = retrier
        self._ccxt = ccxt
        self._ex = ex
        self._scrub = scrub
        self._markets_loaded = False
        self._coids: dict[tuple[str, str], str] = {}  # (symbol, venue order id) -> coid

    def close(self) -> None:
        """Close the client's HTTP session (best effort); a call after it is a VenueError."""
        ex, self._ex = self._ex, None
        session = getattr(ex, "session", None)
        if session is not None:
            try:
                session.close()
            except Exception:  # closing is best effort
                log.debug("closing the ccxt session failed", exc_info=True)

    def mask(self, text: str) -> str:
        """Scrubbed and cut short, for error messages."""
        text = self._scrub(text)
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "..."
        return text

    def translate(self, operation: str, exc: Exception) -> VenueError:
        """A masked VenueError standing for ``exc`` (which is never chained: it may hold
        secrets in its message or its request)."""
        ccxt = self._ccxt
        name = type(exc).__name__
        text = self.mask(str(exc) or name)
        if not isinstance(exc, ccxt.BaseError):
            return VenueError(operation, f"{name}: {text}", name)
        if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
            return VenueRateLimited(operation, f"{name}: {text}", name)
        if isinstance(exc, ccxt.NetworkError):
            return VenueUnavailable(operation, f"{name}: {text}", name)
        if isinstance(exc, ccxt.OrderNotFound):
            return VenueOrderNotFound(operation, f"{name}: {text}", name)
        if isinstance(exc, ccxt.DuplicateOrderId):
            return VenueError(operation, f"{name}: {text}", name)
        if isinstance(exc, tuple(getattr(ccxt, n) for n in _REFUSED)):
            return VenueRejected(operation, f"{name}: {text}", name)
        return VenueError(operation, f"{name}: {text}", name)

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self.translate(operation, exc) from None

    def read(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read: retried on VenueUnavailable (network, timeouts, 5xx, rate limits)."""
        result: T = self.retrier.call(self.call, operation, fn, *args, **kwargs)
        return result

    def client(self) -> Any:
        """The ccxt exchange object, its markets loaded; VenueError once it is closed."""
        if self._ex is None:
            raise VenueError("client", "the ccxt client is closed")
        if not self._markets_loaded:
            self.read("load_markets", self._ex.load_markets)
            self._markets_loaded = True
        return self._ex

    def market(self, symbol: str) -> dict[str, Any] | None:
        markets = self.client().markets or {}
        market = markets.get(symbol)
        return market if isinstance(market, dict) else None

    # -- reads that take more than one call ----------------------------------------------------
    def find_listed(self, coid: str, symbol: str, method: str,
                    since: int) -> dict[str, Any] | None:
        """The order with client order id ``coid`` among ``symbol``'s orders since ``since``
        (ms) as ``method`` lists them (``fetch_orders``, else ``open_and_closed``: open,
        closed and, where the venue has them, canceled), None if none is."""
        ex = self.client()
        if method == "fetch_orders":
            lists = [self.read("fetch_orders", ex.fetch_orders, symbol, since)]
        else:
            lists = [self.read("fetch_open_orders", ex.fetch_open_orders, symbol),
                     self.read("fetch_closed_orders", ex.fetch_closed_orders, symbol, since)]
            if ex.has.get("fetchCanceledOrders"):
                lists.append(self.read("fetch_canceled_orders", ex.fetch_canceled_orders,
                                       symbol, since))
        for orders in lists:
            for candidate in orders:
                if candidate.get("clientOrderId") == coid:
                    return dict(candidate)
        return None

    def order_trades(self, order_id: str, symbol: str,
                     order: dict[str, Any]) -> list[dict[str, Any]]:
        """The venue's trades of ``order`` (by its id, or among the account's since it)."""
        ex = self.client()
        if ex.has.get("fetchOrderTrades"):
            found: list[dict[str, Any]] = self.read(
                "fetch_order_trades", ex.fetch_order_trades, order_id, symbol)
            return found
        since = order.get("timestamp")
        trades = self.read("fetch_my_trades", ex.fetch_my_trades, symbol, since)
        return [t for t in trades if str(t.get("order")) == order_id]

    def my_trades(self, symbol: str, since_ms: int | None, limit: int,
                  max_pages: int) -> list[dict[str, Any]]:
        """The account's ``symbol`` trades since ``since_ms``, paged ``limit`` at a time by
        time, at most ``max_pages`` pages; VenueError when paging cannot get them all."""
        ex = self.client()
        seen: dict[str, dict[str, Any]] = {}
        cursor = since_ms
        for _ in range(max_pages):
            page = self.read("fetch_my_trades", ex.fetch_my_trades, symbol, cursor, limit)
            fresh = [t for t in page if str(t.get("id")) not in seen]
            for trade in fresh:
                seen[str(trade.get("id"))] = trade
            if len(page) < limit:
                return list(seen.values())
            last = max(int(t.get("timestamp") or 0) for t in page)
            if not fresh:  # a whole page in one millisecond: paging by time cannot go on
                raise VenueError("fetch_my_trades", f"{len(page)} or more {symbol} trades at "
                                 f"{last} ms; raise trades_page_limit")
            cursor = last  # that millisecond again: the trades already seen are skipped
        raise VenueError("fetch_my_trades", f"more than {max_pages} pages of "
                         f"{symbol} trades; raise max_trade_pages or sync more often")

    def coids_of(self, symbol: str, trades: list[dict[str, Any]],
                 since_ms: int | None) -> dict[str, str]:
        """Venue order id -> client order id, for the orders of ``trades``."""
        ex = self.client()
        wanted = {str(t.get("order")) for t in trades if t.get("order") is not None}
        missing = {o for o in wanted if (symbol, o) not in self._coids}
        if missing and ex.has.get("fetchOrders"):
            for order in self.read("fetch_orders", ex.fetch_orders, symbol, since_ms):
                self._coids[(symbol, str(order.get("id")))] = str(order.get("clientOrderId")
                                                                  or "")
            missing = {o for o in wanted if (symbol, o) not in self._coids}
        for order_id in sorted(missing):
            order = self.read("fetch_order", ex.fetch_order, order_id, symbol)
            self._coids[(symbol, order_id)] = str(order.get("clientOrderId") or "")
        return {o: self._coids[(symbol, o)] for o in wanted}
