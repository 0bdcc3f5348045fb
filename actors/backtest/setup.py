"""What a backtest runs with: the cores' settings, as the actors of a tree build them.

:class:`BacktestSetup` holds, for each pure core the engine calls, the very settings object
(or the object built from it) its actor would use: the scanner's ranking rules, the
evaluator's strategy specs and entry timeout, the executor's limits, the exits actor's
rules, the breaker's rules, the paper exchange's fill pricing and the position actor's
starting cash. :mod:`actors.backtest.tree` fills it from a configured tree; a test builds
it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from actors.execution.decide import Limits
from actors.execution.exit_rules import ExitRules
from actors.market.ranking import RankingRules
from actors.risk.settings import BreakerRules
from actors.strategies.runner import StrategySpec
from actors.venues.paper_pricing import FillPricing
from supervisor.error_handler import ErrorHandler

__all__ = ["BacktestSetup"]


@dataclass(frozen=True, slots=True)
class BacktestSetup:
    """The cores' settings for one run; ``handler`` classifies a strategy's failures (the
    evaluator child's error handler; None: the default one)."""

    ranking: RankingRules
    strategies: tuple[StrategySpec, ...]
    entry_timeout_bars: int
    limits: Limits
    exits: ExitRules
    breaker: BreakerRules
    pricing: FillPricing
    starting_cash: Decimal
    allow_short: bool = False
    handler: ErrorHandler | None = None
