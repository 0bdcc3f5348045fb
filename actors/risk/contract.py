"""Messages to the circuit breaker: the real measurements its triggers are computed from."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from actors.risk.gate import BreakerState

__all__ = [
    "ApiResult",
    "BreakerStatus",
    "EquitySample",
    "ForceClose",
    "ForceOpen",
    "GetBreakerStatus",
    "LedgerHistory",
    "MarketSamples",
    "PriceSample",
    "ProbeResult",
    "SampleResources",
    "TradeClosed",
    "VolumeSample",
]


@dataclass(frozen=True, slots=True)
class EquitySample:
    """The account as the position actor sees it now."""

    equity: Decimal
    gross_exposure: Decimal
    exposure_by_symbol: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TradeClosed:
    """A fill that realised profit or loss (closing or reducing a position)."""

    symbol: str
    pnl: Decimal


@dataclass(frozen=True, slots=True)
class ApiResult:
    """The outcome of one call to the exchange."""

    ok: bool
    what: str = ""


@dataclass(frozen=True, slots=True)
class PriceSample:
    """A traded price at market time ``at``, for realised volatility over market time."""

    symbol: str
    price: float
    at: float


@dataclass(frozen=True, slots=True)
class VolumeSample:
    """Traded volume (quote currency) of one market-data bar, for the liquidity floor."""

    symbol: str
    volume: float


@dataclass(frozen=True, slots=True)
class MarketSamples:
    """The samples of one market emit in one message, in bar order: each is ``(symbol,
    price, at, quote volume)``, taken exactly as a PriceSample(symbol, price, at) followed by
    a VolumeSample(symbol, quote volume) would be (volatility over market time, the
    liquidity floor per bar)."""

    samples: tuple[tuple[str, float, float, float], ...]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of a HALF_OPEN probe order the executor was allowed to send."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LedgerHistory:
    """The position actor opened its ledger: its event ``seq`` (0: no fill, no correction
    ever). A breaker that found no state of its own decides from it whether this is a new
    deployment (CLOSED) or lost state (held OPEN, alerted)."""

    seq: int
    database: str = ""


@dataclass(frozen=True, slots=True)
class SampleResources:
    """Timer message: sample the process's memory and CPU now."""


@dataclass(frozen=True, slots=True)
class ForceOpen:
    """Operator: open the breaker and keep it open until ForceClose."""

    by: str
    why: str


@dataclass(frozen=True, slots=True)
class ForceClose:
    """Operator: close the breaker (also ends a halt)."""

    by: str
    why: str


@dataclass(frozen=True, slots=True)
class GetBreakerStatus:
    """Ask for a BreakerStatus."""


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """The breaker's state, why, since when, and what its triggers measure now."""

    state: BreakerState
    reason: str
    by: str
    since: float
    manual: bool
    recovery_at: float | None
    trips_recently: int
    figures: tuple[tuple[str, str], ...]
    measures: dict[str, str]
    transitions: int
