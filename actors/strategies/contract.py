"""The strategies context's contract: the ``Signal`` the evaluator sends the executor, and
its stats (``GetEvaluatorStats`` answered with ``RunnerStats``).

A strategy is written against :mod:`actors.strategies.api` (docs/strategies.md)."""

from __future__ import annotations

from dataclasses import dataclass

from actors.common.messages import Side

__all__ = ["GetEvaluatorStats", "RunnerStats", "Signal"]


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's decision to enter or leave; ``signal_id`` is deterministic."""

    signal_id: str
    strategy: str
    symbol: str
    side: Side
    price: float
    at: float
    reason: str
    stop_distance: float = 0.0  # price distance to the planned stop, for sizing
    take_profit: float | None = None  # the strategy's target price (its exits' take-profit)



@dataclass(frozen=True, slots=True)
class GetEvaluatorStats:
    """Ask the evaluator for its :class:`RunnerStats`."""


@dataclass(frozen=True, slots=True)
class RunnerStats:
    """The runner core's counters: signals emitted, failures by ``(strategy, directive,
    count)``, the ``(strategy, symbol)`` pairs switched off, and the entries not signalled
    because their candle was a catch-up one (``caught_up``)."""

    signals: int
    faults: tuple[tuple[str, str, int], ...]
    off: tuple[tuple[str, str], ...]
    caught_up: int = 0
