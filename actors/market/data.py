"""Market data sources and validation: a built-in synthetic market and a CSV replay feed.

Two :class:`~actors.market.contract.MarketSource` implementations: :class:`SyntheticMarket`
(no network; several symbols, deterministic for a seed, trends, ranges, volatility bursts
and a market-wide crash) and :class:`CsvReplay` (OHLCV files in ccxt's ``fetch_ohlcv``
layout, one per symbol, e.g. ``BTC_USDT.csv``). :func:`check_bar` rejects bad data
(missing or non-finite fields, non-positive prices or prices above :data:`MAX_PRICE`, an
inconsistent bar, negative volume, timestamps that go backwards or repeat).
"""

from __future__ import annotations

import csv
import math
import operator
import random
import zlib
from array import array
from collections.abc import Iterator, Sequence
from itertools import repeat
from pathlib import Path

from actors.market.contract import BadBar, Bar

__all__ = [
    "MAX_PRICE",
    "CsvReplay",
    "SyntheticMarket",
    "check_bar",
    "check_csv_dir",
    "columns_pass",
    "parse_csv_row",
]

DEFAULT_SYMBOLS = {
    "BTC/USDT": 30000.0, "ETH/USDT": 2000.0, "SOL/USDT": 50.0,
    "ADA/USDT": 0.5, "XRP/USDT": 0.6, "DOGE/USDT": 0.08,
}


_INF = math.inf
# No market quotes a price near this; a strategy's running sums of squares of prices far
# beyond it overflow a float. A bar above it is bad data, named and not acted on.
MAX_PRICE = 1e12


def check_bar(bar: Bar, last_at: float | None) -> None:
    """Raise BadBar if ``bar`` is unusable, given the previous bar time of its symbol."""
    # The common case first, in one expression (every bar passes here): float fields,
    # finite, positive prices in order, time moving forward. NaN fails every comparison,
    # so anything unusual takes the detailed checks below, which say what is wrong.
    o, h, lo, c, v, at = bar.open, bar.high, bar.low, bar.close, bar.volume, bar.at
    if (type(o) is float and type(h) is float and type(lo) is float and type(c) is float
            and type(v) is float and type(at) is float
            and 0.0 < lo <= o <= h <= MAX_PRICE and lo <= c <= h and 0.0 <= v < _INF
            and -_INF < at < _INF and (last_at is None or at > last_at)):
        return
    values = {"open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
              "volume": bar.volume, "at": bar.at}
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise BadBar("not_a_number", f"{bar.symbol} {name}={_short(value)}")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise BadBar("not_finite", f"{bar.symbol} {name}={_short(value)}")
    for name in ("open", "high", "low", "close"):
        if values[name] <= 0:
            raise BadBar("non_positive_price", f"{bar.symbol} {name}={values[name]!r}")
        if values[name] > MAX_PRICE:
            raise BadBar("price_too_large", f"{bar.symbol} {name}={values[name]!r} > "
                                            f"{MAX_PRICE:g}")
    if bar.volume < 0:
        raise BadBar("negative_volume", f"{bar.symbol} volume={bar.volume!r}")
    if bar.high < bar.low:
        raise BadBar("high_below_low", f"{bar.symbol} high={bar.high} low={bar.low}")
    if not bar.low <= bar.close <= bar.high or not bar.low <= bar.open <= bar.high:
        raise BadBar("outside_range", f"{bar.symbol} o/c outside [{bar.low}, {bar.high}]")
    if last_at is not None:
        if bar.at == last_at:
            raise BadBar("duplicate_timestamp", f"{bar.symbol} at={bar.at}")
        if bar.at < last_at:
            raise BadBar("out_of_order", f"{bar.symbol} at={bar.at} after {last_at}")


def columns_pass(columns: Sequence[array[float]]) -> bool:
    """True when every row of one symbol's six ``columns`` (at, open, high, low, close,
    volume) passes :func:`check_bar` (each row against the time of the row before; the
    first against none): the same rule, as a few C-level passes over whole columns
    instead of a call per bar. False means some row may not: :func:`check_bar` on each
    row then finds it and says why. Columns that are not six ``array('d')`` of one length
    are False."""
    if len(columns) != 6:  # the six fields of a bar
        return False
    at, open_, high, low, close, volume = columns
    n = len(at)
    if not all(type(c) is array and c.typecode == "d" and len(c) == n for c in columns):
        return False
    if n == 0:
        return True
    le = operator.le
    # Every price is in one of these comparisons and NaN fails them all, so the min and
    # max after them see no NaN; the volume and the times get comparisons of their own.
    return (all(map(le, low, open_)) and all(map(le, open_, high))
            and all(map(le, low, close)) and all(map(le, close, high))
            and min(low) > 0.0 and max(high) <= MAX_PRICE
            and all(map(le, repeat(0.0, n), volume)) and max(volume) < _INF
            and all(map(operator.lt, at, at[1:])) and at[0] > -_INF and at[-1] < _INF)


class SyntheticMarket:
    """Owns the generator state of the built-in market; yields one bar per symbol per step."""

    REGIMES = ("trend_up", "range", "burst", "trend_down", "range", "trend_up")

    def __init__(
        self,
        symbols: dict[str, float] | None = None,
        *,
        seed: int = 7,
        bar_seconds: float = 60.0,
        start: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z
        regime_bars: int = 120,
        crash_at_bar: int | None = 600,
        crash_bars: int = 12,
        crash_depth: float = 0.25,
    ) -> None:
        self.symbols = dict(symbols or DEFAULT_SYMBOLS)
        self.bar_seconds = bar_seconds
        self.start = start
        self.regime_bars = regime_bars
        self.crash_at_bar = crash_at_bar
        self.crash_bars = crash_bars
        self.crash_step = (1 - crash_depth) ** (1 / crash_bars) - 1
        self.index = 0
        self._rng = {s: random.Random(seed * 1_000_003 + zlib.crc32(s.encode()))
                     for s in self.symbols}
        self._price = dict(self.symbols)
        self._anchor = dict(self.symbols)
        self._offset = {s: zlib.crc32(s.encode()) % len(self.REGIMES) for s in self.symbols}

    def regime(self, symbol: str, index: int | None = None) -> str:
        i = self.index if index is None else index
        if self.crash_at_bar is not None and self.crash_at_bar <= i < self.crash_at_bar + \
                self.crash_bars:
            return "crash"
        return self.REGIMES[(i // self.regime_bars + self._offset[symbol]) % len(self.REGIMES)]

    def step(self) -> list[Bar]:
        at = self.start + self.index * self.bar_seconds
        bars = [self._bar(symbol, at) for symbol in self.symbols]
        self.index += 1
        return bars

    def steps(self) -> Iterator[list[Bar | BadBar]]:
        """The :class:`~actors.market.contract.MarketSource` view: one step after another."""
        while True:
            yield list(self.step())

    def _bar(self, symbol: str, at: float) -> Bar:
        rng = self._rng[symbol]
        regime = self.regime(symbol)
        price = self._price[symbol]
        if regime == "trend_up":
            drift, vol = 0.0012, 0.003
        elif regime == "trend_down":
            drift, vol = -0.0010, 0.003
        elif regime == "burst":
            drift, vol = 0.0, 0.02
        elif regime == "crash":
            drift, vol = self.crash_step, 0.01
        else:  # range: pulled back to its anchor
            drift, vol = 0.15 * math.log(self._anchor[symbol] / price), 0.004
        if regime != "range":
            self._anchor[symbol] = price
        close = price * math.exp(drift + rng.gauss(0, vol))
        wiggle = abs(rng.gauss(0, vol / 2))
        high = max(price, close) * (1 + wiggle)
        low = min(price, close) * (1 - wiggle)
        base_volume = 2_000_000 / math.sqrt(1 + self.symbols[symbol] / 1000)
        volume = base_volume * rng.uniform(0.5, 1.5) * (3 if regime in ("burst", "crash") else 1)
        self._price[symbol] = close
        return Bar(symbol, at, price, high, low, close, volume)


def _short(value: object) -> str:
    """``value`` for a rejection's detail: its repr, cut to 60 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def check_csv_dir(csv_dir: str | None) -> None:
    """Refuse (ValueError) a CSV replay directory that is unset, missing or has no
    ``*.csv`` file: the market could not start with it."""
    if not csv_dir or not csv_dir.strip():
        raise ValueError("source 'csv' needs csv_dir (a folder of SYMBOL.csv files)")
    directory = Path(csv_dir)
    try:
        if not directory.is_dir():
            raise ValueError(f"csv_dir {csv_dir!r} is not a directory")
        if not any(directory.glob("*.csv")):
            raise ValueError(f"csv_dir {csv_dir!r} has no *.csv files")
    except OSError as exc:
        raise ValueError(f"csv_dir {csv_dir!r} cannot be read: {exc.strerror or exc}"
                         ) from None


def parse_csv_row(symbol: str, row: dict[str, str]) -> Bar:
    """A Bar from one CSV row; missing or non-numeric fields raise BadBar."""
    values = {}
    for name in ("timestamp", "open", "high", "low", "close", "volume"):
        raw = row.get(name)
        if not isinstance(raw, str) or raw.strip() == "":
            raise BadBar("missing_field", f"{symbol} {name}")
        try:
            values[name] = float(raw)
        except ValueError:
            raise BadBar("not_a_number", f"{symbol} {name}={_short(raw)}") from None
    return Bar(symbol, values["timestamp"] / 1000.0, values["open"], values["high"],
               values["low"], values["close"], values["volume"])


class CsvReplay:
    """Owns open CSV readers, one per symbol file; yields bars in time order across files.

    A row that cannot be parsed is yielded as the BadBar it raises, so the caller counts it;
    so is one the csv module cannot read (a field over its size limit, say). Bytes that
    are not UTF-8 read as U+FFFD, so the row they are in is refused as not a number.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        files = sorted(self.directory.glob("*.csv"))
        if not files:
            raise FileNotFoundError(f"no *.csv files in {self.directory}")
        self.files = {f.stem.replace("_", "/"): f for f in files}

    def __iter__(self) -> Iterator[Bar | BadBar]:
        readers = {}
        handles = []
        try:
            for symbol, path in self.files.items():
                handle = open(path, newline="", encoding="utf-8",  # noqa: SIM115
                              errors="replace")
                handles.append(handle)
                readers[symbol] = csv.DictReader(handle)
            heads: dict[str, Bar | BadBar | None] = {s: self._next(s, r)
                                                     for s, r in readers.items()}
            while True:
                live = {s: h for s, h in heads.items() if h is not None}
                if not live:
                    return
                symbol = min(live, key=lambda s: _sort_key(live[s]))
                yield live[symbol]
                heads[symbol] = self._next(symbol, readers[symbol])
        finally:
            for handle in handles:
                handle.close()

    def steps(self) -> Iterator[list[Bar | BadBar]]:
        """The replay grouped into steps: all bars sharing a timestamp (bad rows alone)."""
        pending: list[Bar | BadBar] = []
        at: float | None = None
        for item in self:
            if isinstance(item, BadBar):
                yield [item]
                continue
            if at is not None and item.at != at and pending:
                yield pending
                pending = []
            at = item.at
            pending.append(item)
        if pending:
            yield pending

    @staticmethod
    def _next(symbol: str, reader: csv.DictReader[str]) -> Bar | BadBar | None:
        try:
            row = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            return BadBar("unreadable_row", f"{symbol} line {reader.line_num}: {exc}")
        try:
            return parse_csv_row(symbol, row)
        except BadBar as exc:
            return exc


def _sort_key(item: Bar | BadBar | None) -> float:
    return item.at if isinstance(item, Bar) else -math.inf
