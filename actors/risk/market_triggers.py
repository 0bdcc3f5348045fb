"""Circuit-breaker triggers on the market's samples: realised volatility and liquidity.

Every bar of every symbol is a sample of both, so each is O(1) a sample: the volatility
window keeps its sums running (:class:`_PriceWindow`). Level triggers: they hold the
breaker OPEN while their condition holds. The other triggers: :mod:`actors.risk.triggers`.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable

from actors.risk.triggers import Trip

_log, _sqrt = math.log, math.sqrt  # the volatility trigger's per-bar arithmetic

__all__ = ["LiquidityTrigger", "VolatilityTrigger"]


RESUM_AT_LEAST = 64  # evictions between two exact re-sums, however small the window


class _PriceWindow:
    """One symbol's prices over the window, with the running sum of the squares of its
    1-sample log returns, updated as prices are pushed and evicted, so a sample costs
    O(1) whatever the window holds.

    Each entry keeps the square of its price's log return from the previous price (0.0 for
    the first, whose return is outside the window), so an eviction takes out exactly what
    the push put in.
    Pushing, and the eviction of one price, are :meth:`VolatilityTrigger.on_prices`'s
    per-bar path, written out there. Rounding errors of the additions and subtractions are
    bounded: the sum is recomputed exactly (``math.fsum``) once four times as many evictions
    have happened as the window holds, and at least :data:`RESUM_AT_LEAST`, which keeps a
    sample O(1) amortised (a quarter of an entry's work per sample at most).
    """

    __slots__ = ("entries", "evicted", "sum_sq")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, float, float]] = deque()  # (at, price, return²)
        self.sum_sq = 0.0
        self.evicted = 0

    def evict_through(self, cutoff: float) -> None:
        """Drop the prices at or before ``cutoff``."""
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            entries.popleft()
            self.evicted += 1
            if entries:  # the return into the new first price leaves the window
                out = entries[0][2]
                self.sum_sq -= out
                if self.sum_sq < out * 1e-6:
                    # what is left is tiny next to what just left (calm after a burst): the
                    # subtraction's rounding would dominate it, so count it again exactly
                    self.evicted = RESUM_AT_LEAST
        self.settle()

    def settle(self) -> None:
        """After evictions: empty sums for fewer than two prices, an exact re-sum when due."""
        n = len(self.entries)
        if n < 2:
            self.sum_sq = 0.0
            self.evicted = 0
        elif self.evicted >= 4 * n and self.evicted >= RESUM_AT_LEAST:
            self.resum()

    def resum(self) -> None:
        """Recompute the sum exactly from the entries."""
        self.sum_sq = math.fsum(sq for _, _, sq in itertools.islice(self.entries, 1, None))
        self.evicted = 0


class VolatilityTrigger:
    """Owns recent prices per symbol; trips when realised volatility over the window
    (root of the summed squared log returns, in percent) exceeds ``max_percent``.

    Each sample is O(1): the sums are kept running per symbol (see ``_PriceWindow``)."""

    name = "volatility"
    level = True

    def __init__(self, window_seconds: float, max_percent: float, min_samples: int) -> None:
        self.window = window_seconds
        self.max_percent = max_percent
        self.min_samples = min_samples
        self.prices: dict[str, _PriceWindow] = {}
        self.current: dict[str, float] = {}

    def on_price(self, symbol: str, price: float, now: float) -> Trip | None:
        """One price sample (:meth:`on_prices` of one)."""
        trips = self.on_prices(((symbol, price, now, 0.0),))
        return trips[0][1] if trips else None

    def on_prices(self, samples: Iterable[tuple[str, float, float, float]]
                  ) -> list[tuple[int, Trip]] | None:
        """Price samples ``(symbol, price, at, ...)`` in order: the trips they fire, each
        with its sample's index (None: none fired)."""
        # Every bar of every symbol comes here: the push into the window, the eviction check
        # and the realised volatility (root of the summed squared returns) are inline.
        prices, current = self.prices, self.current
        window, least, limit = self.window, self.min_samples, self.max_percent
        trips: list[tuple[int, Trip]] | None = None
        for i, (symbol, price, now, _) in enumerate(samples):
            series = prices.get(symbol)
            if series is None:
                series = prices[symbol] = _PriceWindow()
            entries = series.entries
            if entries:
                r = _log(price / entries[-1][1])
                r *= r
                entries.append((now, price, r))
                series.sum_sq += r
            else:
                entries.append((now, price, 0.0))
            cutoff = now - window
            if entries[0][0] <= cutoff:
                if entries[1][0] > cutoff:  # one price leaves (a steady feed): inline
                    entries.popleft()
                    series.evicted += 1
                    out = entries[0][2]
                    series.sum_sq -= out
                    if series.sum_sq < out * 1e-6:  # see _PriceWindow.evict_through
                        series.evicted = RESUM_AT_LEAST
                    if series.evicted >= RESUM_AT_LEAST or len(entries) < 2:
                        series.settle()
                else:
                    series.evict_through(cutoff)
            n = len(entries)
            if n < least:
                current.pop(symbol, None)
                continue
            sum_sq = series.sum_sq
            pct = (_sqrt(sum_sq) if sum_sq > 0.0 else 0.0) * 100
            current[symbol] = pct
            if pct >= limit:
                if trips is None:
                    trips = []
                trips.append((i, self._trip(symbol, pct, n)))
        return trips

    def _trip(self, symbol: str, pct: float, samples: int) -> Trip:
        return Trip(self.name, f"{symbol} realised volatility {pct:.3g}% over "
                               f"{self.window:g}s (limit {self.max_percent:g}%)",
                    (("symbol", symbol), ("volatility_pct", f"{pct:.4f}"),
                     ("samples", str(samples))))

    def holding(self) -> str | None:
        hot = {s: v for s, v in self.current.items() if v >= self.max_percent}
        return f"volatility still high: {sorted(hot)}" if hot else None

    def rearm(self) -> None:
        """Nothing: volatility is a level; it holds the breaker while it lasts."""


class LiquidityTrigger:
    """Owns the latest traded volume per symbol; trips when a symbol we hold trades less
    than ``min_volume`` (quote currency per sample window)."""

    name = "liquidity"
    level = True

    def __init__(self, min_volume: float) -> None:
        self.min_volume = min_volume
        self.volume: dict[str, float] = {}
        self.held: set[str] = set()

    def on_volume(self, symbol: str, volume: float) -> Trip | None:
        """One volume sample (:meth:`on_volumes` of one)."""
        trips = self.on_volumes(((symbol, 0.0, 0.0, volume),))
        return trips[0][1] if trips else None

    def on_volumes(self, samples: Iterable[tuple[str, float, float, float]]
                   ) -> list[tuple[int, Trip]] | None:
        """Volume samples ``(symbol, ..., ..., quote volume)`` in order: the trips they
        fire, each with its sample's index (None: none fired)."""
        volumes, floor, held = self.volume, self.min_volume, self.held
        trips: list[tuple[int, Trip]] | None = None
        for i, (symbol, _, _, volume) in enumerate(samples):
            volumes[symbol] = volume
            if volume < floor and symbol in held:  # else: no trip (_check)
                trip = self._check(symbol)
                if trip is not None:
                    if trips is None:
                        trips = []
                    trips.append((i, trip))
        return trips

    def on_holdings(self, symbols: set[str]) -> Trip | None:
        self.held = symbols
        volume, floor = self.volume, self.min_volume
        thin = [s for s in symbols if (v := volume.get(s)) is not None and v < floor]
        return self._check(min(thin)) if thin else None  # the first in symbol order

    def _check(self, symbol: str) -> Trip | None:
        volume = self.volume.get(symbol)
        if symbol in self.held and volume is not None and volume < self.min_volume:
            return Trip(self.name, f"{symbol} volume {volume:.4g} below the floor "
                                   f"{self.min_volume:.4g}",
                        (("symbol", symbol), ("volume", f"{volume:.6g}")))
        return None

    def holding(self) -> str | None:
        thin = [s for s in self.held if self.volume.get(s, math.inf) < self.min_volume]
        return f"liquidity still thin: {sorted(thin)}" if thin else None

    def rearm(self) -> None:
        """Nothing: liquidity is a level."""
