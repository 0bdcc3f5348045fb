"""The exits actor (sale): stop-loss, take-profit, trailing stop and time stop.

It watches every open position against each bar and asks the executor to close it when a
rule fires. Exits only reduce exposure, so they pass while the breaker is OPEN: a tripped
breaker never leaves a position unprotected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.market import Bars
from actors.pipeline_messages import Bar, ExitRequest
from actors.position_messages import PortfolioSnapshot
from supervisor import SupervisedActor

__all__ = ["ExitWatches", "ExitsActor"]


@dataclass
class _Watch:
    entry: float
    opened_at: float
    high: float
    requested_at: float | None = None


@dataclass(frozen=True, slots=True)
class ExitWatches:
    """Published by the exits actor: each watched position's entry, open time, high-water
    mark and last request, so a restarted exits actor keeps its time and trailing stops."""

    watches: tuple[tuple[str, float, float, float, float | None], ...]


class ExitsActor(SupervisedActor):
    """Owns the watch state of each open position: entry, high-water mark, last request."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        stop_loss_pct: float = Field(3.0, gt=0)
        take_profit_pct: float = Field(6.0, gt=0)
        trailing_pct: float = Field(2.0, gt=0)
        trailing_activation_pct: float = Field(1.5, ge=0)
        time_stop_seconds: float | None = Field(6 * 3600.0, gt=0)  # market time
        repeat_after_seconds: float = Field(300.0, gt=0)  # re-ask if the position stays
        executor: str = "executor"
        positions: str = "positions"

    def __init__(self, settings: ExitsActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or ExitsActor.Settings()
        self.watch: dict[str, _Watch] = {}
        self.requests: dict[str, int] = {}

    def on_start(self) -> None:
        earlier = self.ctx.peek(self.ctx.name)
        if isinstance(earlier, ExitWatches):  # a restart: the stops keep their references
            self.watch = {sym: _Watch(entry, opened, high, requested)
                          for sym, entry, opened, high, requested in earlier.watches}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            snap = self.ctx.peek(self.settings.positions)
            if isinstance(snap, PortfolioSnapshot):
                self._on_bars(message.bars, snap)
            return None
        return super().on_receive(message)

    def _on_bars(self, bars: tuple[Bar, ...], snap: PortfolioSnapshot) -> None:
        for symbol in list(self.watch):
            if symbol not in snap.positions:
                del self.watch[symbol]
        for bar in bars:
            pos = snap.positions.get(bar.symbol)
            if pos is None or pos.quantity <= 0:
                continue
            entry = float(pos.avg_price)
            watch = self.watch.get(bar.symbol)
            if watch is None or watch.entry != entry:
                watch = self.watch[bar.symbol] = _Watch(entry, bar.at, entry)
            watch.high = max(watch.high, bar.high)
            reason = self._rule(bar, watch)
            if reason is None:
                continue
            if watch.requested_at is not None and \
                    bar.at - watch.requested_at < self.settings.repeat_after_seconds:
                continue
            watch.requested_at = bar.at
            self.requests[reason] = self.requests.get(reason, 0) + 1
            self.ctx.try_tell(self.settings.executor, ExitRequest(
                f"exit:{reason}:{bar.symbol}:{int(bar.at)}", bar.symbol, reason, bar.close,
                bar.at))
        self.ctx.publish(ExitWatches(tuple(
            (sym, w.entry, w.opened_at, w.high, w.requested_at)
            for sym, w in self.watch.items())))

    def _rule(self, bar: Bar, watch: _Watch) -> str | None:
        s = self.settings
        if bar.low <= watch.entry * (1 - s.stop_loss_pct / 100):
            return "stop_loss"
        if bar.high >= watch.entry * (1 + s.take_profit_pct / 100):
            return "take_profit"
        activated = watch.high >= watch.entry * (1 + s.trailing_activation_pct / 100)
        if activated and bar.low <= watch.high * (1 - s.trailing_pct / 100):
            return "trailing_stop"
        if s.time_stop_seconds is not None and bar.at - watch.opened_at >= s.time_stop_seconds:
            return "time_stop"
        return None
