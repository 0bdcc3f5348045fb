"""The pure parts of downloading candle history: times, the resume point, the paging plan,
and what of a fetched page is written and what is reported.

No network and no clock here: the caller passes ``now`` and the venue's pages. A
:class:`Sorter` keeps one symbol's position (the next open time expected, the last bar
written) and sorts each page: a candle before the position is one already had (skipped
silently, so a run never writes a row twice); one at or after ``until``, or still forming
at ``now``, ends the download; a missing stretch is reported as a gap; a candle the
bad-bar rules (:func:`~actors.market.data.check_bar`) refuse is reported, not written.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.common.when import parse_when
from actors.market.contract import BadBar, Bar
from actors.market.data import check_bar

__all__ = [
    "CSV_HEADER",
    "Page",
    "Sorter",
    "csv_name",
    "format_ms",
    "format_row",
    "last_timestamp",
    "parse_time",
    "timeframe_ms",
]

CSV_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
          "M": 2_592_000_000, "y": 31_536_000_000}
_TAIL = 4096  # bytes read from a CSV's end to find its last row


def timeframe_ms(timeframe: str) -> int:
    """The length of ``timeframe`` ("1m", "4h", "1d") in ms; ValueError names a bad one."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhdwMy])", timeframe)
    if match is None:
        raise ValueError(f"timeframe {timeframe!r} is not a number and a unit "
                         "(s, m, h, d, w, M, y), e.g. 1m, 4h, 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str, name: str) -> int:
    """``text`` as ms since the epoch: a number (ms) or an ISO 8601 date or time (UTC
    unless it says otherwise), read by :func:`actors.common.when.parse_when`; ValueError
    names the option ``name``."""
    return round(parse_when(text, name, numbers="ms") * 1000)


def format_ms(ms: int) -> str:
    """``ms`` since the epoch as a short UTC time (2026-01-01T00:00Z)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def csv_name(symbol: str) -> str:
    """The replay's file name of ``symbol``: BTC/USDT -> BTC_USDT.csv."""
    return symbol.replace("/", "_") + ".csv"


def last_timestamp(path: Path) -> int | None:
    """The timestamp (ms) of the last row of the CSV at ``path``, or None if it has no
    rows or does not exist. ValueError names the file when its header or last row is not
    the replay's layout."""
    try:
        with path.open("rb") as handle:
            head = handle.readline().decode("utf-8", "replace").strip()
            size = handle.seek(0, io.SEEK_END)
            handle.seek(max(0, size - _TAIL))
            tail = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    if head == "" and size == 0:
        return None
    if tuple(h.strip() for h in head.split(",")) != CSV_HEADER:
        raise ValueError(f"{path}: its header is {head!r}, not {','.join(CSV_HEADER)}")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines or lines[-1].strip() == head:
        return None
    row = next(csv.reader([lines[-1]]))
    try:
        return int(float(row[0]))
    except (ValueError, IndexError):
        raise ValueError(f"{path}: its last row {lines[-1][:60]!r} has no timestamp"
                         ) from None


@dataclass(frozen=True, slots=True)
class Page:
    """What one fetched page of a symbol came to: rows to write (timestamp ms, o, h, l, c,
    v), reports (gaps, bad candles), and whether the download of the symbol is done."""

    rows: tuple[tuple[int, float, float, float, float, float], ...]
    reports: tuple[str, ...]
    done: bool


@dataclass
class Sorter:
    """One symbol's download position: sorts each fetched page (see the module doc).

    ``expected`` is the open time of the next candle wanted, ``last_at`` the time (s) of
    the last bar written (for the bad-bar rules' order check), ``until`` the end (ms,
    exclusive), ``tf`` the timeframe in ms.
    """

    symbol: str
    expected: int
    until: int
    tf: int
    last_at: float | None = None
    written: int = 0
    gaps: int = 0
    bad: int = 0
    reports: list[str] = field(default_factory=list)

    @classmethod
    def resuming(cls, symbol: str, since: int, until: int, tf: int,
                 last: int | None) -> Sorter:
        """The position of a run from ``since``, after the last row ``last`` (ms) a file
        already has: the later of ``since`` and the candle after ``last``."""
        if last is None:
            return cls(symbol, since, until, tf)
        return cls(symbol, max(since, last + tf), until, tf, last_at=last / 1000)

    def request(self, limit: int) -> tuple[int, int] | None:
        """The next page to ask for, (since ms, limit), or None when nothing is left."""
        if self.expected >= self.until:
            return None
        left = math.ceil((self.until - self.expected) / self.tf)
        return self.expected, max(1, min(limit, left))

    def sort(self, candles: Sequence[Sequence[Any]], now: int) -> Page:
        """Sort one page of ccxt OHLCV rows (``[ms, o, h, l, c, v]``) at time ``now`` (ms)."""
        rows: list[tuple[int, float, float, float, float, float]] = []
        reports: list[str] = []
        done = True  # an empty page, or one with nothing new, ends the symbol
        for candle in sorted(candles, key=lambda c: _open_time(c) or 0):
            at = _open_time(candle)
            if at is None:
                reports.append(self._bad(f"a candle without a timestamp: {list(candle)[:6]}"))
                continue
            if at < self.expected:
                continue  # already had (a resumed run, or a venue repeating itself)
            if at >= self.until or at + self.tf > now:
                done = True
                break
            done = False
            if at > self.expected:
                missing = (at - self.expected) // self.tf
                self.gaps += 1
                reports.append(self._note(
                    f"gap: {self.symbol} has no candle from {format_ms(self.expected)} to "
                    f"{format_ms(at - self.tf)} ({missing} missing)"))
            self.expected = at + self.tf
            values = [_number(v) for v in list(candle)[1:6]]
            values += [None] * (5 - len(values))
            bar = Bar(self.symbol, at / 1000, *values)
            try:
                check_bar(bar, self.last_at)
            except BadBar as exc:
                reports.append(self._bad(f"bad candle: {self.symbol} at {format_ms(at)}: "
                                         f"{exc}"))
                continue
            self.last_at = bar.at
            rows.append((at, bar.open, bar.high, bar.low, bar.close, bar.volume))
        else:
            done = done or self.expected >= self.until
        self.written += len(rows)
        return Page(tuple(rows), tuple(reports), done)

    def _note(self, text: str) -> str:
        self.reports.append(text)
        return text

    def _bad(self, text: str) -> str:
        self.bad += 1
        return self._note(text)


def _open_time(candle: Sequence[Any]) -> int | None:
    try:
        value = candle[0]
    except (IndexError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        return None
    return int(value)


def _number(value: Any) -> Any:
    """A ccxt value as the bad-bar rules take it: an int as a float, anything else as is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def format_row(row: tuple[int, float, float, float, float, float]) -> str:
    """One CSV line (no newline) of a written row."""
    return ",".join([str(row[0]), *(repr(v) for v in row[1:])])
