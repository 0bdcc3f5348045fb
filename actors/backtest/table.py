"""The result table: a :class:`Summary` printed for a person, or as JSON for a program.

:func:`print_summary` draws rich tables on a terminal and plain aligned text elsewhere
(a pipe, a file: no colour, no box characters). :func:`to_json` gives the ``--json``
document: stable keys (listed in docs/backtesting.md), numbers as numbers, Decimals as
strings, and null for a figure that is undefined or infinite (never NaN).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from actors.backtest.metrics import Breakdown, Summary

__all__ = ["breakdown_row", "figures", "plain_text", "print_summary", "rich_tables", "to_json"]

_BREAKDOWN_COLUMNS = ("trades", "win rate", "pnl", "profit factor")


def to_json(summary: Summary) -> dict[str, Any]:
    """The summary as a JSON-ready dict (``json.dumps(..., allow_nan=False)`` accepts it)."""
    return {
        "trades": summary.trades,
        "wins": summary.wins,
        "losses": summary.losses,
        "win_rate": _number(summary.win_rate),
        "total_pnl": str(summary.total_pnl),
        "fees": str(summary.fees),
        "gross_profit": str(summary.gross_profit),
        "gross_loss": str(summary.gross_loss),
        "profit_factor": _number(summary.profit_factor),
        "start_cash": str(summary.start_cash),
        "final_equity": _number(summary.final_equity),
        "total_return": _number(summary.total_return),
        "cagr": _number(summary.cagr),
        "max_drawdown": _number(summary.max_drawdown),
        "max_drawdown_duration_s": _number(summary.max_drawdown_duration_s),
        "sharpe": _number(summary.sharpe),
        "sortino": _number(summary.sortino),
        "exposure": _number(summary.exposure),
        "breaker_trips": summary.breaker_trips,
        "steps": summary.steps,
        "timeframe_s": _number(summary.timeframe_s),
        "from": _number(summary.window[0]),
        "until": _number(summary.window[1]),
        "candles": summary.candles,
        "bad_candles": summary.bad_candles,
        "symbols": list(summary.symbols),
        "strategies": list(summary.strategies),
        "by_symbol": [_breakdown_json(b) for b in summary.by_symbol],
        "by_strategy": [_breakdown_json(b) for b in summary.by_strategy],
    }


def figures(summary: Summary) -> list[tuple[str, str]]:
    """The headline figures as (label, text) rows, the order every rendering uses."""
    return [
        ("window", f"{_day(summary.window[0])} .. {_day(summary.window[1])}"),
        ("steps", f"{summary.steps} x {_seconds(summary.timeframe_s)}"),
        ("candles", f"{summary.candles} ({summary.bad_candles} bad, skipped)"),
        ("trades", str(summary.trades)),
        ("win rate", _percent(summary.win_rate)),
        ("start cash", _money(summary.start_cash)),
        ("final equity", f"{summary.final_equity:.2f}"),
        ("total pnl", _money(summary.total_pnl)),
        ("fees", _money(summary.fees)),
        ("total return", _percent(summary.total_return)),
        ("CAGR", _percent(summary.cagr)),
        ("max drawdown", f"{_percent(summary.max_drawdown)} over "
                         f"{_seconds(summary.max_drawdown_duration_s)}"),
        ("Sharpe", _ratio(summary.sharpe)),
        ("Sortino", _ratio(summary.sortino)),
        ("profit factor", _ratio(summary.profit_factor)),
        ("exposure", _percent(summary.exposure)),
        ("breaker trips", str(summary.breaker_trips)),
    ]


def breakdown_row(row: Breakdown) -> tuple[str, str, str, str, str]:
    """One breakdown line: name, trades, win rate, pnl, profit factor."""
    return (row.name, str(row.trades), _percent(row.win_rate), _money(row.pnl),
            _ratio(row.profit_factor))


def rich_tables(summary: Summary) -> list[Table]:
    """The result table and the per-symbol and per-strategy breakdowns (every cell plain
    text: a symbol such as ``[/]`` is printed, never read as rich markup)."""
    main = Table(title="Backtest result", show_header=False)
    main.add_column("figure", style="bold")
    main.add_column("value", justify="right")
    for label, value in figures(summary):
        main.add_row(Text(label), Text(value))
    tables = [main]
    for title, rows in (("symbol", summary.by_symbol), ("strategy", summary.by_strategy)):
        table = Table(title=f"Per {title}")
        table.add_column(title)
        for column in _BREAKDOWN_COLUMNS:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*(Text(cell) for cell in breakdown_row(row)))
        tables.append(table)
    return tables


def plain_text(summary: Summary) -> str:
    """The same tables as aligned plain text, one figure or one breakdown row a line."""
    rows = figures(summary)
    width = max(len(label) for label, _ in rows)
    lines = ["Backtest result"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    for title, breakdowns in (("symbol", summary.by_symbol),
                              ("strategy", summary.by_strategy)):
        lines += ["", f"Per {title}"]
        lines += _aligned([(title, *_BREAKDOWN_COLUMNS)]
                          + [breakdown_row(b) for b in breakdowns])
    return "\n".join(lines) + "\n"


def print_summary(summary: Summary, stream: TextIO | None = None) -> None:
    """Rich tables on a terminal, :func:`plain_text` on anything else."""
    out = stream if stream is not None else sys.stdout
    if out.isatty():
        console = Console(file=out, highlight=False)
        for table in rich_tables(summary):
            console.print(table)
    else:
        out.write(plain_text(summary))


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join([row[0].ljust(widths[0])]
                             + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:],
                                                                 strict=True)])
            for row in rows]


def _breakdown_json(row: Breakdown) -> dict[str, Any]:
    return {"name": row.name, "trades": row.trades, "wins": row.wins,
            "win_rate": _number(row.win_rate), "pnl": str(row.pnl),
            "profit_factor": _number(row.profit_factor)}


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _money(value: Decimal) -> str:
    """An amount of the quote currency to the cent, for reading (the JSON keeps it
    exact)."""
    return f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if value == math.inf else f"{value:.2f}"


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def _seconds(seconds: float) -> str:
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m" if s >= 60 and s % 60 == 0 else f"{s}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
