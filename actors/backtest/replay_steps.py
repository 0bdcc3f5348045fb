"""The candles of a backtest, read with the CSV replay's own reader and rules.

:func:`load_steps` checks the folder (``SYMBOL.csv`` files in ccxt's ``fetch_ohlcv``
layout, as :class:`~actors.market.data.CsvReplay` reads them) once, row by row, with the
replay's parser and bad-bar rules (:func:`~actors.market.data.parse_csv_row`,
:func:`~actors.market.data.check_bar`), and refuses a bad candle or a gap (a missing
timeframe inside a symbol's series) with a :class:`DataError` naming the file and the row;
:meth:`ReplaySteps.steps` then replays the window with :meth:`CsvReplay.steps`. No copy of
either rule.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from actors.market.contract import BadBar, Bar
from actors.market.data import CsvReplay, check_bar, parse_csv_row

__all__ = ["DataError", "ReplaySteps", "load_steps"]


class DataError(ValueError):
    """The data cannot be backtested: the message names the file (and row) at fault."""


@dataclass(frozen=True, slots=True)
class ReplaySteps:
    """A checked folder of candles and the window to replay: its ``symbols``, the
    candles' length ``timeframe_s``, the ``candles`` in the window and its ``window``
    (first and last candle time, seconds)."""

    directory: Path
    symbols: tuple[str, ...]
    timeframe_s: float
    candles: int
    window: tuple[float, float]

    def steps(self) -> Iterator[list[Bar]]:
        """The candles of each time in the window, in time order."""
        first, last = self.window
        for step in CsvReplay(self.directory).steps():
            at = step[0].at if isinstance(step[0], Bar) else None
            if at is None or at < first:
                continue
            if at > last:
                return
            yield [b for b in step if isinstance(b, Bar)]


def load_steps(directory: str | Path, since: float | None,
               until: float | None) -> ReplaySteps:
    """Check the folder ``directory`` and the window from ``since`` to ``until`` (seconds,
    both inclusive; None: from the first candle, to the last); :class:`DataError` names
    what is wrong."""
    folder = Path(directory)
    if not folder.is_dir():
        raise DataError(f"--data {str(folder)!r} is not a folder")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"--data {str(folder)!r} has no *.csv file (SYMBOL.csv, as "
                        "download-data writes them)")
    timeframe: float | None = None
    first = last = None
    candles = 0
    symbols = []
    for path in files:
        symbol = path.stem.replace("_", "/")
        symbols.append(symbol)
        frame, count, start, end = _check_file(path, symbol, since, until)
        if frame is not None:
            if timeframe is not None and frame != timeframe:
                raise DataError(f"{path}: candles every {frame:g}s, but other files have "
                                f"them every {timeframe:g}s")
            timeframe = frame
        candles += count
        if start is not None and end is not None:
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
    if first is None or last is None:
        raise DataError(f"--data {str(folder)!r} has no candle in the window (--from "
                        f"{_when(since)}, --until {_when(until)})")
    if timeframe is None:
        raise DataError(f"--data {str(folder)!r}: one candle per file gives no timeframe")
    return ReplaySteps(folder, tuple(symbols), timeframe, candles, (first, last))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "not given"
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _check_file(path: Path, symbol: str, since: float | None, until: float | None
                ) -> tuple[float | None, int, float | None, float | None]:
    """One file's timeframe, and its candle count, first and last time in the window."""
    frame: float | None = None
    count = 0
    start = end = None
    previous: float | None = None
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        row = 0
        try:
            for fields in reader:
                row += 1
                bar = parse_csv_row(symbol, fields)
                check_bar(bar, previous)
                if previous is not None:
                    step = bar.at - previous
                    if frame is None:
                        frame = step
                    elif step != frame:
                        raise BadBar("gap", f"{symbol} at={bar.at:g} is {step:g}s after the "
                                            f"row before; the candles are {frame:g}s apart")
                previous = bar.at
                if (since is None or bar.at >= since) and (until is None or bar.at <= until):
                    count += 1
                    start = bar.at if start is None else start
                    end = bar.at
        except BadBar as bad:
            raise DataError(f"{path} row {row} (line {reader.line_num}): {bad}") from None
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num}: {exc}") from None
    return frame, count, start, end
