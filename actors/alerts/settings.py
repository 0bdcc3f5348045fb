"""The alerts actor's settings: what each input's severity is, and where each severity goes.

Owns the severity names, the default severities of supervision events and of breaker
states, the ``routes`` and ``burst`` sections, and :class:`AlertsSettings`, every field of
an alerts child's ``settings`` (with their validation: the default severities merged under
the configured ones, channel names unique). ``AlertsActor.Settings`` is this model; the
actor reads it and nothing here reads anything else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actors.alerts.routing import ChannelSettings
from actors.common.settings_types import StatePath
from supervisor.events import EventKind

__all__ = [
    "DEFAULT_BREAKER_SEVERITIES",
    "DEFAULT_EVENT_SEVERITIES",
    "AlertsSettings",
    "BreakerState",
    "BurstModel",
    "RoutesModel",
    "SeverityName",
]

SeverityName = Literal["info", "warning", "error", "critical"]
BreakerState = Literal["closed", "open", "half_open", "halted"]

DEFAULT_EVENT_SEVERITIES: dict[EventKind, SeverityName | None] = {
    EventKind.STARTED: None,  # the event log already records every start
    EventKind.START_FAILED: "error",
    EventKind.CRASHED: "error",
    EventKind.RESUMED: "warning",
    EventKind.RESTARTING: None,  # "restarted" follows
    EventKind.RESTARTED: "warning",
    EventKind.ESCALATED: "critical",
    EventKind.FELL_BACK: "error",
    EventKind.PRIMARY_RESTORED: "info",
    EventKind.STOPPED: None,  # every actor at shutdown; the shutdown alert says it once
    EventKind.EXITED: "info",
    EventKind.HUNG: "error",
    EventKind.DEAD_LETTER: "warning",  # a flood is folded by the burst rule
    EventKind.SHUTDOWN_TIMEOUT: "error",
}

DEFAULT_BREAKER_SEVERITIES: dict[BreakerState, SeverityName | None] = {
    "open": "critical",
    "halted": "critical",
    "half_open": "warning",
    "closed": "info",
}


# -- settings ----------------------------------------------------------------------------------
class RoutesModel(BaseModel):
    """``routes``: the apprise tags each severity goes to; an empty list means the log only.

    The tag ``all`` reaches every channel.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    info: tuple[str, ...] = ()
    warning: tuple[str, ...] = ("ops",)
    error: tuple[str, ...] = ("ops",)
    critical: tuple[str, ...] = ("ops", "chat")


class BurstModel(BaseModel):
    """``burst``: more than ``max`` alerts of one key within ``window_seconds`` are folded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max: int = Field(5, ge=1)
    window_seconds: float = Field(60.0, gt=0)



class AlertsSettings(BaseModel):
    """The ``settings`` of an alerts child in ``config.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True  # the original bot's enable_notifications
    channels: tuple[ChannelSettings, ...] = ()
    routes: RoutesModel = RoutesModel()
    cooldown_seconds: float = Field(300.0, ge=0)
    burst: BurstModel | None = BurstModel()
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    fallback_file: StatePath | None = "state/alerts-fallback.jsonl"
    # alerts held in memory while the fallback file cannot be written, and how often
    # to try writing them again
    fallback_memory: int = Field(1000, ge=1)
    fallback_retry_seconds: float = Field(30.0, gt=0)
    events: dict[EventKind, SeverityName | None] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_SEVERITIES)
    )
    breaker: dict[BreakerState, SeverityName | None] = Field(
        default_factory=lambda: dict(DEFAULT_BREAKER_SEVERITIES)
    )
    fills: SeverityName | None = "info"
    keys: dict[str, SeverityName | None] = Field(default_factory=dict)
    shutdown_severity: SeverityName | None = "warning"
    title_prefix: str = "botvisor"
    logger: str = "botvisor.alerts"

    @field_validator("events", mode="after")
    @classmethod
    def _merge_events(
        cls, value: dict[EventKind, SeverityName | None]
    ) -> dict[EventKind, SeverityName | None]:
        return {**DEFAULT_EVENT_SEVERITIES, **value}

    @field_validator("breaker", mode="after")
    @classmethod
    def _merge_breaker(
        cls, value: dict[BreakerState, SeverityName | None]
    ) -> dict[BreakerState, SeverityName | None]:
        return {**DEFAULT_BREAKER_SEVERITIES, **value}

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsSettings:
        names = [c.name for c in self.channels]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"channel names must be unique; repeated: {repeated}")
        return self
