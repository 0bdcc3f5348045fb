"""Building a breaker under a runtime with a manual clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.risk.breaker import BreakerActor
from actors.risk.contract import BreakerGate
from supervisor import Backoff, ChildSpec, ManualClock, Runtime, SupervisorSpec
from tests.support.position_helpers import Inbox

OFF = {"enabled": False}
ALL_OFF: dict[str, Any] = {
    k: OFF
    for k in ("drawdown", "daily_loss", "api_errors", "consecutive_losses", "volatility",
              "liquidity", "exposure", "resources")
}


def breaker_settings(directory: Path, **overrides: Any) -> BreakerActor.Settings:
    # no ledger in these trees: a breaker with no state file starts CLOSED
    data: dict[str, Any] = {"database": str(directory / "breaker.db"), "ledger": None,
                            **ALL_OFF}
    data.update(overrides)
    return BreakerActor.Settings.model_validate(data)


def start_breaker(settings: BreakerActor.Settings, clock: ManualClock | None = None) -> Runtime:
    rt = Runtime(clock=clock or ManualClock(), monitor_interval=0)
    rt.start(
        SupervisorSpec(
            backoff=Backoff(initial=0, jitter=0),
            children=(
                ChildSpec("alerts", factory=Inbox),
                ChildSpec("breaker", factory=lambda: BreakerActor(settings)),
            ),
        )
    )
    return rt


def gate(rt: Runtime) -> BreakerGate:
    value = rt.peek("breaker")
    assert isinstance(value, BreakerGate)
    return value
