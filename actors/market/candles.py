"""The live feed's candle tracker: what ccxt returns in, closed candles out, each once.

:class:`CandleTracker` owns, for one feed (all symbols of one venue and timeframe), the last
candle handled per symbol, the candles seen and not yet handled, and how far a page from the
venue has covered. It is fed the rows ccxt returns (``fetch_ohlcv`` pages and ``watch_ohlcv``
updates: ``[ms, open, high, low, close, volume]``, repeated, overlapping, out of order, the
last one still forming) with the venue's time, and answers:

- the candles that are closed, final and new, in order, each exactly once, as :class:`Bar`
  (seconds), checked by :func:`~actors.market.data.check_bar` (a bad one is rejected with its
  reason and counted, never delivered), and the gaps between them;
- where to fetch from (:meth:`CandleTracker.backfill`) on start, after a restart (from the
  last delivered candle per symbol) and after a reconnect, so that none is missed or repeated;
- whether the feed is stale (:meth:`CandleTracker.health`).

Pure: no clock, no I/O; every time is passed in. Staleness and the ``stale_data`` breaker
trigger: docs/trading-bot.md ("Circuit breaker").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from actors.market.contract import BadBar, Bar, FeedHealth
from actors.market.data import check_bar

__all__ = [
    "CandleTracker",
    "Delivery",
    "FeedCounts",
    "Gap",
    "Rejected",
    "timeframe_ms",
]

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    """A ccxt timeframe (``1m``, ``15m``, ``4h``, ``1d``, ``1w``) in milliseconds; a
    ValueError names one that is not."""
    text = timeframe.strip()
    count, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"timeframe {timeframe!r} is not a ccxt timeframe (e.g. 1m, 1h, 1d)")
    return int(count) * _UNITS[unit]


@dataclass(frozen=True, slots=True)
class Gap:
    """Candles the venue does not have between two closed ones (``missing`` of them)."""

    symbol: str
    after: float  # the candle before the gap, seconds
    before: float  # the candle after it
    missing: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A closed candle (or a row) that failed the bad-bar rules, with the reason."""

    symbol: str
    at: float | None
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one call to the tracker produced: the closed candles, in order (by time, then
    symbol), the rejected ones, the gaps found, and the symbols that need a fetch from
    ``since`` (ms) to go on (a gap or a candle closed with only a forming version seen)."""

    closed: tuple[Bar, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    gaps: tuple[Gap, ...] = ()
    backfill: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class FeedCounts:
    """The tracker's counters: candles delivered, rejected by reason, gaps (missing candles),
    rows ignored as repeats of handled candles."""

    delivered: int
    rejected: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    repeats: int = 0


class _Series:
    """One symbol: the last candle handled (``done``, ms), the last delivered, the page
    coverage frontier, and the candles seen after ``done`` with whether each is final."""

    __slots__ = ("covered", "delivered", "done", "rows")

    def __init__(self, done: int, delivered: int | None) -> None:
        self.done = done
        self.delivered = delivered
        self.covered = done
        self.rows: dict[int, tuple[Sequence[Any], bool]] = {}


class CandleTracker:
    """Owns one feed's candle bookkeeping (see the module docstring).

    ``start`` is the venue time (seconds) the feed starts at; ``resume`` the last delivered
    candle time per symbol (seconds, as the market actor persisted it): the next delivered
    is the one after it. A symbol without one starts with the last ``warmup`` closed
    candles. Stale: some symbol's last delivered candle ended ``stale_after`` timeframes
    or more ago (counted from ``start`` at the earliest).
    """

    def __init__(
        self,
        source: str,
        symbols: Sequence[str],
        timeframe: str,
        *,
        start: float,
        resume: Mapping[str, float] | None = None,
        warmup: int = 1,
        stale_after: float = 3.0,
    ) -> None:
        if not symbols:
            raise ValueError(f"feed {source!r}: no symbols")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"feed {source!r}: a symbol is listed twice")
        if warmup < 0:
            raise ValueError(f"feed {source!r}: warmup must be >= 0, not {warmup}")
        if not stale_after >= 1:
            raise ValueError(f"feed {source!r}: stale_after must be >= 1 timeframe, not "
                             f"{stale_after}")
        self.source = source
        self.symbols = tuple(symbols)
        self.tf = timeframe_ms(timeframe)
        self.stale_after = stale_after
        self._start = _ms(start)
        self._now = self._start
        self._order = {s: i for i, s in enumerate(self.symbols)}
        resume = resume or {}
        unknown = sorted(set(resume) - set(self.symbols))
        if unknown:
            raise ValueError(f"feed {source!r}: resume point for unknown symbols {unknown}")
        fresh = self._floor(self._start) - (warmup + 1) * self.tf
        self._series = {}
        for s in self.symbols:
            at = resume.get(s)
            self._series[s] = (_Series(fresh, None) if at is None
                               else _Series(self._floor(_ms(at)), self._floor(_ms(at))))
        self._rejected: dict[str, int] = {}
        self._delivered = self._gaps = self._repeats = 0
        self._stale: frozenset[str] = frozenset()

    # -- input -------------------------------------------------------------------------------
    def ingest(self, symbol: str, rows: Iterable[Sequence[Any]], now: float, *,
               since: int | None = None) -> Delivery:
        """Take the rows ccxt returned for ``symbol`` at venue time ``now`` (seconds).

        ``since`` (ms) marks a ``fetch_ohlcv`` page fetched from it: every candle from
        ``since`` to its last row is known, so one missing there is a gap, not a delay.
        Without it the rows are an update (``watch_ohlcv``), which proves nothing about
        candles it does not hold. A row is final when a later candle follows it in the
        same rows, or it was taken at or after its end: ``now`` is the venue time the rows
        were taken at (of the response, or of the message); a forming version taken before
        a final one that arrives late does not replace it."""
        series = self._series.get(symbol)
        if series is None:
            raise ValueError(f"feed {self.source!r}: rows for unknown symbol {symbol!r}")
        taken = _ms(now)
        self._advance(now)
        bad: list[Rejected] = []
        batch: dict[int, Sequence[Any]] = {}
        for row in rows:
            at = _open_time(row, self.tf)
            if isinstance(at, BadBar):
                bad.append(Rejected(symbol, None, at.reason, str(at)))
                self._rejected[at.reason] = self._rejected.get(at.reason, 0) + 1
                continue
            batch[at] = row  # a repeat within the rows: the later one stands
        newest = max(batch, default=None)
        for at, row in batch.items():
            if at <= series.done:
                self._repeats += 1
                continue
            final = at != newest or taken >= at + self.tf
            held = series.rows.get(at)
            if final or held is None or not held[1]:  # a late forming version: not news
                series.rows[at] = (row, final)
        if since is not None and newest is not None and since <= max(series.done,
                                                                      series.covered) + self.tf:
            series.covered = max(series.covered, newest)
        return self._collect((symbol,), bad)

    def tick(self, now: float) -> Delivery:
        """Venue time ``now`` (seconds) passed with no rows: the candles that ended with only
        a forming version seen are asked for (``Delivery.backfill``)."""
        self._advance(now)
        return self._collect(self.symbols, [])

    # -- questions ---------------------------------------------------------------------------
    def backfill(self) -> dict[str, int]:
        """Where to fetch from (ms) per symbol, on start, after a restart or a reconnect: the
        candle after the last one handled. Fetching from there misses none and repeats none."""
        return {s: series.done + self.tf for s, series in self._series.items()}

    def resume_point(self) -> dict[str, float]:
        """The last candle handled per symbol (seconds; delivered, or rejected): what to
        persist, and to pass as ``resume`` to a new tracker after a restart. The last
        delivered candle times do as well (a rejected candle after one is fetched and
        rejected again, never delivered)."""
        return {s: series.done / 1000 for s, series in self._series.items()}

    def forming(self, symbols: Iterable[str] | None = None) -> tuple[Bar, ...]:
        """The newest candle seen per symbol (of ``symbols``, in the tracker's order; None:
        all) that is not delivered yet (still forming, or waiting for a final version): a
        latest price for marking, never for acting on."""
        out = []
        series_of = self._series
        chosen = series_of.items() if symbols is None else sorted(
            ((s, series_of[s]) for s in symbols), key=lambda item: self._order[item[0]])
        for s, series in chosen:
            if series.rows:
                at = max(series.rows)
                out.append(_bar(s, at, series.rows[at][0]))
        return tuple(out)

    def health(self, now: float) -> FeedHealth:
        """The feed's staleness at venue time ``now`` (seconds)."""
        self._advance(now)
        limit = self.stale_after * self.tf
        stale = []
        for s, series in self._series.items():
            fresh_since = self._start if series.delivered is None else max(
                self._start, series.delivered + self.tf)
            if self._now - fresh_since >= limit:
                stale.append(s)
        delivered = [series.delivered for series in self._series.values()
                     if series.delivered is not None]
        last = min(delivered) / 1000 if delivered else None
        return FeedHealth(self.source, bool(stale), tuple(stale), last, self._now / 1000)

    def health_change(self, now: float) -> FeedHealth | None:
        """:meth:`health`, only when the set of stale symbols changed since the last time
        it was asked (the feed went stale, recovered, or another symbol went stale)."""
        health = self.health(now)
        symbols = frozenset(health.stale_symbols)
        if symbols == self._stale:
            return None
        self._stale = symbols
        return health

    def counts(self) -> FeedCounts:
        return FeedCounts(self._delivered, dict(self._rejected), self._gaps, self._repeats)

    # -- internals ---------------------------------------------------------------------------
    def _floor(self, ms: int) -> int:
        return ms - ms % self.tf

    def _advance(self, now: float) -> None:
        self._now = max(self._now, _ms(now))  # venue time never goes back

    def _collect(self, symbols: Iterable[str], bad: list[Rejected]) -> Delivery:
        closed: list[Bar] = []
        gaps: list[Gap] = []
        backfill: list[tuple[str, int]] = []
        for s in symbols:
            need = self._drain(s, self._series[s], closed, bad, gaps)
            if need is not None:
                backfill.append((s, need))
        closed.sort(key=lambda b: (b.at, self._order[b.symbol]))
        return Delivery(tuple(closed), tuple(bad), tuple(gaps), tuple(backfill))

    def _drain(self, symbol: str, series: _Series, closed: list[Bar], bad: list[Rejected],
               gaps: list[Gap]) -> int | None:
        """Hand over the symbol's candles that can go, in order; where to fetch from if one
        that has closed cannot (a hole before it, or no final version of it)."""
        tf = self.tf
        rows = series.rows
        newest = max(rows, default=0)
        for at in sorted(rows):
            row, final = rows[at]
            if not final:
                closed_now = self._now >= at + tf or newest > at
                return series.done + tf if closed_now else None
            expected = series.done + tf
            if at != expected and at > series.covered:
                return expected  # a candle may be missing before it: fetch, then decide
            del rows[at]
            if at != expected:
                missing = (at - expected) // tf
                self._gaps += missing
                gaps.append(Gap(symbol, series.done / 1000, at / 1000, missing))
            bar = _bar(symbol, at, row)
            try:
                check_bar(bar, None if series.delivered is None else series.delivered / 1000)
            except BadBar as exc:
                self._rejected[exc.reason] = self._rejected.get(exc.reason, 0) + 1
                bad.append(Rejected(symbol, bar.at, exc.reason, str(exc)))
            else:
                closed.append(bar)
                series.delivered = at
                self._delivered += 1
            series.done = at
        return None


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


def _open_time(row: Sequence[Any], tf: int) -> int | BadBar:
    """A row's candle open time (ms), or why it has none usable."""
    try:
        length = len(row)
    except TypeError:
        return BadBar("malformed_row", f"not a row: {type(row).__name__}")
    if length < 6:
        return BadBar("malformed_row", f"{length} fields, not 6")
    at = row[0]
    if isinstance(at, float) and math.isfinite(at) and at.is_integer():
        at = int(at)
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        return BadBar("bad_timestamp", f"timestamp {at!r:.60}")
    if at % tf:
        return BadBar("bad_timestamp", f"timestamp {at} is not on a {tf} ms boundary")
    return at


def _num(value: Any) -> float:
    """A price or volume as ccxt gave it, as a float when it is a number; anything else
    is passed through for check_bar to name."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return cast(float, value)
    return cast(float, value)


def _bar(symbol: str, at: int, row: Sequence[Any]) -> Bar:
    return Bar(symbol, at / 1000, _num(row[1]), _num(row[2]), _num(row[3]), _num(row[4]),
               _num(row[5]))
