"""The backtest's candle loader: the replay's CSV layout into compact arrays, with a cache.

:func:`load_steps` reads a directory as :class:`~actors.market.data.CsvReplay` does (one
``SYMBOL.csv`` per symbol, ``BTC_USDT.csv`` is ``BTC/USDT``, the header
:data:`~actors.market.history.CSV_HEADER`, timestamps in ms) and returns a
:class:`HistoricalData`: six ``array('d')`` per symbol, no object per row, and
:meth:`HistoricalData.steps` yielding the bars of one time together, as the replay's
``steps()`` does for clean data. Every candle of a file passes
:func:`~actors.market.data.check_bar`, and a symbol's series has no gap; a bad candle, a
gap, mixed timeframes, a bad header, no CSV or an empty window raise :class:`DataError`
naming the file and line (the parsing and checking of a file is
:mod:`actors.backtest.csv_parse`'s). A checked file is cached beside the data
(``DIR/.botvisor-cache/STEM.<size>.<mtime_ns>.bin``, see docs/backtesting.md, "Data").
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import logging
import os
import struct
import sys
import tempfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from actors.backtest.bar_maker import bar_maker
from actors.backtest.csv_parse import COLUMNS, DataError, parse_csv, when
from actors.backtest.engine import CheckedStep
from actors.market.contract import Bar
from actors.market.history import CSV_HEADER

__all__ = ["CACHE_DIR", "DataError", "HistoricalData", "load_steps"]

log = logging.getLogger(__name__)

CACHE_DIR = ".botvisor-cache"
_MAGIC = b"BVCDL1" + (b"LE" if sys.byteorder == "little" else b"BE")  # native doubles
_HEAD = struct.Struct("<8sQd")  # magic, rows, timeframe (s)
_TAIL = struct.Struct("<I")  # crc32 of the six columns


@dataclass(frozen=True, slots=True)
class _Series:
    """One symbol's checked candles: times in seconds and the five prices, in order."""

    symbol: str
    path: Path
    at: array[float]
    open: array[float]
    high: array[float]
    low: array[float]
    close: array[float]
    volume: array[float]
    timeframe_s: float | None  # None for a series of one candle

    def cut(self, since: float | None, until: float | None) -> _Series:
        """The candles with ``since <= at <= until`` (both bounds inclusive)."""
        lo = 0 if since is None else bisect.bisect_left(self.at, since)
        hi = len(self.at) if until is None else bisect.bisect_right(self.at, until)
        if lo == 0 and hi == len(self.at):
            return self
        return _Series(self.symbol, self.path, self.at[lo:hi], self.open[lo:hi],
                       self.high[lo:hi], self.low[lo:hi], self.close[lo:hi],
                       self.volume[lo:hi], self.timeframe_s)

    def columns(self) -> tuple[array[float], ...]:
        return (self.at, self.open, self.high, self.low, self.close, self.volume)


@dataclass(frozen=True, slots=True)
class HistoricalData:
    """The candles of a backtest, checked, one compact series per symbol.

    ``symbols`` are in file-name order (the order of the bars within a step),
    ``timeframe_s`` the candles' spacing, ``candles`` their count, ``window`` the first and
    last candle time (seconds). ``from_cache`` is true when every file was read from the
    cache, ``cached_files`` how many were; ``warnings`` what the cache could not do.
    Iterating it is :meth:`steps`.
    """

    symbols: tuple[str, ...]
    timeframe_s: float
    candles: int
    window: tuple[float, float]
    from_cache: bool
    cached_files: int
    warnings: tuple[str, ...]
    _series: tuple[_Series, ...] = field(repr=False)

    def __iter__(self) -> Iterator[CheckedStep]:
        return self.steps()

    def steps(self) -> Iterator[CheckedStep]:
        """The bars of each candle time, in time order, symbols in :attr:`symbols` order;
        a bar is made only when its step is. Each step is a
        :class:`~actors.backtest.engine.CheckedStep`: every bar passed check_bar here."""
        series = self._series
        first = min(s.at[0] for s in series)
        tf = self.timeframe_s
        # On a grid of whole seconds every time is exact, so equal step means equal time.
        if tf.is_integer() and all(s.at[0].is_integer() and (s.at[0] - first) % tf == 0
                                   for s in series):
            return _aligned(series, [int((s.at[0] - first) // tf) for s in series])
        return _merged(series)


def _aligned(series: tuple[_Series, ...], offsets: list[int]) -> Iterator[CheckedStep]:
    """Steps of series on one grid: step ``k`` holds the ``k - offset``-th candle of each
    series that has one. Between two ends of series the set of series is fixed."""
    ends = sorted({0, *offsets, *(o + len(s.at) for o, s in zip(offsets, series,
                                                                strict=True))})
    for start, stop in itertools.pairwise(ends):
        # Per live series, its bars of the span, made one at a time by a C-level map as
        # each step takes them: no index arithmetic and no Python loop per bar.
        rows = [_bars(s, start - o, stop - o) for s, o in zip(series, offsets, strict=True)
                if o <= start and stop <= o + len(s.at)]
        if not rows:
            continue
        if len(rows) == 1:
            yield from map(_one, rows[0])
            continue
        for _ in range(start, stop):
            yield CheckedStep(map(next, rows))


def _one(bar: Bar) -> CheckedStep:
    return CheckedStep((bar,))


def _bars(s: _Series, lo: int, hi: int) -> Iterator[Bar]:
    """The bars of rows ``lo`` to ``hi`` (excluded) of ``s``, made as they are taken."""
    return map(_make_bar, itertools.repeat(s.symbol, hi - lo), s.at[lo:hi], s.open[lo:hi],
               s.high[lo:hi], s.low[lo:hi], s.close[lo:hi], s.volume[lo:hi])


_make_bar = bar_maker()


def _merged(series: tuple[_Series, ...]) -> Iterator[CheckedStep]:
    """Steps of series that are not on one grid: every distinct time is a step."""
    keyed = [zip(s.at, [order] * len(s.at), range(len(s.at)), strict=True)
             for order, s in enumerate(series)]
    pending = CheckedStep()
    current: float | None = None
    for at, order, j in heapq.merge(*keyed):
        if current is not None and at != current:
            yield pending
            pending = CheckedStep()
        current = at
        s = series[order]
        pending.append(_make_bar(s.symbol, at, s.open[j], s.high[j], s.low[j], s.close[j],
                                   s.volume[j]))
    if pending:
        yield pending


def load_steps(directory: str | Path, since: float | None = None,
               until: float | None = None) -> HistoricalData:
    """The checked candles of ``directory`` with ``since <= time <= until`` (seconds since
    the epoch, both inclusive; None is unbounded). Raises :class:`DataError`."""
    root = Path(directory)
    try:
        if not root.is_dir():
            raise DataError(f"{root} is not a folder")
        files = sorted(root.glob("*.csv"))
    except OSError as exc:
        raise DataError(f"{root}: cannot be read: {exc.strerror or exc}") from None
    if not files:
        raise DataError(f"{root} has no *.csv file (SYMBOL.csv, as download-data writes "
                        f"them, header {','.join(CSV_HEADER)})")
    cache = _Cache(root / CACHE_DIR)
    loaded = [cache.load(path, path.stem.replace("_", "/")) for path in files]
    timeframe = _one_timeframe(loaded)
    if since is not None and until is not None and until < since:
        raise DataError(f"{root}: the window ends (--until {when(until)}) before it "
                        f"starts (--from {when(since)})")
    kept = tuple(c for c in (s.cut(since, until) for s in loaded) if len(c.at))
    if not kept:
        first = min(s.at[0] for s in loaded)
        last = max(s.at[-1] for s in loaded)
        raise DataError(
            f"{root} has no candle in the window (--from {when(since)}, --until "
            f"{when(until)}); its candles run from {when(first)} to {when(last)}")
    return HistoricalData(
        symbols=tuple(s.symbol for s in kept), timeframe_s=timeframe,
        candles=sum(len(s.at) for s in kept),
        window=(min(s.at[0] for s in kept), max(s.at[-1] for s in kept)),
        from_cache=cache.hits == len(files), cached_files=cache.hits,
        warnings=tuple(cache.warnings), _series=kept)


def _one_timeframe(loaded: list[_Series]) -> float:
    """The timeframe all series share; DataError names two files that differ."""
    known = [s for s in loaded if s.timeframe_s is not None]
    if not known:
        raise DataError(f"{loaded[0].path}: cannot infer the timeframe: no file has two "
                        "candles")
    base = known[0]
    for other in known[1:]:
        if other.timeframe_s != base.timeframe_s:
            raise DataError(f"{other.path}: candles every {other.timeframe_s:g}s, but "
                            f"{base.path.name} has them every {base.timeframe_s:g}s (mixed "
                            "timeframes)")
    assert base.timeframe_s is not None
    return base.timeframe_s


# ---------------------------------------------------------------------------------------
# The cache


class _Cache:
    """The checked columns of each CSV, keyed by its size and mtime, beside the data.

    A file is ``STEM.<size>.<mtime_ns>.bin``: a header (magic, rows, timeframe), the six
    columns as the machine's doubles (its byte order is in the magic), a crc32 of them.
    One that does not check is ignored (warned) and replaced; other entries of the same
    stem are stale and removed. A cache that cannot be written is skipped, with one
    warning per load.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self.warnings: list[str] = []
        self._writable = True

    def load(self, path: Path, symbol: str) -> _Series:
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        entry = self.directory / f"{path.stem}.{stat.st_size}.{stat.st_mtime_ns}.bin"
        series = self._read(entry, path, symbol)
        if series is not None:
            self.hits += 1
            return series
        (at, op, hi, lo, cl, vo), tf = parse_csv(path, symbol)
        series = _Series(symbol, path, at, op, hi, lo, cl, vo, tf)
        self._write(entry, series)
        return series

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        log.warning("%s", text)

    def _read(self, entry: Path, path: Path, symbol: str) -> _Series | None:
        try:
            handle = entry.open("rb")
        except (FileNotFoundError, NotADirectoryError):  # no entry (or no cache) yet
            return None
        except OSError as exc:
            self._warn(f"{entry}: the cache cannot be read ({exc.strerror or exc}); "
                       f"{path.name} is parsed")
            return None
        with handle:
            try:
                magic, rows, tf = _HEAD.unpack(handle.read(_HEAD.size))
                if magic != _MAGIC or os.fstat(handle.fileno()).st_size != \
                        _HEAD.size + rows * 8 * COLUMNS + _TAIL.size:
                    raise ValueError("not a cache file of this version")
                columns = []
                crc = 0
                for _ in range(COLUMNS):
                    column = array("d")
                    column.fromfile(handle, rows)
                    crc = zlib.crc32(column, crc)
                    columns.append(column)
                (stored,) = _TAIL.unpack(handle.read(_TAIL.size))
                if stored != crc:
                    raise ValueError("its checksum does not match")
            except (ValueError, EOFError, struct.error, OSError) as exc:
                self._warn(f"{entry}: damaged cache file ignored ({exc}); {path.name} is "
                           "parsed again")
                return None
        at, op, hi, lo, cl, vo = columns
        return _Series(symbol, path, at, op, hi, lo, cl, vo, tf if tf > 0 else None)

    def _write(self, entry: Path, series: _Series) -> None:
        if not self._writable:
            return
        tmp: str | None = None
        try:
            self.directory.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{entry.name}.")
            with os.fdopen(fd, "wb") as handle:
                handle.write(_HEAD.pack(_MAGIC, len(series.at), series.timeframe_s or 0.0))
                crc = 0
                for column in series.columns():
                    column.tofile(handle)
                    crc = zlib.crc32(column, crc)
                handle.write(_TAIL.pack(crc))
            os.replace(tmp, entry)
            tmp = None
            for stale in self.directory.glob(f"{series.path.stem}.*.bin"):
                if stale != entry and stale.name.count(".") == entry.name.count("."):
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            self._writable = False
            self._warn(f"{self.directory}: the candle cache cannot be written "
                       f"({exc.strerror or exc}); loading without it")
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
