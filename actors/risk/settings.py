"""The breaker's rules as settings: the recovery timing and one section per trigger.

:class:`BreakerRules` is what :class:`~actors.risk.machine.BreakerCore` needs to run (no
file, no peer); the breaker actor's ``Settings`` add its state file and its peers to it, so
a backtest builds the core from the very section a config gives the actor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiErrorSettings",
    "BreakerRules",
    "DailyLossSettings",
    "DrawdownSettings",
    "ExposureSettings",
    "LiquiditySettings",
    "LossStreakSettings",
    "ResourceSettings",
    "StaleDataSettings",
    "VolatilitySettings",
]


class _Off(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


class DrawdownSettings(_Off):
    """``drawdown``: open when equity falls this far below its peak (``max_drawdown_percent``)."""

    max_percent: float = Field(10.0, gt=0, le=100)


class DailyLossSettings(_Off):
    """``daily_loss``: open when the day's loss reaches this percent of its starting equity."""

    max_percent: float = Field(15.0, gt=0, le=100)
    timezone: str = "UTC"


class ApiErrorSettings(_Off):
    """``api_errors``: error rate in a sliding window; failures in a row (``failure_threshold``)."""

    window_seconds: float = Field(300.0, gt=0)
    min_calls: int = Field(10, ge=1)
    max_error_rate: float = Field(0.5, gt=0, le=1)
    max_consecutive: int = Field(5, ge=0)  # the original bot's failure_threshold; 0 = off


class LossStreakSettings(_Off):
    """``consecutive_losses``: open after this many losing trades in a row."""

    max_losses: int = Field(5, ge=1)


class VolatilitySettings(_Off):
    """``volatility``: realised volatility over a window of market time, in percent."""

    window_seconds: float = Field(3600.0, gt=0)
    max_percent: float = Field(8.0, gt=0)
    min_samples: int = Field(10, ge=2)


class LiquiditySettings(_Off):
    """``liquidity``: traded volume floor for symbols we hold."""

    min_volume: float = Field(1000.0, ge=0)


class ExposureSettings(_Off):
    """``exposure``: gross exposure over equity, in total and per symbol."""

    max_gross_percent: float = Field(100.0, gt=0)
    max_symbol_percent: float = Field(35.0, gt=0)


class ResourceSettings(_Off):
    """``resources``: process memory and CPU, sampled with psutil off the order path."""

    interval_seconds: float = Field(5.0, gt=0)
    max_rss_mb: float = Field(1024.0, gt=0)
    max_cpu_percent: float = Field(95.0, gt=0)
    sustain_samples: int = Field(6, ge=1)


class StaleDataSettings(_Off):
    """``stale_data``: held open while a live feed reports no closed candle for its
    ``stale_after`` timeframes (the feed's setting; it sends ``FeedHealth``)."""


class BreakerRules(BaseModel):
    """The recovery timing (a trip's timeout grows by ``timeout_multiplier`` for each trip
    in the last ``trip_memory_seconds``, up to ``max_recovery_timeout``), the HALF_OPEN
    probes, and the triggers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recovery_timeout: float = Field(300.0, gt=0)
    max_recovery_timeout: float = Field(3600.0, gt=0)
    timeout_multiplier: float = Field(2.0, ge=1)
    trip_memory_seconds: float = Field(86400.0, gt=0)
    half_open_max_calls: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)
    drawdown: DrawdownSettings = DrawdownSettings()
    daily_loss: DailyLossSettings = DailyLossSettings()
    api_errors: ApiErrorSettings = ApiErrorSettings()
    consecutive_losses: LossStreakSettings = LossStreakSettings()
    volatility: VolatilitySettings = VolatilitySettings()
    liquidity: LiquiditySettings = LiquiditySettings()
    exposure: ExposureSettings = ExposureSettings()
    resources: ResourceSettings = ResourceSettings()
    stale_data: StaleDataSettings = StaleDataSettings()
