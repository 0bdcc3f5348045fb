"""EventLog: an actor that writes every supervision event to the log."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from supervisor.actor import SupervisedActor
from supervisor.error_handler import Severity
from supervisor.events import Subscription, SupervisionEvent

__all__ = ["EventLog"]


class EventLog(SupervisedActor):
    """Owns the subscription that turns supervision events into log lines.

    Events reach it by message, so logging happens in its own thread, never in the
    supervisor that published the event. While it restarts, events wait in its mailbox.
    """

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        logger: str = "botvisor.events"
        min_severity: str = Field("info", pattern="^(info|warning|error|critical)$")

    def __init__(self, settings: EventLog.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or EventLog.Settings()
        self._log = logging.getLogger(self.settings.logger)
        self._min = Severity.parse(self.settings.min_severity)
        self._sub: Subscription | None = None
        self.logged = 0

    def on_start(self) -> None:
        name = self.ctx.name
        try_tell = self.ctx.try_tell

        def forward(event: SupervisionEvent) -> None:
            try_tell(name, event)

        self._sub = self.ctx.events.subscribe(forward)

    def on_stop(self) -> None:
        self._unsubscribe()

    def on_failure(self, *exc_info: Any) -> None:
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SupervisionEvent):
            if message.severity >= self._min:
                self._log.log(int(message.severity), "%s", message.describe())
                self.logged += 1
            return None
        return super().on_receive(message)
