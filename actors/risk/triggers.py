"""Circuit-breaker triggers: each computes one risk measure from real inputs.

Each is fed the samples it measures (equity, trade results, API call outcomes, exposure,
process resources, feed staleness; the market's prices and volumes:
:mod:`actors.risk.market_triggers`) and trips, with the figures, when its measure
crosses its limit. *Edge* triggers (drawdown, API errors, consecutive losses) re-arm at
HALF_OPEN; *level* triggers (daily loss, volatility, liquidity, exposure, resources, stale
data) hold the breaker OPEN while their condition holds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

__all__ = [
    "ApiErrorTrigger",
    "ConsecutiveLossTrigger",
    "DailyLossTrigger",
    "DrawdownTrigger",
    "ExposureTrigger",
    "ResourceTrigger",
    "StaleDataTrigger",
    "Trip",
]


@dataclass(frozen=True, slots=True)
class Trip:
    """A trigger fired: which, why, and the numbers behind it."""

    trigger: str
    reason: str
    figures: tuple[tuple[str, str], ...]


def _pct(value: Decimal | float) -> str:
    return f"{float(value):.4g}%"


class DrawdownTrigger:
    """Owns the peak equity; trips when equity falls ``max_percent`` below it."""

    name = "drawdown"
    level = False

    def __init__(self, max_percent: float) -> None:
        self.max_percent = Decimal(str(max_percent))
        self.peak: Decimal | None = None
        self.last: Decimal | None = None

    def on_equity(self, equity: Decimal) -> Trip | None:
        self.last = equity
        peak = self.peak
        if peak is None or equity >= peak:
            if peak is None or equity > peak:
                self.peak = equity
            return None  # at the peak: no drawdown (and a limit is > 0)
        if peak <= 0:
            return None
        # (peak - equity) / peak * 100 >= max, compared as products: no division a sample
        if (peak - equity) * 100 >= self.max_percent * peak:
            drawdown = (peak - equity) / peak * 100
            return Trip(self.name, f"drawdown {_pct(drawdown)} from peak {self.peak} "
                                   f"(limit {_pct(self.max_percent)})",
                        (("equity", str(equity)), ("peak", str(self.peak)),
                         ("drawdown_pct", f"{float(drawdown):.4f}")))
        return None

    def rearm(self) -> None:
        if self.last is not None:
            self.peak = self.last


class DailyLossTrigger:
    """Owns the day's starting equity (day boundary in ``timezone``); trips on a loss of
    ``max_percent`` of it. Percent of equity against a percent limit, never dollars."""

    name = "daily_loss"
    level = True

    def __init__(self, max_percent: float, timezone: str = "UTC") -> None:
        self.max_percent = Decimal(str(max_percent))
        self.tz = ZoneInfo(timezone)
        self.day: str | None = None
        self.start_equity: Decimal | None = None
        self._loss = (Decimal(0), Decimal(1))  # (start - equity, start) of the last sample
        # the local day last named and the wall times it spans: a sample within them is of
        # that day without a date conversion (every market step is a sample)
        self._span = (math.inf, -math.inf, "")

    def day_of(self, wall: float) -> str:
        """The local date of ``wall`` (ISO), in ``timezone``."""
        start, end, day = self._span
        if start <= wall < end:
            return day
        local = datetime.fromtimestamp(wall, self.tz)
        day = local.date().isoformat()
        first = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        after = self.next_day_start(wall)
        # a zone whose midnight does not exist (or repeats) that day: no span, convert each
        ok = first <= wall < after and datetime.fromtimestamp(first, self.tz).date() == \
            local.date() and datetime.fromtimestamp(after - 1e-3, self.tz).date() == local.date()
        self._span = (first, after, day) if ok else (math.inf, -math.inf, "")
        return day

    def on_equity(self, equity: Decimal, wall: float) -> Trip | None:
        day = self.day_of(wall)
        if day != self.day:
            self.day, self.start_equity = day, equity
        start = self.start_equity
        assert start is not None
        if start <= 0:
            return None
        loss = self._loss = (start - equity, start)
        # loss / start * 100 >= max, compared as products: no division a sample
        if loss[0] * 100 >= self.max_percent * start:
            return Trip(self.name, f"daily loss {_pct(self.loss_pct)} of the day's starting "
                                   f"equity {self.start_equity} (limit {_pct(self.max_percent)})",
                        (("equity", str(equity)), ("day_start_equity", str(self.start_equity)),
                         ("loss_pct", f"{float(self.loss_pct):.4f}"), ("day", day)))
        return None

    @property
    def loss_pct(self) -> Decimal:
        """The last sample's loss, in percent of the day's starting equity."""
        loss, start = self._loss
        return loss / start * 100

    def holding(self, wall: float) -> str | None:
        """Why the breaker must stay open now, if this trigger says so."""
        day = self.day_of(wall)
        if day == self.day and self._loss[0] * 100 >= self.max_percent * self._loss[1]:
            return f"daily loss limit reached for {day}"
        return None

    def next_day_start(self, wall: float) -> float:
        now = datetime.fromtimestamp(wall, self.tz)
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return tomorrow.timestamp()

    def rearm(self) -> None:
        """Nothing: the day's loss stands until the day ends."""


class ApiErrorTrigger:
    """Owns a sliding window of API call outcomes; trips on a high error rate (once the
    window has ``min_calls``) or on ``max_consecutive`` failures in a row.

    The window's error count is kept as calls come and go, so a call costs O(1) however
    many the window holds (every order is one)."""

    name = "api_errors"
    level = False

    def __init__(self, window_seconds: float, min_calls: int, max_error_rate: float,
                 max_consecutive: int) -> None:
        self.window = window_seconds
        self.min_calls = min_calls
        self.max_rate = max_error_rate
        self.max_consecutive = max_consecutive
        self.calls: deque[tuple[float, bool]] = deque()
        self.errors = 0  # failed calls in ``calls``
        self.failures_in_row = 0

    def on_call(self, ok: bool, now: float) -> Trip | None:
        calls = self.calls
        calls.append((now, ok))
        if not ok:
            self.errors += 1
        cutoff = now - self.window
        while calls and calls[0][0] <= cutoff:
            if not calls.popleft()[1]:
                self.errors -= 1
        self.failures_in_row = 0 if ok else self.failures_in_row + 1
        total = len(calls)
        errors = self.errors
        if self.max_consecutive and self.failures_in_row >= self.max_consecutive:
            return Trip(self.name, f"{self.failures_in_row} failed API calls in a row "
                                   f"(limit {self.max_consecutive})",
                        (("failures_in_row", str(self.failures_in_row)),))
        if total >= self.min_calls and errors / total >= self.max_rate:
            return Trip(self.name, f"API error rate {errors}/{total} = {errors / total:.1%} "
                                   f"in {self.window:g}s (limit {self.max_rate:.1%})",
                        (("errors", str(errors)), ("calls", str(total)),
                         ("error_rate", f"{errors / total:.4f}")))
        return None

    def rearm(self) -> None:
        self.calls.clear()
        self.errors = 0
        self.failures_in_row = 0


class ConsecutiveLossTrigger:
    """Owns the current streak of losing trades (truly consecutive: a win resets it)."""

    name = "consecutive_losses"
    level = False

    def __init__(self, max_losses: int) -> None:
        self.max_losses = max_losses
        self.streak = 0

    def on_trade(self, pnl: Decimal) -> Trip | None:
        if pnl < 0:
            self.streak += 1
        elif pnl > 0:
            self.streak = 0
        if self.streak >= self.max_losses:
            return Trip(self.name, f"{self.streak} losing trades in a row "
                                   f"(limit {self.max_losses})",
                        (("streak", str(self.streak)), ("last_pnl", str(pnl))))
        return None

    def rearm(self) -> None:
        self.streak = 0


class ExposureTrigger:
    """Owns the latest exposure figures; trips when gross exposure over equity, in total or
    for one symbol, exceeds its limit."""

    name = "exposure"
    level = True

    def __init__(self, max_gross_percent: float, max_symbol_percent: float) -> None:
        self.max_gross = Decimal(str(max_gross_percent))
        self.max_symbol = Decimal(str(max_symbol_percent))
        self.breach: str | None = None

    def on_exposure(self, equity: Decimal, gross: Decimal,
                    by_symbol: dict[str, Decimal]) -> Trip | None:
        self.breach = None
        if equity <= 0:
            if gross > 0:
                self.breach = "equity is not positive while exposed"
                return Trip(self.name, self.breach, (("equity", str(equity)),
                                                     ("gross", str(gross))))
            return None
        if gross * 100 > self.max_gross * equity:  # gross / equity * 100 > max, no division
            gross_pct = gross / equity * 100
            self.breach = f"gross exposure {_pct(gross_pct)} of equity"
            return Trip(self.name, f"{self.breach} (limit {_pct(self.max_gross)})",
                        (("gross", str(gross)), ("equity", str(equity)),
                         ("gross_pct", f"{float(gross_pct):.4f}")))
        # The limits are compared as products (value * 100 against limit * equity), which
        # grow with the value, so no symbol is over the limit unless the largest is
        if not by_symbol or max(by_symbol.values()) * 100 <= self.max_symbol * equity:
            return None
        for symbol, value in sorted(by_symbol.items()):
            if value * 100 > self.max_symbol * equity:
                pct = value / equity * 100
                self.breach = f"{symbol} exposure {_pct(pct)} of equity"
                return Trip(self.name, f"{self.breach} (limit {_pct(self.max_symbol)})",
                            (("symbol", symbol), ("exposure", str(value)),
                             ("symbol_pct", f"{float(pct):.4f}")))
        return None

    def holding(self) -> str | None:
        return self.breach

    def rearm(self) -> None:
        """Nothing: exposure is a level."""


class ResourceTrigger:
    """Owns recent process samples; trips when resident memory exceeds ``max_rss_mb`` or CPU
    stays above ``max_cpu_percent`` for ``sustain`` samples in a row."""

    name = "resources"
    level = True

    def __init__(self, max_rss_mb: float, max_cpu_percent: float, sustain: int) -> None:
        self.max_rss_mb = max_rss_mb
        self.max_cpu = max_cpu_percent
        self.sustain = sustain
        self.hot_samples = 0
        self.rss_mb = 0.0
        self.cpu = 0.0

    def on_sample(self, rss_bytes: int, cpu_percent: float) -> Trip | None:
        self.rss_mb = rss_bytes / 1_048_576
        self.cpu = cpu_percent
        self.hot_samples = self.hot_samples + 1 if cpu_percent > self.max_cpu else 0
        if self.rss_mb > self.max_rss_mb:
            return Trip(self.name, f"process memory {self.rss_mb:.0f} MB over "
                                   f"{self.max_rss_mb:.0f} MB",
                        (("rss_mb", f"{self.rss_mb:.1f}"),))
        if self.hot_samples >= self.sustain:
            return Trip(self.name, f"process CPU {cpu_percent:.0f}% over {self.max_cpu:.0f}% "
                                   f"for {self.hot_samples} samples",
                        (("cpu_pct", f"{cpu_percent:.1f}"), ("samples", str(self.hot_samples))))
        return None

    def holding(self) -> str | None:
        if self.rss_mb > self.max_rss_mb:
            return f"memory still {self.rss_mb:.0f} MB"
        if self.hot_samples >= self.sustain:
            return f"CPU still {self.cpu:.0f}%"
        return None

    def rearm(self) -> None:
        """Nothing: resources are a level."""


class StaleDataTrigger:
    """Owns the staleness each live feed last reported (by source); trips when one reports
    stale (no closed candle for its ``stale_after`` timeframes) and holds the breaker OPEN
    while any still is. The feed measures staleness; this trigger trusts its latest word."""

    name = "stale_data"
    level = True

    def __init__(self) -> None:
        # source -> (stale symbols, last closed candle time, reported at)
        self.stale: dict[str, tuple[tuple[str, ...], float | None, float]] = {}

    def on_health(self, source: str, stale: bool, symbols: tuple[str, ...],
                  last_closed_at: float | None, at: float) -> Trip | None:
        if not stale:
            self.stale.pop(source, None)
            return None
        self.stale[source] = (symbols, last_closed_at, at)
        return Trip(self.name, self._why(source),
                    (("source", source), ("stale_symbols", ",".join(symbols)),
                     ("last_closed_at", "none" if last_closed_at is None
                      else f"{last_closed_at:.0f}"),
                     ("at", f"{at:.0f}")))

    def _why(self, source: str) -> str:
        symbols, last, at = self.stale[source]
        since = ("no closed candle yet" if last is None
                 else f"last closed candle {at - last:.0f}s before {at:.0f}")
        return f"feed {source} stale for {', '.join(symbols) or 'all symbols'} ({since})"

    def holding(self) -> str | None:
        if not self.stale:
            return None
        return "; ".join(f"stale_data: {self._why(s)}" for s in sorted(self.stale))

    def rearm(self) -> None:
        """Nothing: stale data is a level; it holds the breaker while it lasts."""
