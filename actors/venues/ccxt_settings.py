"""What :class:`~actors.venues.ccxt_exchange.CcxtExchange` knows before it makes a client:
its settings (:class:`CcxtSettings`, checked against ccxt's exchanges and, through the price
guard, against its market), their retry policy, and the credentials they point at
(:func:`resolve_credentials`), never their values in a repr or a message; and the lazy
``ccxt`` import (:func:`import_ccxt`), an optional extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.market.contract import MarketCursor
from actors.venues.price_guard import price_refusals, price_warnings
from supervisor.backoff import Backoff
from supervisor.host.secrets import SecretError, read_secret
from supervisor.host.wiring import PeerView
from supervisor.peers import Peer

__all__ = [
    "INSTALL_HINT",
    "CcxtMissing",
    "CcxtSettings",
    "Credentials",
    "CredentialsError",
    "RetrySettings",
    "import_ccxt",
    "resolve_credentials",
]

INSTALL_HINT = "install it with: pip install 'botvisor[live]'"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_RULE_MODULE = "actors.venues.ccxt_exchange"  # where error rules find these classes


class CcxtMissing(ImportError):
    """The optional ``ccxt`` package is not installed."""

    __module__ = _RULE_MODULE


class CredentialsError(ValueError):
    """A credential could not be read; the message names its source, never its value."""

    __module__ = _RULE_MODULE


def import_ccxt() -> ModuleType:
    """The ``ccxt`` module, imported now (it is an optional extra)."""
    try:
        import ccxt
    except ImportError as exc:
        raise CcxtMissing(f"the ccxt package is not installed ({exc}); {INSTALL_HINT}") from None
    module: ModuleType = ccxt
    return module


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


class CcxtSettings(BaseModel):
    """The settings of :class:`~actors.venues.ccxt_exchange.CcxtExchange` (its
    ``CcxtExchange.Settings``): which venue, where its credentials are, and how patient to
    be with it.

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
    def _check(self) -> CcxtSettings:
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


def resolve_credentials(settings: CcxtSettings,
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
