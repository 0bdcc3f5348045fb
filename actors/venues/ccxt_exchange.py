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
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import ModuleType
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.common.messages import Fill, Side, to_decimal
from actors.market.contract import Bars, MarketCursor
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
from actors.venues.price_guard import price_refusals, price_warnings
from supervisor import SupervisedActor
from supervisor.backoff import Backoff
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity, class_name
from supervisor.errors import RateLimited, RuntimeErrorBase
from supervisor.host.secrets import MASK, SecretError, read_secret, secrets_of
from supervisor.host.wiring import PeerView
from supervisor.peers import Peer
from supervisor.retry import Retrier, unsafe_to_retry

log = logging.getLogger(__name__)

__all__ = [
    "CcxtExchange",
    "CcxtMissing",
    "Credentials",
    "CredentialsError",
    "ExchangeStats",
    "GetExchangeStats",
    "GetTicker",
    "OrderStatusUnknown",
    "Ticker",
    "VenueError",
    "VenueOrderNotFound",
    "VenueRateLimited",
    "VenueRejected",
    "VenueUnavailable",
    "import_ccxt",
    "resolve_credentials",
]

T = TypeVar("T")

INSTALL_HINT = "install it with: pip install 'botvisor[live]'"
_SIGNATURE = re.compile(r"(?i)\b(signature|sign|apikey|api_key|passphrase)=[^&\s\"']+")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_MESSAGE_LIMIT = 300
_MIN_CREDENTIAL = 4  # a credential this long or longer is masked wherever it appears

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
class CcxtMissing(ImportError):
    """The optional ``ccxt`` package is not installed."""


class CredentialsError(ValueError):
    """A credential could not be read; the message names its source, never its value."""


class VenueError(RuntimeErrorBase):
    """The venue could not answer a request; the message is masked (no secrets).

    A subclass of the runtime's error base so that callers which guard their asks with it
    (the executor does) treat a venue failure like any failed ask: no answer, no guess.
    """

    def __init__(self, operation: str, message: str, ccxt_error: str = "") -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.ccxt_error = ccxt_error


class VenueUnavailable(VenueError, ConnectionError):
    """Network trouble, a timeout, a 5xx answer: the request may be retried (reads only)."""


class VenueRateLimited(VenueUnavailable, RateLimited):
    """The venue asked us to slow down (429/418 or its rate-limit error code)."""


class VenueOrderNotFound(VenueError):
    """The venue says it has no such order."""


class VenueRejected(VenueError):
    """The venue refused the request for good (bad order, no funds, bad credentials...)."""


class OrderStatusUnknown(VenueError):
    """A create's outcome is unknown and could not be settled by looking the order up.

    The order may or may not exist at the venue. Nothing was resubmitted; look it up later
    (``LookupOrder``) or let the next venue sync find its fills.
    """


def import_ccxt() -> ModuleType:
    """The ``ccxt`` module, imported now (it is an optional extra)."""
    try:
        import ccxt
    except ImportError as exc:
        raise CcxtMissing(f"the ccxt package is not installed ({exc}); {INSTALL_HINT}") from None
    module: ModuleType = ccxt
    return module


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


# -- settings --------------------------------------------------------------------------------
class RetrySettings(BaseModel):
    """Retries of reads: attempts in all, and the backoff between them (seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attempts: int = Field(4, ge=1, le=20)
    initial: float = Field(0.5, ge=0)
    maximum: float = Field(8.0, ge=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.2, ge=0)
    max_elapsed: float | None = Field(None, gt=0)  # give up after this long, whatever attempts

    def backoff(self) -> Backoff:
        return Backoff(initial=self.initial, maximum=self.maximum,
                       multiplier=self.multiplier, jitter=self.jitter)


@dataclass(frozen=True)
class Credentials:
    """Owns the resolved API key, secret and password; none of them appears in the repr."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    sources: tuple[str, ...] = ()

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.api_key, self.secret, self.password) if v)


class _ScrubbingLog(logging.LoggerAdapter[logging.Logger]):
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


class CcxtExchange(SupervisedActor):
    """Owns one ccxt client (its session and loaded markets), the credentials it signs with,
    and the orders it created or found in this incarnation (client order id -> result)."""

    accepts: ClassVar[tuple[type, ...]] = (
        Bars, PlaceOrder, LookupOrder, GetVenueFills, GetVenueRecord, GetOpenOrders, GetTicker,
        GetExchangeStats)

    class Settings(BaseModel):
        """Which venue, where its credentials are, and how patient to be with it.

        ``urls`` is deep-merged into ccxt's ``urls`` (after ``sandbox`` switched them), so
        the API can be pointed elsewhere; ``options`` are ccxt's exchange options.
        ``symbols`` are the only symbols traded: orders for others are refused, and
        ``LookupOrder`` and ``GetVenueFills`` look at exactly these. ``client_order_prefix``
        selects the venue fills that are this bot's (empty: every fill of the account).
        ``market`` must be a live feed of this venue carrying ``symbols`` (the guard,
        :meth:`check_peers`), unless ``allow_unmatched_prices``.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        exchange: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
        symbols: tuple[str, ...] = Field(min_length=1)
        api_key_env: str | None = Field(None, pattern=_ENV_NAME)
        api_key_file: str | None = None
        secret_env: str | None = Field(None, pattern=_ENV_NAME)
        secret_file: str | None = None
        password_env: str | None = Field(None, pattern=_ENV_NAME)
        password_file: str | None = None
        sandbox: bool = False
        urls: dict[str, Any] = Field(default_factory=dict)
        options: dict[str, Any] = Field(default_factory=dict)
        timeout_ms: int = Field(3000, ge=1, le=120_000)
        rate_limit: bool = True  # ccxt's own request throttle (enableRateLimit)
        retry: RetrySettings = RetrySettings()
        lookup_method: Literal["fetch_order", "fetch_orders", "open_and_closed"] = "fetch_order"
        lookup_window: float = Field(86400.0, gt=0)  # seconds back, for list lookups
        lookup_attempts: int = Field(3, ge=1, le=20)  # after a create with unknown outcome
        lookup_interval: float = Field(0.5, ge=0)  # seconds between those lookups
        lookup_before_create: bool = True  # idempotent across restarts of this actor
        fill_wait_attempts: int = Field(3, ge=0, le=20)  # polls of an order still open
        client_order_prefix: str = "bv-"
        trades_page_limit: int = Field(500, ge=1, le=5000)
        max_trade_pages: int = Field(20, ge=1)
        # The market whose prices the strategies, sizing and exits trade on, and the guard
        market: Annotated[str, Peer(publishes=MarketCursor)] = "market"
        allow_unmatched_prices: bool = False

        @model_validator(mode="after")
        def _check(self) -> CcxtExchange.Settings:
            for what in ("api_key", "secret"):
                given = [k for k in (f"{what}_env", f"{what}_file")
                         if getattr(self, k) is not None]
                if len(given) != 1:
                    raise ValueError(f"needs exactly one of {what}_env, {what}_file "
                                     f"(got {', '.join(given) or 'none'}); never the "
                                     f"{what.replace('_', ' ')} itself")
            if self.password_env is not None and self.password_file is not None:
                raise ValueError("give at most one of password_env, password_file")
            try:
                ccxt = import_ccxt()
            except CcxtMissing as exc:  # pydantic reports ValueErrors, with the key's path
                raise ValueError(str(exc)) from None
            if self.exchange not in ccxt.exchanges:
                raise ValueError(f"ccxt has no exchange {self.exchange!r}")
            return self

        def check_peers(self, peers: Mapping[str, PeerView]) -> list[tuple[str, str]]:
            """The price guard's refusals of the market (none with the override)."""
            if self.allow_unmatched_prices:
                return []
            return [("market", reason) for reason in price_refusals(
                self.exchange, self.symbols, self.sandbox, peers.get("market"))]

        def peer_warnings(self, peers: Mapping[str, PeerView]) -> list[tuple[str, str]]:
            """With the override, what the price guard let through: logged at every start."""
            if not self.allow_unmatched_prices:
                return []
            return [("allow_unmatched_prices", warning) for warning in price_warnings(
                self.exchange, self.symbols, self.sandbox, peers.get("market"))]

    def __init__(self, settings: CcxtExchange.Settings) -> None:
        super().__init__()
        self.settings = settings
        self._ex: Any = None
        self._ccxt: ModuleType | None = None
        self._retrier: Retrier | None = None
        self._markets_loaded = False
        self._known: dict[str, OrderResult] = {}  # client order id -> result (exists at venue)
        self._sent: set[str] = set()  # client order ids a create was sent for
        self._coids: dict[tuple[str, str], str] = {}  # (symbol, venue order id) -> coid
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
        ex.logger = _ScrubbingLog(logging.getLogger(f"{__name__}.http"), self._scrub)
        self._ccxt = ccxt
        self._ex = ex
        retry = s.retry
        handler = ErrorHandler(
            {class_name(VenueUnavailable): Rule(Severity.WARNING, Directive.RESUME,
                                                 retryable=True)},
            include_defaults=False,
            default=Rule(Severity.ERROR, Directive.RESUME, retryable=False),
        )
        self._retrier = Retrier(handler, attempts=retry.attempts, backoff=retry.backoff(),
                                clock=self.ctx.clock, max_elapsed=retry.max_elapsed)
        log.info("ccxt %s %s: %s%s, credentials from %s", ccxt.__version__, s.exchange,
                 ", ".join(s.symbols), " (sandbox)" if s.sandbox else "",
                 ", ".join(creds.sources))

    def on_stop(self) -> None:
        ex, self._ex = self._ex, None
        session = getattr(ex, "session", None)
        if session is not None:
            try:
                session.close()
            except Exception:  # closing is best effort
                log.debug("closing the ccxt session failed", exc_info=True)

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
        text = secrets_of(self.ctx.runtime).scrub(text, urls=False)
        return _SIGNATURE.sub(lambda m: f"{m.group(1)}={MASK}", text)

    def _mask(self, text: str) -> str:
        """Scrubbed and cut short, for error messages."""
        text = self._scrub(text)
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "..."
        return text

    def _translate(self, operation: str, exc: Exception) -> VenueError:
        """A masked VenueError standing for ``exc`` (which is never chained: it may hold
        secrets in its message or its request)."""
        ccxt = self._ccxt
        assert ccxt is not None
        name = type(exc).__name__
        text = self._mask(str(exc) or name)
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

    def _call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self._translate(operation, exc) from None

    def _read(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read: retried on VenueUnavailable (network, timeouts, 5xx, rate limits)."""
        assert self._retrier is not None
        result: T = self._retrier.call(self._call, operation, fn, *args, **kwargs)
        return result

    def _client(self) -> Any:
        if self._ex is None:
            raise VenueError("client", "the ccxt client is closed")
        if not self._markets_loaded:
            self._read("load_markets", self._ex.load_markets)
            self._markets_loaded = True
        return self._ex

    def _market(self, symbol: str) -> dict[str, Any] | None:
        markets = self._client().markets or {}
        market = markets.get(symbol)
        return market if isinstance(market, dict) else None

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
        assert self._retrier is not None
        try:
            created = self._retrier.call(self._create, order)  # marked: exactly one call
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
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        market = self._market(order.symbol) or {}
        if order.reduce_only and market.get("contract"):
            params["reduceOnly"] = True  # spot has no such flag: a sell there only reduces
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
        if s.lookup_method == "fetch_orders":
            lists = [self._read("fetch_orders", ex.fetch_orders, symbol, since)]
        else:
            lists = [self._read("fetch_open_orders", ex.fetch_open_orders, symbol),
                     self._read("fetch_closed_orders", ex.fetch_closed_orders, symbol, since)]
            if ex.has.get("fetchCanceledOrders"):
                lists.append(self._read("fetch_canceled_orders", ex.fetch_canceled_orders,
                                        symbol, since))
        for orders in lists:
            for candidate in orders:
                if candidate.get("clientOrderId") == coid:
                    return dict(candidate)
        return None

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
            reason = ""
            amount = order.get("amount")
            got = sum((f.quantity for f in fills), Decimal(0))
            if amount is not None and got < to_decimal(amount, "amount"):
                reason = f"partially filled ({got} of {to_decimal(amount, 'amount')}, {status})"
            return OrderResult(coid, "filled", fills, reason)
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
            trades = self._order_trades(order_id, symbol, order)
            fills = tuple(self._fill(t, coid, market, order) for t in trades)
            got = sum((f.quantity for f in fills), Decimal(0))
            if want is None or got >= want:
                return fills
        raise VenueError("fetch_order_trades",
                         f"order {coid} filled {want} but its trades add up to {got}")

    def _order_trades(self, order_id: str, symbol: str,
                      order: dict[str, Any]) -> list[dict[str, Any]]:
        ex = self._client()
        if ex.has.get("fetchOrderTrades"):
            found: list[dict[str, Any]] = self._read(
                "fetch_order_trades", ex.fetch_order_trades, order_id, symbol)
            return found
        since = order.get("timestamp")
        trades = self._read("fetch_my_trades", ex.fetch_my_trades, symbol, since)
        return [t for t in trades if str(t.get("order")) == order_id]

    def _fill(self, trade: dict[str, Any], coid: str, market: dict[str, Any],
              order: dict[str, Any] | None = None) -> Fill:
        s = self.settings
        order = order or {}
        trade_id = trade.get("id")
        fill_id = f"{s.exchange}-{market['id']}-{trade_id}"
        side = trade.get("side") or order.get("side")
        price = to_decimal(trade["price"], "price")
        stamp = trade.get("timestamp") or order.get("lastTradeTimestamp") or \
            order.get("timestamp")
        return Fill(fill_id, coid, str(market.get("symbol") or trade.get("symbol")),
                    Side(str(side)), to_decimal(trade["amount"], "quantity"), price,
                    self._fee(trade, market, price), float(stamp) / 1000 if stamp else 0.0,
                    s.exchange)

    def _fee(self, trade: dict[str, Any], market: dict[str, Any], price: Decimal) -> Decimal:
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
            elif currency not in self._odd_fee_currencies:
                self._odd_fee_currencies.add(str(currency))
                log.warning("%s fee paid in %s is not converted to %s; recorded as 0",
                            self.settings.exchange, currency, market.get("quote"))
        return max(total, Decimal(0))

    # -- venue fills ---------------------------------------------------------------------------
    def _venue_fills(self, since: float | None) -> list[Fill]:
        s = self.settings
        since_ms = None if since is None else int(since * 1000)
        fills: list[Fill] = []
        for symbol in s.symbols:
            market = self._market(symbol)
            if market is None:
                raise VenueError("fetch_my_trades", f"{s.exchange} has no market {symbol}")
            trades = self._my_trades(symbol, since_ms)
            coids = self._coids_of(symbol, trades, since_ms)
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
                place = PlaceOrder(coid, symbol, Side(str(order.get("side"))),
                                   to_decimal(order.get("amount"), "amount"))
                found.append(OpenOrder(place, self._order_fills(coid, symbol, dict(order))))
        return tuple(found)

    def _my_trades(self, symbol: str, since_ms: int | None) -> list[dict[str, Any]]:
        s = self.settings
        ex = self._client()
        seen: dict[str, dict[str, Any]] = {}
        cursor = since_ms
        for _ in range(s.max_trade_pages):
            page = self._read("fetch_my_trades", ex.fetch_my_trades, symbol, cursor,
                              s.trades_page_limit)
            fresh = [t for t in page if str(t.get("id")) not in seen]
            for trade in fresh:
                seen[str(trade.get("id"))] = trade
            if len(page) < s.trades_page_limit:
                return list(seen.values())
            last = max(int(t.get("timestamp") or 0) for t in page)
            if not fresh:  # a whole page in one millisecond: paging by time cannot go on
                raise VenueError("fetch_my_trades", f"{len(page)} or more {symbol} trades at "
                                 f"{last} ms; raise trades_page_limit")
            cursor = last  # that millisecond again: the trades already seen are skipped
        raise VenueError("fetch_my_trades", f"more than {s.max_trade_pages} pages of "
                         f"{symbol} trades; raise max_trade_pages or sync more often")

    def _coids_of(self, symbol: str, trades: list[dict[str, Any]],
                  since_ms: int | None) -> dict[str, str]:
        """Venue order id -> client order id, for the orders of ``trades``."""
        ex = self._client()
        wanted = {str(t.get("order")) for t in trades if t.get("order") is not None}
        missing = {o for o in wanted if (symbol, o) not in self._coids}
        if missing and ex.has.get("fetchOrders"):
            for order in self._read("fetch_orders", ex.fetch_orders, symbol, since_ms):
                self._coids[(symbol, str(order.get("id")))] = str(order.get("clientOrderId")
                                                                  or "")
            missing = {o for o in wanted if (symbol, o) not in self._coids}
        for order_id in sorted(missing):
            order = self._read("fetch_order", ex.fetch_order, order_id, symbol)
            self._coids[(symbol, order_id)] = str(order.get("clientOrderId") or "")
        return {o: self._coids[(symbol, o)] for o in wanted}

    # -- ticker --------------------------------------------------------------------------------
    def _ticker(self, symbol: str) -> Ticker:
        ex = self._client()
        data: dict[str, Any] = self._read("fetch_ticker", ex.fetch_ticker, symbol)

        def number(key: str) -> Decimal | None:
            value = data.get(key)
            return None if value is None else to_decimal(value, key)

        stamp = data.get("timestamp")
        return Ticker(symbol, number("last"), number("bid"), number("ask"),
                      float(stamp) / 1000 if stamp else 0.0)


def resolve_credentials(settings: CcxtExchange.Settings,
                        environ: Mapping[str, str]) -> Credentials:
    """Read the credentials ``settings`` point at; CredentialsError names what is missing."""
    s = settings
    try:
        key, key_source = read_secret("api key", env=s.api_key_env, file=s.api_key_file,
                                      environ=environ)
        secret, secret_source = read_secret("secret", env=s.secret_env, file=s.secret_file,
                                            environ=environ)
        password, password_source = read_secret("password", env=s.password_env,
                                                file=s.password_file, environ=environ)
    except SecretError as exc:
        raise CredentialsError(str(exc)) from None
    if key is None or secret is None:
        raise CredentialsError("an api key and a secret are required")
    sources: tuple[str, ...] = (f"api key: {key_source}", f"secret: {secret_source}")
    if password is not None:
        sources += (f"password: {password_source}",)
    return Credentials(key, secret, password, sources)
