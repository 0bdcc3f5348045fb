"""The backtest's candle loader: the replay's CSV layout into compact arrays, with a cache.

:func:`load_steps` reads a directory as :class:`~actors.market.data.CsvReplay` does (one
``SYMBOL.csv`` per symbol, ``BTC_USDT.csv`` is ``BTC/USDT``, the header
:data:`~actors.market.history.CSV_HEADER`, timestamps in ms) and returns a
:class:`HistoricalData`: six ``array('d')`` per symbol, no object per row, and
:meth:`HistoricalData.steps` yielding the bars of one time together, as the replay's
``steps()`` does for clean data. Every candle of a file passes
:func:`~actors.market.data.check_bar`, and a symbol's series has no gap; a bad candle, a
gap, mixed timeframes, a bad header, no CSV or an empty window raise :class:`DataError`
naming the file and line. A checked file is cached beside the data
(``DIR/.botvisor-cache/STEM.<size>.<mtime_ns>.bin``, see docs/backtesting.md, "Data").
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import dataclasses
import heapq
import itertools
import json
import logging
import operator
import os
import struct
import sys
import tempfile
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from actors.backtest.engine import CheckedStep
from actors.market.contract import BadBar, Bar
from actors.market.data import check_bar, columns_pass
from actors.market.history import CSV_HEADER, format_ms

__all__ = ["CACHE_DIR", "DataError", "HistoricalData", "load_steps"]

log = logging.getLogger(__name__)

CACHE_DIR = ".botvisor-cache"
_MAGIC = b"BVCDL1" + (b"LE" if sys.byteorder == "little" else b"BE")  # native doubles
_CHUNK = 1 << 22  # characters of CSV parsed at a time (bounds the parse's memory)
_HEAD = struct.Struct("<8sQd")  # magic, rows, timeframe (s)
_TAIL = struct.Struct("<I")  # crc32 of the six columns
_COLUMNS = 6  # at (s), open, high, low, close, volume
_NUMBERS = frozenset((int, float))  # what a clean body's JSON holds (not bool, str, None)


class DataError(ValueError):
    """Candle data that cannot be backtested; the message names the file (and line)."""


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


def _bar_maker() -> Callable[[str, float, float, float, float, float, float], Bar]:
    """``Bar(...)`` at half the cost, for the bars of a run (a million and more): a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``; this sets the
    same slots through their descriptors, as that does, without the lookups around it. It
    is used only while Bar is what it was written for (its fields in this order, nothing
    run after ``__init__``); otherwise it is Bar itself."""
    names = ("symbol", "at", "open", "high", "low", "close", "volume")
    if (tuple(f.name for f in dataclasses.fields(Bar)) != names
            or hasattr(Bar, "__post_init__") or not hasattr(Bar, "__slots__")):
        return Bar
    new = object.__new__
    sym, at, op, hi, lo, cl, vo = (getattr(Bar, name).__set__ for name in names)

    def make(symbol: str, t: float, o: float, h: float, low: float, c: float,  # noqa: PLR0917  (Bar's fields)
             v: float) -> Bar:
        bar = new(Bar)
        sym(bar, symbol)
        at(bar, t)
        op(bar, o)
        hi(bar, h)
        lo(bar, low)
        cl(bar, c)
        vo(bar, v)
        return bar

    return make


_make_bar = _bar_maker()


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
        pending.append(Bar(s.symbol, at, s.open[j], s.high[j], s.low[j], s.close[j],
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
        raise DataError(f"{root}: the window ends (--until {_when(until)}) before it "
                        f"starts (--from {_when(since)})")
    kept = tuple(c for c in (s.cut(since, until) for s in loaded) if len(c.at))
    if not kept:
        first = min(s.at[0] for s in loaded)
        last = max(s.at[-1] for s in loaded)
        raise DataError(
            f"{root} has no candle in the window (--from {_when(since)}, --until "
            f"{_when(until)}); its candles run from {_when(first)} to {_when(last)}")
    return HistoricalData(
        symbols=tuple(s.symbol for s in kept), timeframe_s=timeframe,
        candles=sum(len(s.at) for s in kept),
        window=(min(s.at[0] for s in kept), max(s.at[-1] for s in kept)),
        from_cache=cache.hits == len(files), cached_files=cache.hits,
        warnings=tuple(cache.warnings), _series=kept)


def _when(bound: float | None) -> str:
    """A window bound (seconds) as ISO 8601 UTC, or "not given"."""
    if bound is None:
        return "not given"
    return datetime.fromtimestamp(bound, UTC).isoformat().replace("+00:00", "Z")


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
# Parsing and checking one file


def _parse(path: Path, symbol: str) -> _Series:
    """Read, parse and check ``path``; DataError names the file and line."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    head, _, body = text.partition("\n")
    if tuple(h.strip() for h in head.split(",")) != CSV_HEADER:
        raise DataError(f"{path} line 1: its header is {head.strip()[:80]!r}, not "
                        f"{','.join(CSV_HEADER)}")
    lines: array[int] = array("q")  # the line of each row, when not simply row + 2
    columns = _fast_columns(body)
    if columns is None:
        columns = _careful_columns(path, symbol, body, lines)
    at, op, hi, lo, cl, vo = columns
    tf = _check(path, symbol, columns, lines)
    return _Series(symbol, path, at, op, hi, lo, cl, vo, tf)


def _fast_columns(body: str) -> tuple[array[float], ...] | None:
    """The six columns of a clean body, parsed a chunk of lines at a time in C-level
    passes, or None when it is not clean (a blank line, a missing field, a word): the
    careful pass then names the line."""
    columns: tuple[array[float], ...] = tuple(array("d") for _ in range(_COLUMNS))
    body = body.rstrip()
    start = 0
    while start < len(body):
        end = body.find("\n", start + _CHUNK)
        end = len(body) if end < 0 else end
        chunk = body[start:end]
        start = end + 1
        rows = chunk.count("\n") + 1
        # The chunk as one JSON array of numbers: C parses it with float()'s rounding. A
        # number JSON does not take (nan, +1, .5, 1_0), a blank line or a word fails here
        # or in the type check; so does an int no double holds (array() overflows).
        try:
            values = json.loads("[" + chunk.replace("\n", ",") + "]")
            if not set(map(type, values)) <= _NUMBERS:
                return None
            flat = array("d", values)
        except (ValueError, OverflowError):
            return None
        if len(flat) != rows * _COLUMNS:
            return None
        columns[0].extend([t / 1000.0 for t in flat[0::_COLUMNS]])
        for i in range(1, _COLUMNS):
            columns[i].extend(flat[i::_COLUMNS])
    return columns


def _careful_columns(path: Path, symbol: str, body: str,
                     lines: array[int]) -> tuple[array[float], ...]:
    """The columns read row by row as the replay's csv reader reads them (blank lines
    skipped, quotes honoured), each row's line number appended to ``lines``; the first
    row that does not parse is a DataError."""
    columns: tuple[array[float], ...] = tuple(array("d") for _ in range(_COLUMNS))
    reader = csv.reader(body.splitlines())
    try:
        for row in reader:
            if not row:
                continue
            line = reader.line_num + 1
            where = f"{path} row {len(lines) + 1} (line {line})"  # the slow path only
            if len(row) != _COLUMNS:
                raise DataError(f"{where}: {len(row)} fields, not {_COLUMNS} "
                                f"({','.join(CSV_HEADER)})")
            for i, (name, raw) in enumerate(zip(CSV_HEADER, row, strict=True)):
                if raw.strip() == "":
                    raise DataError(f"{where}: missing_field: {symbol} {name}")
                try:
                    value = float(raw)
                except ValueError:
                    raise DataError(f"{where}: not_a_number: {symbol} "
                                    f"{name}={raw[:40]!r}") from None
                columns[i].append(value / 1000.0 if i == 0 else value)
            lines.append(line)
    except csv.Error as exc:
        raise DataError(f"{path} row {len(lines) + 1} (line {reader.line_num + 1}): "
                        f"unreadable_row: {exc}") from None
    return columns


def _check(path: Path, symbol: str, columns: tuple[array[float], ...],
           lines: array[int]) -> float | None:
    """Every candle through check_bar, then the spacing: the series' timeframe (None for
    one candle). A rejected candle or a gap is a DataError naming the line (``lines[i]``
    of row ``i``, or ``i + 2`` when ``lines`` is empty)."""
    at, op, hi, lo, cl, vo = columns
    if not columns_pass(columns):  # some row may be bad: check_bar finds it
        last: float | None = None
        for row, bar in enumerate(map(Bar, itertools.repeat(symbol), at, op, hi, lo, cl,
                                      vo)):
            try:
                check_bar(bar, last)
            except BadBar as exc:
                raise DataError(f"{_where(path, lines, row)}: {exc}") from None
            last = bar.at
    if len(at) < 2:
        return None
    gaps = array("d", map(operator.sub, at[1:], at[:-1]))
    tf: float = min(gaps)
    if max(gaps) == tf:
        return tf
    i = next(i for i, g in enumerate(gaps) if g != tf)
    step = gaps[i] / tf
    if step == int(step):
        raise DataError(
            f"{_where(path, lines, i + 1)}: gap: {symbol} at {_when(at[i + 1])} is "
            f"{gaps[i]:g}s after the row before, the candles are {tf:g}s apart: no candle "
            f"from {format_ms(round((at[i] + tf) * 1000))} to "
            f"{format_ms(round((at[i + 1] - tf) * 1000))} ({int(step) - 1} missing)")
    raise DataError(f"{_where(path, lines, i + 1)}: {symbol} at {_when(at[i + 1])} is "
                    f"{gaps[i]:g}s after the row before, not a multiple of the candles' "
                    f"{tf:g}s (mixed timeframes)")


def _where(path: Path, lines: array[int], row: int) -> str:
    """``PATH row N (line L)`` of the ``row``-th (from 0) row: ``lines[row]`` is its line
    when the careful pass read it, else ``row + 2`` (no blank line before it)."""
    return f"{path} row {row + 1} (line {lines[row] if lines else row + 2})"


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
        series = _parse(path, symbol)
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
                        _HEAD.size + rows * 8 * _COLUMNS + _TAIL.size:
                    raise ValueError("not a cache file of this version")
                columns = []
                crc = 0
                for _ in range(_COLUMNS):
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
