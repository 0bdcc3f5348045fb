"""The market context's contract: the bars it sends, what it accepts, and what a data source
must implement.

The market actor sends ``Bars`` (one step, to its subscribers), ``MarkPrices`` (to the
position actor) and ``MarketSamples`` (to the circuit breaker), and publishes its
``MarketCursor``; it accepts ``FeedBars`` and ``GetMarketStats``. Replaying in lockstep, it
asks the executor ``AwaitIdle``. The scanner sends
``Candidates`` and ``ScannedBars``. A live feed sends ``FeedHealth`` (to the circuit
breaker). A data source (the synthetic market, a CSV replay, a live feed) implements
:class:`MarketSource`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AwaitIdle",
    "BadBar",
    "Bar",
    "Bars",
    "Candidates",
    "FeedBars",
    "FeedHealth",
    "GetMarketStats",
    "MarkPrices",
    "MarketCursor",
    "MarketOrigin",
    "MarketSamples",
    "MarketSource",
    "MarketStats",
    "PriceSample",
    "ScannedBars",
    "VolumeSample",
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
class Bars:
    """The bars of one market step (one per symbol), as subscribers receive them.
    ``catch_up``: a live feed's candles older than its newest closed one (the warm-up at a
    fresh start, the candles fetched after an outage): they fill the scanner's and the
    strategies' windows, and no entry is signalled on them."""

    bars: tuple[Bar, ...]
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class FeedBars:
    """Push bars from outside (a test, a bench, another feed) through validation."""

    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A live feed's staleness at venue time ``at``: ``stale`` when some symbol has had no
    closed candle for the feed's ``stale_after`` timeframes (``stale_symbols``, in feed
    order); ``last_closed_at`` is the oldest of the symbols' last closed candles (seconds,
    None before the first). Sent when it changes; the breaker holds OPEN while stale."""

    source: str
    stale: bool
    stale_symbols: tuple[str, ...]
    last_closed_at: float | None
    at: float


@dataclass(frozen=True, slots=True)
class AwaitIdle:
    """Ask from the market's lockstep replay (``pace: lockstep``): answered once the asked
    actor has acted on everything told to it before and has nothing in flight (no order
    out, no fill unrecorded), or after its own timeout; the reply's value is its own (the
    market only waits for it). The executor accepts it."""


@dataclass(frozen=True, slots=True)
class GetMarketStats:
    """Ask for MarketStats."""


@dataclass(frozen=True, slots=True)
class MarketStats:
    """How many bars went out, how many were rejected and why, and where the feed is."""

    steps: int
    bars: int
    rejected: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    last_at: float | None = None


@dataclass(frozen=True, slots=True)
class MarketOrigin:
    """Where this process's feed started: the synthetic market's bar index and the closes
    it started from (or the CSV steps skipped). Read from the clock file at a process's
    first start; an in-process restart rebuilds the same feed from it."""

    index: int = 0
    closes: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class MarketCursor:
    """Where the feed is, and the last bar of each symbol: published so a restarted market
    resumes instead of replaying, and so the paper exchange can price an order at the
    market's latest price without a message per bar. ``steps`` counts from ``origin``.

    ``latest`` (a live feed only; empty otherwise): per symbol the newer of the last closed
    bar and the candle still forming, a price for marking and filling, never acted on."""

    steps: int
    last: dict[str, Bar]
    origin: MarketOrigin = MarketOrigin()
    latest: dict[str, Bar] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScannedBars:
    """Bars passed on to the evaluator, with the symbols it may open positions in
    (``catch_up``: as the market's :class:`Bars` said)."""

    bars: tuple[Bar, ...]
    candidates: frozenset[str]
    catch_up: bool = False


class BadBar(ValueError):
    """A bar that must not reach the strategies; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MarkPrices:
    """The latest prices of many symbols in one message (one market emit), in order: each is
    ``(symbol, price, at)``, taken as ``MarkPrice(symbol, Decimal(repr(price)), at)`` would
    be. The position actor converts the float (its shortest repr, exactly) to a Decimal."""

    prices: tuple[tuple[str, float, float], ...]


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


class MarketSource(Protocol):
    """What the market actor reads from a data source (the synthetic market, a CSV replay, a
    live feed): market steps in time order, each the bars of one moment (one per symbol)
    or a lone :class:`BadBar` for data that cannot be used (it is counted and alerted, not
    sent). The actor validates every bar, paces the steps and stops when they end."""

    def steps(self) -> Iterator[Sequence[Bar | BadBar]]: ...
