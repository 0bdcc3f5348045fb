"""The exits actor (sale): stop-loss, take-profit, trailing stop and time stop.

It watches every open position against each bar and asks the executor to close it when a
rule fires (the rules and the watch: ``exit_rules.py``). A position's watch takes the exit
plan of its entry (the strategy's stop and target prices) from the executor's published
state when it opens; with none there (a position from before this process, or not entered
by this executor) the percentage rules apply, and that is logged. Exits only reduce
exposure, so they pass while the breaker is OPEN: a tripped breaker never leaves a position
unprotected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors.execution.contract import ExitRequest
from actors.execution.exit_rules import ExitPlan, ExitRules, Watch
from actors.execution.state import ExecutorState
from actors.execution.watch_book import WatchBook
from actors.market.contract import Bar, Bars
from actors.portfolio.contract import PortfolioSnapshot
from supervisor import SupervisedActor
from supervisor.peers import Peer

__all__ = ["ExitWatches", "ExitsActor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExitWatches:
    """Published by the exits actor: each watched position's entry, open time, high-water
    mark, last request and plan's stop and target (the fields of ``Watch``), so a restarted
    exits actor keeps its time and trailing stops and each position's plan."""

    watches: tuple[tuple[str, float, float, float, float | None, float | None,
                         float | None], ...]


class ExitsActor(SupervisedActor):
    """Owns the watches of the open positions (a :class:`WatchBook`) and the count of its
    exit requests by reason."""

    accepts: ClassVar[tuple[type, ...]] = (
        Bars,)
    publishes: ClassVar[type] = ExitWatches

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        stop_loss_pct: float = Field(3.0, gt=0)
        take_profit_pct: float = Field(6.0, gt=0)
        trailing_pct: float = Field(2.0, gt=0)
        trailing_activation_pct: float = Field(1.5, ge=0)
        time_stop_seconds: float | None = Field(6 * 3600.0, gt=0)  # market time
        repeat_after_seconds: float = Field(300.0, gt=0)  # re-ask if the position stays
        executor: Annotated[str, Peer(accepts=(ExitRequest,))] = "executor"
        positions: Annotated[str, Peer(publishes=PortfolioSnapshot)] = "positions"

        def rules(self) -> ExitRules:
            """The exit rules of these settings (the actor's, and a backtest's)."""
            return ExitRules(self.stop_loss_pct, self.take_profit_pct, self.trailing_pct,
                             self.trailing_activation_pct, self.time_stop_seconds,
                             self.repeat_after_seconds)

    def __init__(self, settings: ExitsActor.Settings | None = None) -> None:
        super().__init__()
        s = self.settings = settings or ExitsActor.Settings()
        self.book = WatchBook(s.rules())  # its watches are published as they are
        self.requests: dict[str, int] = {}

    def on_start(self) -> None:
        earlier = self.ctx.peek(self.ctx.name)
        if isinstance(earlier, ExitWatches):  # a restart: the stops keep their references
            self.book = WatchBook(self.book.rules, (Watch(*row) for row in earlier.watches))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            snap = self.ctx.peek(self.settings.positions)
            if isinstance(snap, PortfolioSnapshot):
                self._on_bars(message.bars, snap)
            return None
        return super().on_receive(message)

    def _on_bars(self, bars: tuple[Bar, ...], snap: PortfolioSnapshot) -> None:
        book = self.book
        requests, changed = book.on_bars(bars, snap.positions, snap.seq, self._plan)
        for request in requests:
            self.requests[request.reason] = self.requests.get(request.reason, 0) + 1
            self.ctx.try_tell(self.settings.executor, request)
        if changed:
            self.ctx.publish(ExitWatches(tuple(book.watches.values())))

    def _plan(self, symbol: str) -> ExitPlan | None:
        """The exit plan of ``symbol``'s entry, as the executor publishes it (None: it has
        none, and the percentage stop loss and take profit apply)."""
        state = self.ctx.peek(self.settings.executor)
        if isinstance(state, ExecutorState):
            for held, _, plan in state.plans:
                if held == symbol:
                    return plan
        log.warning("no exit plan for %s from %r (a position from before this start, or not "
                    "entered by it): its percentage stop loss and take profit apply", symbol,
                    self.settings.executor)
        return None
