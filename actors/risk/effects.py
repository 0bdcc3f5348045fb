"""What :class:`~actors.risk.machine.BreakerCore` tells its caller to do, in order.

The breaker actor carries them out with its state file, its timers and its peers; a
backtest applies the same ones in simulated time. An input that changes nothing returns
:data:`NOTHING` (the same empty tuple: no allocation on the per-sample path).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.common.messages import Alert
from actors.risk.contract import BreakerTransition

__all__ = ["NOTHING", "Effect", "RecoverAt", "Remember", "Tell", "Transitioned"]


@dataclass(frozen=True, slots=True)
class Transitioned:
    """The state changed: persist the record and ``transition`` (with an fsync) before
    anything else, publish the new gate, and send ``transition`` to the alerts actor."""

    transition: BreakerTransition


@dataclass(frozen=True, slots=True)
class Remember:
    """Save the record without an fsync (the running memory: a peak, a day, a stale feed, a
    good probe); ``publish``: the gate's reason changed, publish it too."""

    publish: bool = False


@dataclass(frozen=True, slots=True)
class RecoverAt:
    """Deliver :meth:`BreakerCore.recovery_due` with ``token`` at wall time ``wall`` (a later
    schedule, or any transition, makes an earlier token stale)."""

    wall: float
    token: int


@dataclass(frozen=True, slots=True)
class Tell:
    """Send ``alert`` to the alerts actor."""

    alert: Alert


Effect = Transitioned | Remember | RecoverAt | Tell
NOTHING: tuple[Effect, ...] = ()
