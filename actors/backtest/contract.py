"""The backtest context's contract: the records a backtest run produces.

The engine builds one :class:`BacktestResult` per run: every closed :class:`TradeRecord`,
the :class:`EquityCurve` (one point per market step, two ``array('d')`` so that a run of a
million steps holds 16 MB, not a million objects), the :class:`BreakerTrip` s, and what was
read. :mod:`actors.backtest.metrics` summarises it, :mod:`actors.backtest.table` prints the
summary and :mod:`actors.backtest.report` writes the HTML page (docs/backtesting.md).
Times are seconds since the epoch (candle times); money is ``Decimal`` except the curve's
equity, a float mark.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "END_OF_DATA",
    "BacktestResult",
    "BreakerTrip",
    "EquityCurve",
    "InvalidResult",
    "TradeRecord",
]

# The exit reason of a position still open when the data ends (closed at the last close).
END_OF_DATA = "end_of_data"


class InvalidResult(ValueError):
    """A record the engine built is inconsistent (the message names the field)."""


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One closed trade: opened at the candle ``entry_at``, closed at ``exit_at``.

    ``pnl`` is after ``fees`` (both legs'). ``exit_reason`` is the strategy's reason or an
    exit rule's (``stop_loss``, ``take_profit``, ``trailing_stop``, ``time_stop``), or
    :data:`END_OF_DATA` for a position still open at the end, marked at the last close.
    """

    symbol: str
    strategy: str
    entry_at: float
    exit_at: float
    entry_price: Decimal
    exit_price: Decimal
    quantity: Decimal
    pnl: Decimal
    fees: Decimal
    exit_reason: str

    def __post_init__(self) -> None:
        if self.exit_at < self.entry_at:
            raise InvalidResult(f"trade {self.symbol}: exit_at {self.exit_at} is before "
                                f"entry_at {self.entry_at}")


def _floats(values: Iterable[float]) -> array[float]:
    return values if isinstance(values, array) and values.typecode == "d" else array("d", values)


@dataclass(frozen=True, slots=True)
class EquityCurve:
    """The account's equity marked at each market step's close, after that step's fills.

    ``times[i]`` (seconds, increasing) and ``equity[i]`` (in the quote currency) are one
    point, all finite; any iterable of floats is copied into an ``array('d')``, an ``array('d')`` is
    kept as it is (the engine appends to its own arrays, then hands them over and stops).
    """

    times: array[float] = field(default_factory=lambda: array("d"))
    equity: array[float] = field(default_factory=lambda: array("d"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", _floats(self.times))
        object.__setattr__(self, "equity", _floats(self.equity))
        if len(self.times) != len(self.equity):
            raise InvalidResult(f"equity curve: {len(self.times)} times but "
                                f"{len(self.equity)} equity points")
        # One C-level pass: a NaN or an infinity anywhere makes the sum non-finite.
        if not math.isfinite(sum(self.equity)) or not math.isfinite(sum(self.times)):
            raise InvalidResult("equity curve: a time or an equity point is not finite")

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True, slots=True)
class BreakerTrip:
    """The circuit breaker tripped at the candle time ``at``, for ``reason``."""

    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything one backtest run produced.

    ``start_cash`` is the equity before the first step; ``window`` the span the run covered,
    ``(from, until)`` in seconds; ``candles`` the candles read, ``bad_candles`` those skipped
    as bad (gaps, out-of-range prices).
    """

    trades: tuple[TradeRecord, ...]
    curve: EquityCurve
    start_cash: Decimal
    timeframe_s: float
    window: tuple[float, float]
    symbols: tuple[str, ...]
    strategies: tuple[str, ...]
    breaker_trips: tuple[BreakerTrip, ...] = ()
    candles: int = 0
    bad_candles: int = 0

    def __post_init__(self) -> None:
        if self.start_cash <= 0:
            raise InvalidResult(f"start_cash must be > 0, not {self.start_cash}")
        if not self.timeframe_s > 0:
            raise InvalidResult(f"timeframe_s must be > 0, not {self.timeframe_s}")
        if self.window[1] < self.window[0]:
            raise InvalidResult(f"window ends ({self.window[1]}) before it starts "
                                f"({self.window[0]})")
        if self.candles < 0 or self.bad_candles < 0:
            raise InvalidResult("candles and bad_candles must be >= 0")
