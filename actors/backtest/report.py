"""The HTML report of a backtest: one self-contained page (no network, no script).

:func:`write_report` writes the equity and drawdown charts (inline SVG, each downsampled to
at most :data:`MAX_POINTS` points by :func:`downsample`, which keeps every bucket's lowest
and highest point so that no drawdown is hidden), the result table, the per-symbol and
per-strategy breakdowns, the breaker trips and every trade. Every string is escaped. The
file is replaced atomically; a path that cannot be written raises :class:`ReportError`
naming it.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path

from actors.backtest.contract import BacktestResult, EquityCurve
from actors.backtest.metrics import Summary
from actors.backtest.table import breakdown_row, figures
from actors.common.storage import atomic_write

__all__ = [
    "MAX_POINTS",
    "ReportError",
    "downsample",
    "drawdown_points",
    "render",
    "write_report",
]

MAX_POINTS = 2000

_WIDTH, _HEIGHT, _MARGIN = 960, 220, 60

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
svg { background: #fafafa; border: 1px solid #ddd; }
"""


class ReportError(Exception):
    """The report cannot be written to ``path`` (the message names it and the cause)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write the report {path}: {reason}")
        self.path = path


def write_report(result: BacktestResult, summary: Summary, path: Path | str) -> None:
    """Write the report page of ``result`` (summarised as ``summary``) to ``path``."""
    target = Path(path)
    for ancestor in target.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ReportError(target, f"{ancestor} is not a directory")
            break
    page = render(result, summary)
    try:
        atomic_write(target, page.encode("utf-8"))
    except OSError as exc:
        raise ReportError(target, exc.strerror or str(exc)) from exc


def render(result: BacktestResult, summary: Summary) -> str:
    """The report page as a string."""
    curve = result.curve
    start = float(result.start_cash)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Backtest report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Backtest report</h1>",
        f"<p>Symbols: {_e(', '.join(result.symbols))}. "
        f"Strategies: {_e(', '.join(result.strategies))}.</p>",
        "<h2>Equity</h2>",
        _chart(downsample(curve.times, curve.equity), "equity", "#1f6fb2"),
        "<h2>Drawdown</h2>",
        _chart(drawdown_points(curve, start), "drawdown (fraction below the peak)",
               "#b2321f"),
        "<h2>Result</h2>",
        _table(None, [(label, value) for label, value in figures(summary)]),
        "<h2>Per symbol</h2>",
        _table(("symbol", "trades", "win rate", "pnl", "profit factor"),
               [breakdown_row(row) for row in summary.by_symbol]),
        "<h2>Per strategy</h2>",
        _table(("strategy", "trades", "win rate", "pnl", "profit factor"),
               [breakdown_row(row) for row in summary.by_strategy]),
        f"<h2>Breaker trips ({len(result.breaker_trips)})</h2>",
        _table(("at", "reason"), [(_when(trip.at), trip.reason)
                                  for trip in result.breaker_trips]),
        f"<h2>Trades ({len(result.trades)})</h2>",
        _table(("symbol", "strategy", "entry", "exit", "entry price", "exit price",
                "quantity", "pnl", "fees", "exit reason"),
               [(t.symbol, t.strategy, _when(t.entry_at), _when(t.exit_at),
                 str(t.entry_price), str(t.exit_price), str(t.quantity), str(t.pnl),
                 str(t.fees), t.exit_reason) for t in result.trades]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def downsample(times: Sequence[float], values: Sequence[float],
               max_points: int = MAX_POINTS) -> list[tuple[float, float]]:
    """``(time, value)`` points, all of them when there are at most ``max_points``; else
    the lowest and highest point of each of ``max_points // 2`` equal buckets, in order."""
    count = len(values)
    if count <= max_points:
        return list(zip(times, values, strict=True))
    size = math.ceil(count / (max_points // 2))
    points: list[tuple[float, float]] = []
    for lo in range(0, count, size):
        points += _extremes(times, values[lo:lo + size], lo)
    return points


def drawdown_points(curve: EquityCurve, start: float,
                    max_points: int = MAX_POINTS) -> list[tuple[float, float]]:
    """The drawdown ``equity / running peak - 1`` (0 at a peak, -0.25 a quarter below it),
    the start cash the first peak, downsampled as :func:`downsample` does; the series is
    computed a bucket at a time, never whole."""
    count = len(curve)
    size = 1 if count <= max_points else math.ceil(count / (max_points // 2))
    peak = start
    points: list[tuple[float, float]] = []
    for lo in range(0, count, size):
        chunk = curve.equity[lo:lo + size]
        peaks = list(accumulate(chunk, max, initial=peak))
        peak = peaks[-1]
        falls = [equity / top - 1.0 for equity, top in zip(chunk, peaks[1:], strict=True)]
        points += _extremes(curve.times, falls, lo)
    return points


def _extremes(times: Sequence[float], chunk: Sequence[float],
              offset: int) -> list[tuple[float, float]]:
    low, high = min(chunk), max(chunk)
    first, second = sorted((chunk.index(low), chunk.index(high)))
    if first == second:
        return [(times[offset + first], chunk[first])]
    return [(times[offset + first], chunk[first]), (times[offset + second], chunk[second])]


def _chart(points: list[tuple[float, float]], label: str, colour: str) -> str:
    width, height, margin = _WIDTH, _HEIGHT, _MARGIN
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 2 * margin}" '
            f'height="{height + 2 * margin}" role="img" aria-label="{_e(label)}">')
    if not points:
        return f'{head}<text x="{margin}" y="{margin}">no data</text></svg>'
    t0, t1 = points[0][0], points[-1][0]
    low = min(value for _, value in points)
    high = max(value for _, value in points)
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1.0
    coords = " ".join(
        f"{margin + (t - t0) / span_t * width:.1f},"
        f"{margin + (high - v) / span_v * height:.1f}" for t, v in points)
    bottom = margin + height
    return "".join([
        head,
        f'<polyline fill="none" stroke="{colour}" stroke-width="1" points="{coords}"/>',
        f'<text x="2" y="{margin}" font-size="11">{_e(_value(high))}</text>',
        f'<text x="2" y="{bottom}" font-size="11">{_e(_value(low))}</text>',
        f'<text x="{margin}" y="{bottom + 20}" font-size="11">{_e(_when(t0))}</text>',
        f'<text x="{margin + width}" y="{bottom + 20}" font-size="11" '
        f'text-anchor="end">{_e(_when(t1))}</text>',
        f'<text x="{margin}" y="{margin - 10}" font-size="12">{_e(label)}</text>',
        "</svg>",
    ])


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    lines = ["<table>"]
    if header is not None:
        lines.append("<tr>" + "".join(f"<th>{_e(cell)}</th>" for cell in header) + "</tr>")
    lines += ["<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
              for row in rows]
    lines.append("</table>")
    return "\n".join(lines)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _value(value: float) -> str:
    return f"{value:.4g}"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
