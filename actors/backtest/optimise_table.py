"""What ``botvisor optimise`` prints and writes: the ``--json`` document, the table of the
best trials (rich on a terminal, aligned plain text elsewhere) and the ``--report`` CSV of
every trial. Pure renderings of a :class:`~actors.backtest.optimise.Search`; the keys are
listed in docs/optimise.md.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from actors.backtest.data import HistoricalData
from actors.backtest.optimise import BATCH, Dimension, Outcome, Search
from actors.backtest.optimise_objective import Objective
from actors.common.storage import atomic_write

__all__ = ["Run", "print_best", "to_document", "write_trials_csv"]

# the held-out figures the table shows beside the objective
_SHOWN = (("trades", "trades"), ("total_return", "return"), ("max_drawdown", "max dd"))


@dataclass(frozen=True, slots=True)
class Run:
    """What a search ran with (for the document's header)."""

    objective: Objective
    seed: int
    trials: int
    jobs: int
    min_trades: int
    train: HistoricalData
    test: HistoricalData
    space: tuple[Dimension, ...]
    fixed: Mapping[str, Any]


def _window(data: HistoricalData) -> dict[str, Any]:
    return {"from": data.window[0], "until": data.window[1], "candles": data.candles,
            "symbols": list(data.symbols)}


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _side(outcome: Outcome) -> dict[str, Any]:
    return {"objective": _number(outcome.value), "note": outcome.note,
            "figures": outcome.figures}


def to_document(run: Run, search: Search) -> dict[str, Any]:
    """The ``--json`` document (``json.dumps(..., allow_nan=False)`` accepts it)."""
    return {
        "objective": run.objective.name,
        "direction": run.objective.direction,
        "seed": run.seed,
        "trials": run.trials,
        "jobs": run.jobs,
        "batch": BATCH,
        "min_trades": run.min_trades,
        "train": _window(run.train),
        "test": _window(run.test),
        "space": {d.key: {"type": d.range.type, "low": d.range.low, "high": d.range.high,
                          "step": d.range.step, "log": d.range.log} for d in run.space},
        "fixed": dict(run.fixed),
        "best": [{"rank": rank, "trial": trial.number, "params": trial.params,
                  "train": _side(trial.train), "test": _side(held_out)}
                 for rank, (trial, held_out) in enumerate(search.best, 1)],
        "all": [{"trial": t.number, "params": t.params, "objective": _number(t.train.value),
                 "trades": None if t.train.figures is None else t.train.figures["trades"],
                 "note": t.train.note} for t in search.trials],
    }


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figure(outcome: Outcome, key: str) -> str:
    figures = outcome.figures or {}
    value = figures.get(key)
    if key in ("total_return", "max_drawdown") and isinstance(value, float):
        return f"{value * 100:.2f}%"
    return _value(value)


def _rows(run: Run, search: Search) -> list[tuple[str, ...]]:
    name = run.objective.name
    head = ("#", "trial", "params", f"{name} train", f"{name} test",
            *(f"test {label}" for _, label in _SHOWN))
    rows = [head]
    for rank, (trial, held_out) in enumerate(search.best, 1):
        params = " ".join(f"{k}={_value(v)}" for k, v in trial.params.items())
        rows.append((str(rank), str(trial.number), params, _value(trial.train.value),
                     _value(held_out.value), *(_figure(held_out, k) for k, _ in _SHOWN)))
    return rows


def _header(run: Run, search: Search) -> list[str]:
    defined = sum(1 for t in search.trials if t.train.value is not None)
    return [
        f"objective   {run.objective.name} ({run.objective.direction}), seed {run.seed}",
        f"trials      {len(search.trials)} ({defined} with a defined objective), "
        f"{run.jobs} job(s)",
        f"training    {_day(run.train.window[0])} .. {_day(run.train.window[1])} "
        f"({run.train.candles} candles)",
        f"held out    {_day(run.test.window[0])} .. {_day(run.test.window[1])} "
        f"({run.test.candles} candles)",
    ]


def print_best(run: Run, search: Search, out: TextIO) -> None:
    """The header and the best trials: rich on a terminal, plain aligned text elsewhere."""
    rows = _rows(run, search)
    lines = ["Optimisation result", *("  " + line for line in _header(run, search))]
    if not search.best:
        lines.append("  no trial had a defined objective on the training window "
                     "(see --min-trades)")
    if out.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=out, highlight=False)
        console.print(Text("\n".join(lines)))
        if search.best:
            table = Table(title=f"Best {len(search.best)} trials, best first")
            for column in rows[0]:
                table.add_column(column, justify="left" if column == "params" else "right")
            for row in rows[1:]:
                table.add_row(*(Text(cell) for cell in row))
            console.print(table)
            console.print(Text("\n".join(_snippet(search))))
        return
    if search.best:
        lines += ["", f"Best {len(search.best)} trials, best first", *_aligned(rows),
                  "", *_snippet(search)]
    out.write("\n".join(lines) + "\n")


def _snippet(search: Search) -> list[str]:
    """The best trial's params as the evaluator's ``strategies`` entries take them."""
    by_strategy: dict[str, list[str]] = {}
    for key, value in search.best[0][0].params.items():
        strategy, _, name = key.rpartition(".")
        by_strategy.setdefault(strategy, []).append(f"{name}: {value!r}")
    return ["The best trial's params (an entry's `params` in the evaluator's strategies):",
            *(f"  {strategy}: {{{', '.join(items)}}}" for strategy, items in by_strategy.items())]


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) if i == 2 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
            for row in rows]


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def write_trials_csv(search: Search, path: Path) -> None:
    """Every trial, one CSV row: number, objective, note, training trades, return and
    drawdown, then each param. OSError (a StorageFailure) names the path."""
    keys = list(search.trials[0].params) if search.trials else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "objective", "note", "trades", "total_return", "max_drawdown",
                     *keys])
    for t in search.trials:
        figures = t.train.figures or {}
        writer.writerow([t.number, "" if t.train.value is None else repr(t.train.value),
                         t.train.note or "", figures.get("trades", ""),
                         figures.get("total_return", ""), figures.get("max_drawdown", ""),
                         *(t.params[k] for k in keys)])
    atomic_write(path, buffer.getvalue().encode("utf-8"))
