"""Small actors that config files in tests refer to by import path."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from supervisor import SupervisedActor


class Ticker(SupervisedActor):
    """Counts ticks it schedules for itself."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        interval: float = 0.05

    def __init__(self, settings: Ticker.Settings) -> None:
        super().__init__()
        self.interval = settings.interval
        self.ticks = 0

    def on_start(self) -> None:
        self.ctx.schedule(self.interval, "tick")

    def on_receive(self, message: Any) -> Any:
        if message == "tick":
            self.ticks += 1
            self.ctx.schedule(self.interval, "tick")
        return self.ticks


class CrashOnStart(SupervisedActor):
    """Fails every start, so its supervisor runs out of restart intensity."""

    def on_start(self) -> None:
        raise RuntimeError("cannot start (on purpose)")


class Echo(SupervisedActor):
    """Answers any message with its configured label (to see which settings it runs with)."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        label: str = "echo"

    def __init__(self, settings: Echo.Settings) -> None:
        super().__init__()
        self.label = settings.label

    def on_receive(self, message: Any) -> Any:
        return (self.label, self.ctx.incarnation)
