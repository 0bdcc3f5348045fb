"""The cold path of the backtest's candle loader: one replay CSV read, parsed and checked.

:func:`parse_csv` owns the header check, the JSON-parse fast path over a clean body, the
careful row-by-row csv pass that names a bad line, and the check of every candle
(:func:`~actors.market.data.columns_pass`, else :func:`~actors.market.data.check_bar` row by
row) and of the spacing. :mod:`actors.backtest.data` calls it for a file not in its cache.
"""

from __future__ import annotations

import csv
import itertools
import json
import operator
from array import array
from datetime import UTC, datetime
from pathlib import Path

from actors.market.contract import BadBar, Bar
from actors.market.data import check_bar, columns_pass
from actors.market.history import CSV_HEADER, format_ms

__all__ = ["COLUMNS", "DataError", "parse_csv", "when"]

_CHUNK = 1 << 22  # characters of CSV parsed at a time (bounds the parse's memory)
COLUMNS = 6  # at (s), open, high, low, close, volume
_NUMBERS = frozenset((int, float))  # what a clean body's JSON holds (not bool, str, None)


class DataError(ValueError):
    """Candle data that cannot be backtested; the message names the file (and line)."""


def when(bound: float | None) -> str:
    """A window bound (seconds) as ISO 8601 UTC, or "not given"."""
    if bound is None:
        return "not given"
    return datetime.fromtimestamp(bound, UTC).isoformat().replace("+00:00", "Z")


def parse_csv(path: Path, symbol: str) -> tuple[tuple[array[float], ...], float | None]:
    """Read, parse and check ``path``: its six columns (times in seconds) and their
    timeframe (None for one candle); DataError names the file and line."""
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
    return columns, _check(path, symbol, columns, lines)


def _fast_columns(body: str) -> tuple[array[float], ...] | None:
    """The six columns of a clean body, parsed a chunk of lines at a time in C-level
    passes, or None when it is not clean (a blank line, a missing field, a word): the
    careful pass then names the line."""
    columns: tuple[array[float], ...] = tuple(array("d") for _ in range(COLUMNS))
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
        if len(flat) != rows * COLUMNS:
            return None
        columns[0].extend([t / 1000.0 for t in flat[0::COLUMNS]])
        for i in range(1, COLUMNS):
            columns[i].extend(flat[i::COLUMNS])
    return columns


def _careful_columns(path: Path, symbol: str, body: str,
                     lines: array[int]) -> tuple[array[float], ...]:
    """The columns read row by row as the replay's csv reader reads them (blank lines
    skipped, quotes honoured), each row's line number appended to ``lines``; the first
    row that does not parse is a DataError."""
    columns: tuple[array[float], ...] = tuple(array("d") for _ in range(COLUMNS))
    reader = csv.reader(body.splitlines())
    try:
        for row in reader:
            if not row:
                continue
            line = reader.line_num + 1
            where = f"{path} row {len(lines) + 1} (line {line})"  # the slow path only
            if len(row) != COLUMNS:
                raise DataError(f"{where}: {len(row)} fields, not {COLUMNS} "
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
            f"{_where(path, lines, i + 1)}: gap: {symbol} at {when(at[i + 1])} is "
            f"{gaps[i]:g}s after the row before, the candles are {tf:g}s apart: no candle "
            f"from {format_ms(round((at[i] + tf) * 1000))} to "
            f"{format_ms(round((at[i + 1] - tf) * 1000))} ({int(step) - 1} missing)")
    raise DataError(f"{_where(path, lines, i + 1)}: {symbol} at {when(at[i + 1])} is "
                    f"{gaps[i]:g}s after the row before, not a multiple of the candles' "
                    f"{tf:g}s (mixed timeframes)")


def _where(path: Path, lines: array[int], row: int) -> str:
    """``PATH row N (line L)`` of the ``row``-th (from 0) row: ``lines[row]`` is its line
    when the careful pass read it, else ``row + 2`` (no blank line before it)."""
    return f"{path} row {row + 1} (line {lines[row] if lines else row + 2})"
