"""The breaker's triggers as one set, built from :class:`~actors.risk.settings.BreakerRules`.

:class:`TriggerSet` owns the enabled triggers (None for each one switched off) and answers
for them together: which level still holds the breaker open, re-arming the edge triggers,
the memory a restart must keep (the peak, the day, the stale feeds) and the measures the
status shows. Pure; :class:`~actors.risk.machine.BreakerCore` feeds its triggers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.risk.market_triggers import LiquidityTrigger, VolatilityTrigger
from actors.risk.settings import BreakerRules
from actors.risk.triggers import (
    ApiErrorTrigger,
    ConsecutiveLossTrigger,
    DailyLossTrigger,
    DrawdownTrigger,
    ExposureTrigger,
    ResourceTrigger,
    StaleDataTrigger,
)

__all__ = ["TriggerSet"]


class TriggerSet:
    """The triggers ``rules`` enable."""

    def __init__(self, rules: BreakerRules) -> None:
        s = rules
        self.drawdown = DrawdownTrigger(s.drawdown.max_percent) if s.drawdown.enabled else None
        self.daily = (DailyLossTrigger(s.daily_loss.max_percent, s.daily_loss.timezone)
                      if s.daily_loss.enabled else None)
        a = s.api_errors
        self.api = (ApiErrorTrigger(a.window_seconds, a.min_calls, a.max_error_rate,
                                    a.max_consecutive) if a.enabled else None)
        self.losses = (ConsecutiveLossTrigger(s.consecutive_losses.max_losses)
                       if s.consecutive_losses.enabled else None)
        v = s.volatility
        self.volatility = (VolatilityTrigger(v.window_seconds, v.max_percent, v.min_samples)
                           if v.enabled else None)
        self.liquidity = (LiquidityTrigger(s.liquidity.min_volume)
                          if s.liquidity.enabled else None)
        self.exposure = (ExposureTrigger(s.exposure.max_gross_percent,
                                         s.exposure.max_symbol_percent)
                         if s.exposure.enabled else None)
        r = s.resources
        self.resources = (ResourceTrigger(r.max_rss_mb, r.max_cpu_percent, r.sustain_samples)
                          if r.enabled else None)
        self.stale = StaleDataTrigger() if s.stale_data.enabled else None

    def holding(self, wall: float) -> list[str]:
        """Why the level triggers hold the breaker open now (empty: none does)."""
        holds = [
            self.daily.holding(wall) if self.daily else None,
            self.volatility.holding() if self.volatility else None,
            self.liquidity.holding() if self.liquidity else None,
            self.exposure.holding() if self.exposure else None,
            self.resources.holding() if self.resources else None,
            self.stale.holding() if self.stale else None,
        ]
        return [h for h in holds if h]

    def rearm(self) -> None:
        """The edge triggers (drawdown, API errors, losing streak) start again from now."""
        for trigger in (self.drawdown, self.api, self.losses):
            if trigger is not None:
                trigger.rearm()

    def memory(self) -> tuple[Decimal | None, str | None, Decimal | None]:
        """What the equity triggers remember: the peak, and the day with its start equity."""
        peak = self.drawdown.peak if self.drawdown is not None else None
        day, start = (self.daily.day, self.daily.start_equity) if self.daily is not None \
            else (None, None)
        return peak, day, start

    def stale_record(self) -> dict[str, list[Any]]:
        """The feeds reported stale, as the state file holds them."""
        stale = self.stale.stale if self.stale is not None else {}
        return {src: [list(sy), last, at] for src, (sy, last, at) in stale.items()}

    def restore(self, record: dict[str, Any]) -> None:
        """Take back the memory a state file's record holds (see :meth:`memory`)."""
        if self.drawdown is not None and record.get("peak") is not None:
            self.drawdown.peak = Decimal(record["peak"])
        # The day's starting equity too: a restart must not reset the daily loss to zero.
        if self.daily is not None and record.get("day_start_equity") is not None:
            self.daily.day = record.get("day")
            self.daily.start_equity = Decimal(record["day_start_equity"])
        # The feeds that were stale: a restart must not let the breaker recover on old news.
        if self.stale is not None:
            self.stale.stale = {str(src): (tuple(str(x) for x in sy), last, float(at))
                                for src, (sy, last, at) in (record.get("stale") or {}).items()}

    def measures(self) -> dict[str, str]:
        """What the triggers measure now, for the breaker's status."""
        measures: dict[str, str] = {}
        if self.drawdown is not None and self.drawdown.peak is not None:
            measures["peak_equity"] = str(self.drawdown.peak)
        if self.daily is not None and self.daily.start_equity is not None:
            measures["daily_loss_pct"] = f"{float(self.daily.loss_pct):.4f}"
        if self.api is not None:
            measures["api_calls_in_window"] = str(len(self.api.calls))
            measures["api_failures_in_row"] = str(self.api.failures_in_row)
        if self.losses is not None:
            measures["losing_streak"] = str(self.losses.streak)
        if self.volatility is not None:
            for sym, vol in sorted(self.volatility.current.items()):
                measures[f"volatility_pct.{sym}"] = f"{vol:.4f}"
        if self.resources is not None:
            measures["rss_mb"] = f"{self.resources.rss_mb:.1f}"
            measures["cpu_pct"] = f"{self.resources.cpu:.1f}"
        if self.stale is not None:
            for source, (symbols, _, _) in sorted(self.stale.stale.items()):
                measures[f"stale_symbols.{source}"] = ",".join(symbols)
        return measures
