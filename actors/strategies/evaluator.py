"""The evaluator: the configured strategies on scanned bars, signals to the executor.

A thin actor over the runner core (:mod:`actors.strategies.runner`, which holds the
ownership, pending-entry and sale-once rules): it reads the positions snapshot, hands the
runner each ``ScannedBars``, tells the executor the signals, and publishes who owns each
symbol so that a restarted evaluator takes the owners over. A strategy that raises is
logged and told to the alerts actor (at its 1st, 10th, 100th and 1000th failure on a
symbol); the error handler of this child decides what the runner does with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from actors.common.messages import Alert
from actors.market.contract import ScannedBars
from actors.portfolio.contract import PortfolioSnapshot
from actors.strategies.contract import GetEvaluatorStats, RunnerStats, Signal
from actors.strategies.loading import StrategyEntry, resolve_entries
from actors.strategies.runner import Runner, StrategyFault
from supervisor import ErrorHandler, SupervisedActor
from supervisor.peers import Peer

__all__ = ["EvaluatorActor", "EvaluatorOwners"]

log = logging.getLogger(__name__)


def _builtins() -> tuple[StrategyEntry, ...]:
    return (StrategyEntry.model_validate({"class": "momentum"}),
            StrategyEntry.model_validate({"class": "mean_reversion"}))


@dataclass(frozen=True, slots=True)
class EvaluatorOwners:
    """Published by the evaluator: who owns each symbol, for a restarted evaluator."""

    owners: tuple[tuple[str, str, bool, int], ...]  # symbol, strategy, held, waited


class EvaluatorActor(SupervisedActor):
    """Runs the configured strategies (``strategies``: see
    :class:`~actors.strategies.loading.StrategyEntry`) through one runner core."""

    accepts: ClassVar[tuple[type, ...]] = (
        ScannedBars, GetEvaluatorStats)
    publishes: ClassVar[type] = EvaluatorOwners

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        strategies: tuple[StrategyEntry, ...] = Field(default_factory=_builtins)
        entry_timeout_bars: int = Field(20, ge=1)  # a pending entry lapses after this
        executor: Annotated[str, Peer(accepts=(Signal,))] = "executor"
        positions: Annotated[str, Peer(publishes=PortfolioSnapshot)] = "positions"
        alerts: Annotated[str | None, Peer(accepts=(Alert,))] = "alerts"

        @model_validator(mode="after")
        def _unique_names(self, info: ValidationInfo) -> EvaluatorActor.Settings:
            imports = (info.context or {}).get("imports")
            seen: dict[str, int] = {}
            for i, entry in enumerate(self.strategies):
                if (entry.name is None and ":" in entry.class_ and imports is not None
                        and not imports.may_import(entry.class_)):
                    continue  # its default name is known only once it is imported
                name = entry.default_name()
                if name in seen:
                    raise ValueError(f"strategies[{i}] is named {name!r}, like "
                                     f"strategies[{seen[name]}]: names are in signal ids "
                                     "and must be unique (give one a 'name')")
                seen[name] = i
            return self

    def __init__(self, settings: EvaluatorActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or EvaluatorActor.Settings()
        self.runner = Runner(resolve_entries(self.settings.strategies),
                             entry_timeout_bars=self.settings.entry_timeout_bars)

    @property
    def signals(self) -> int:
        return self.runner.signals

    @property
    def selling(self) -> dict[str, list[Any]]:
        return self.runner.selling

    def on_start(self) -> None:
        cell = self.ctx.runtime.cell_or_none(self.ctx.name)
        handler = getattr(cell, "error_handler", None)  # this child's, as configured
        earlier = self.ctx.peek(self.ctx.name)  # a restart: the owners are not forgotten
        self.runner = Runner(
            self.runner.specs, entry_timeout_bars=self.settings.entry_timeout_bars,
            handler=handler if isinstance(handler, ErrorHandler) else None,
            owners=earlier.owners if isinstance(earlier, EvaluatorOwners) else ())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetEvaluatorStats):
            return self.stats()
        if not isinstance(message, ScannedBars):
            return super().on_receive(message)
        runner = self.runner
        snapshot = self.ctx.peek(self.settings.positions)
        held: dict[str, Any] = {}
        changed = False  # in the owners, which a restarted evaluator takes over
        if isinstance(snapshot, PortfolioSnapshot):
            held = snapshot.positions
            changed = runner.positions(snapshot.seq, held)
        if runner.on_candles(message.bars, message.candidates, held, self,
                             catch_up=message.catch_up):
            changed = True
        if changed:
            self.ctx.publish(EvaluatorOwners(runner.owners()))
        return None

    def stats(self) -> RunnerStats:
        return self.runner.stats()

    # -- the runner's sink ------------------------------------------------------------------

    def signal(self, signal: Signal) -> bool:
        return self.ctx.try_tell(self.settings.executor, signal)

    def fault(self, fault: StrategyFault) -> None:
        log.warning("strategy %s failed on %s (%s, %d so far): %s", fault.strategy,
                    fault.symbol, fault.directive.value, fault.count, fault.error)
        alerts = self.settings.alerts
        if alerts is None or fault.count not in (1, 10, 100, 1000):
            return
        done = {"resume": "it skipped that candle",
                "restart": "it was replaced by a fresh instance warmed on the window",
                "stop": "it is switched off for that symbol"}.get(fault.directive.value, "")
        self.ctx.try_tell(alerts, Alert(
            key=f"evaluator.strategy_failed.{fault.strategy}",
            severity=fault.severity.name.lower(),
            title=f"Strategy {fault.strategy} failed on {fault.symbol}",
            body=f"{fault.error} ({fault.count} on {fault.symbol} so far); {done}; the other "
                 "strategies go on"))
