"""The symbol scanner: ranks and filters symbols by liquidity, volatility and price."""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.market import Bars
from actors.pipeline_messages import Bar, Candidates
from supervisor import SupervisedActor

__all__ = ["ScannedBars", "ScannerActor"]


@dataclass(frozen=True, slots=True)
class ScannedBars:
    """Bars passed on to the evaluator, with the symbols it may open positions in."""

    bars: tuple[Bar, ...]
    candidates: frozenset[str]


class ScannerActor(SupervisedActor):
    """Owns rolling per-symbol statistics and the current candidate list."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        window_bars: int = Field(60, ge=2)
        cycle_bars: int = Field(10, ge=1)
        top: int = Field(4, ge=1)
        min_quote_volume: float = Field(100_000.0, ge=0)  # average per bar
        min_volatility_pct: float = Field(0.05, ge=0)  # std of 1-bar log returns
        max_volatility_pct: float = Field(5.0, gt=0)
        min_price: float = Field(0.0, ge=0)
        max_price: float | None = None
        evaluator: str = "evaluator"

    def __init__(self, settings: ScannerActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or ScannerActor.Settings()
        self.history: dict[str, deque[Bar]] = {}
        self.candidates: frozenset[str] = frozenset()
        self.ranked: tuple[str, ...] = ()
        self.cycles = 0
        self._bars_seen = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            self._on_bars(message.bars)
            return None
        if message == "candidates":
            return Candidates(self.ranked, 0.0)
        return super().on_receive(message)

    def _on_bars(self, bars: tuple[Bar, ...]) -> None:
        window = self.settings.window_bars
        for bar in bars:
            self.history.setdefault(bar.symbol, deque(maxlen=window)).append(bar)
        self._bars_seen += 1
        if self._bars_seen % self.settings.cycle_bars == 0:
            self._rank()
        self.ctx.try_tell(self.settings.evaluator, ScannedBars(bars, self.candidates))

    def _rank(self) -> None:
        s = self.settings
        scored: list[tuple[float, str]] = []
        for symbol, bars in self.history.items():
            if len(bars) < max(2, s.window_bars // 2):
                continue
            closes = [b.close for b in bars]
            returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
            mean = sum(returns) / len(returns)
            vol = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns)) * 100
            quote_volume = sum(b.volume * b.close for b in bars) / len(bars)
            price = closes[-1]
            if quote_volume < s.min_quote_volume:
                continue
            if not s.min_volatility_pct <= vol <= s.max_volatility_pct:
                continue
            if price < s.min_price or (s.max_price is not None and price > s.max_price):
                continue
            scored.append((vol * math.log10(1 + quote_volume), symbol))
        scored.sort(reverse=True)
        self.ranked = tuple(symbol for _, symbol in scored[: s.top])
        self.candidates = frozenset(self.ranked)
        self.cycles += 1
