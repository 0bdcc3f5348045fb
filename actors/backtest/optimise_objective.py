"""What ``botvisor optimise`` may optimise: figures of the result table, each with its
direction, and how a trial is ranked when its figure is undefined.

An :class:`Objective` reads one :class:`~actors.backtest.metrics.Summary` field. A figure
that is None (undefined: a Sharpe ratio with a flat curve, a profit factor with no trade),
NaN or infinite (a profit factor with no losing trade) is *undefined* for the search: such a
trial is told to the sampler as failed and ranks after every defined one
(docs/optimise.md, "The objective").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from actors.backtest.metrics import Summary

__all__ = ["OBJECTIVES", "Objective", "UnknownObjective", "objective"]


class UnknownObjective(ValueError):
    """An objective name not in :data:`OBJECTIVES` (the message lists the choices)."""


@dataclass(frozen=True, slots=True)
class Objective:
    """The figure ``name`` of the result table, to ``direction`` (maximize or minimize)."""

    name: str
    direction: Literal["maximize", "minimize"]
    doc: str

    def value(self, summary: Summary) -> float | None:
        """The figure of ``summary``, or None when it is undefined (None, NaN, infinite)."""
        raw: float | Decimal | None = getattr(summary, self.name)
        if raw is None:
            return None
        value = float(raw)
        return value if math.isfinite(value) else None

    def rank_key(self, value: float | None) -> tuple[bool, float]:
        """Sorts best first: defined values in the direction, undefined ones last."""
        if value is None:
            return True, 0.0
        return False, -value if self.direction == "maximize" else value


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("sharpe", "maximize", "annualised Sharpe ratio of the per-step returns"),
    Objective("sortino", "maximize", "annualised Sortino ratio of the per-step returns"),
    Objective("total_return", "maximize", "last equity / start cash - 1"),
    Objective("cagr", "maximize", "the total return compounded per year (windows >= 1 day)"),
    Objective("profit_factor", "maximize", "gross profit / gross loss"),
    Objective("win_rate", "maximize", "winning trades / trades"),
    Objective("total_pnl", "maximize", "the trades' pnl after fees"),
    Objective("max_drawdown", "minimize", "the deepest fall from a running peak"),
    Objective("max_drawdown_duration_s", "minimize", "how long the deepest drawdown lasted"),
)}


def objective(name: str) -> Objective:
    """The objective called ``name``; UnknownObjective lists the choices."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise UnknownObjective(f"--objective {name!r} is not a figure to optimise; choose one "
                               f"of: {', '.join(OBJECTIVES)}") from None
