"""The evaluator: runs the configured strategies on scanned bars and emits signals."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.pipeline_messages import Signal
from actors.position_messages import PortfolioSnapshot
from actors.scanner import ScannedBars
from actors.strategies import MeanReversion, MomentumBreakout, Strategy
from supervisor import SupervisedActor

__all__ = ["EvaluatorActor"]


class MomentumSettings(BaseModel):
    """``momentum``: breakout of the recent high."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    lookback: int = Field(20, ge=2)
    exit_lookback: int = Field(10, ge=2)
    atr_stop: float = Field(2.0, gt=0)


class MeanReversionSettings(BaseModel):
    """``mean_reversion``: buy the dip below the band, sell at the mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    window: int = Field(30, ge=3)
    k: float = Field(2.0, gt=0)
    stop_k: float = Field(1.5, gt=0)


class EvaluatorActor(SupervisedActor):
    """Owns one strategy instance per (strategy, symbol) and which one holds each symbol."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        momentum: MomentumSettings = MomentumSettings()
        mean_reversion: MeanReversionSettings = MeanReversionSettings()
        executor: str = "executor"
        positions: str = "positions"

    def __init__(self, settings: EvaluatorActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or EvaluatorActor.Settings()
        self.strategies: dict[tuple[str, str], Strategy] = {}
        self.owner: dict[str, str] = {}  # symbol -> strategy that opened it
        self.signals = 0

    def _make(self, name: str) -> Strategy:
        s = self.settings
        if name == "momentum":
            m = s.momentum
            return MomentumBreakout(m.lookback, m.exit_lookback, m.atr_stop)
        r = s.mean_reversion
        return MeanReversion(r.window, r.k, r.stop_k)

    def _enabled(self) -> list[str]:
        s = self.settings
        return [n for n, on in (("momentum", s.momentum.enabled),
                                ("mean_reversion", s.mean_reversion.enabled)) if on]

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, ScannedBars):
            return super().on_receive(message)
        snapshot = self.ctx.peek(self.settings.positions)
        held = set(snapshot.positions) if isinstance(snapshot, PortfolioSnapshot) else set()
        for symbol in list(self.owner):
            if symbol not in held:
                del self.owner[symbol]  # closed (by an exit, say): free for any strategy
        for bar in message.bars:
            for name in self._enabled():
                key = (name, bar.symbol)
                strategy = self.strategies.get(key)
                if strategy is None:
                    strategy = self.strategies[key] = self._make(name)
                holding = self.owner.get(bar.symbol) == name and bar.symbol in held
                verdict = strategy.on_bar(bar, holding)
                if verdict is None:
                    continue
                side, reason, stop = verdict
                if side.value == "buy" and (bar.symbol not in message.candidates
                                            or bar.symbol in held):
                    continue
                if side.value == "buy":
                    self.owner[bar.symbol] = name
                self.signals += 1
                self.ctx.try_tell(self.settings.executor, Signal(
                    f"{name}:{bar.symbol}:{int(bar.at)}:{side.value}", name, bar.symbol, side,
                    bar.close, bar.at, reason, stop))
        return None
