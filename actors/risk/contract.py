"""The risk context's contract: what the circuit breaker accepts besides the measurements
other contexts send it (``EquitySample``, ``MarketSamples``, ...), what it sends
(``BreakerTransition``) and the gate it publishes.

:class:`BreakerGate` is immutable and read lock-free: the breaker publishes a new one on
every transition and the executor calls :meth:`BreakerGate.check` before every order (no
message, no I/O). HALF_OPEN probe slots come from an ``itertools.count`` shared by that
gate (atomic in CPython), so at most ``probes`` exposure-increasing orders pass per
HALF_OPEN period.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "ApiResult",
    "BreakerGate",
    "BreakerState",
    "BreakerStatus",
    "BreakerTransition",
    "ForceClose",
    "ForceOpen",
    "GetBreakerStatus",
    "OrderIntent",
    "Permission",
    "ProbeResult",
    "SampleResources",
    "gate_or_unknown",
]


@dataclass(frozen=True, slots=True)
class ApiResult:
    """The outcome of one call to the exchange."""

    ok: bool
    what: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of a HALF_OPEN probe order the executor was allowed to send."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SampleResources:
    """Timer message: sample the process's memory and CPU now."""


@dataclass(frozen=True, slots=True)
class ForceOpen:
    """Operator: open the breaker and keep it open until ForceClose."""

    by: str
    why: str


@dataclass(frozen=True, slots=True)
class ForceClose:
    """Operator: close the breaker (also ends a halt)."""

    by: str
    why: str


@dataclass(frozen=True, slots=True)
class GetBreakerStatus:
    """Ask for a BreakerStatus."""


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """The breaker's state, why, since when, and what its triggers measure now."""

    state: BreakerState
    reason: str
    by: str
    since: float
    manual: bool
    recovery_at: float | None
    trips_recently: int
    figures: tuple[tuple[str, str], ...]
    measures: dict[str, str]
    transitions: int


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """The circuit breaker changed state: from, to, why, and the figures that caused it."""

    previous: str
    state: str  # closed | open | half_open | halted
    reason: str
    figures: tuple[tuple[str, str], ...] = ()
    by: str = "breaker"
    at: float = 0.0


# -- the gate -----------------------------------------------------------------------------------
class BreakerState(enum.StrEnum):
    """CLOSED trades; OPEN lets only exposure-reducing orders through; HALF_OPEN also lets a
    few probes through; HALTED lets nothing through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What the executor is about to send. ``reduces_exposure`` is true only for orders that
    can only shrink a position (exits, stop-losses, take-profits)."""

    symbol: str
    reduces_exposure: bool


@dataclass(frozen=True, slots=True)
class Permission:
    """The breaker's answer; ``probe`` marks a HALF_OPEN trial order to report back on."""

    allowed: bool
    state: BreakerState
    reason: str
    probe: bool = False


@dataclass(frozen=True, slots=True)
class BreakerGate:
    """One immutable breaker state, as published by the breaker actor."""

    state: BreakerState
    reason: str = ""
    since: float = 0.0
    probes: int = 0
    _slots: itertools.count[int] = field(default_factory=itertools.count, compare=False)

    def continuing(self, previous: object) -> BreakerGate:
        """This gate, sharing ``previous``'s probe slots when both are the same HALF_OPEN
        period (same ``since``): a republish, or a restart of the breaker actor, must not
        hand out a fresh set of probes.

        >>> g = BreakerGate(BreakerState.HALF_OPEN, since=5.0, probes=1)
        >>> g.check(OrderIntent("X", False)).allowed
        True
        >>> again = BreakerGate(BreakerState.HALF_OPEN, "republished", 5.0, 1).continuing(g)
        >>> again.check(OrderIntent("X", False)).allowed
        False
        """
        if (isinstance(previous, BreakerGate) and self.state is BreakerState.HALF_OPEN
                and previous.state is BreakerState.HALF_OPEN and previous.since == self.since):
            return dataclasses.replace(self, _slots=previous._slots)
        return self

    def metrics(self) -> dict[str, float]:
        """Gauges for the metrics endpoint: the state as a number (see STATE_NUMBERS)."""
        return {"breaker_state": float(STATE_NUMBERS[self.state])}

    def check(self, intent: OrderIntent) -> Permission:
        state = self.state
        if state is BreakerState.CLOSED:
            return _CLOSED
        if state is BreakerState.HALTED:
            return Permission(False, state, f"halted: {self.reason}")
        if intent.reduces_exposure:
            return _REDUCES[state]
        if state is BreakerState.HALF_OPEN and next(self._slots) < self.probes:
            return Permission(True, state, "half-open probe", probe=True)
        return Permission(False, state, f"{state.value}: {self.reason}")


# the answers that do not depend on the gate's reason, made once (one per order otherwise)
_CLOSED = Permission(True, BreakerState.CLOSED, "closed")
_REDUCES = MappingProxyType({state: Permission(True, state, "reduces exposure")
                             for state in BreakerState})

# breaker_state on the metrics endpoint: higher means less trading allowed.
STATE_NUMBERS = MappingProxyType({
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
    BreakerState.HALTED: 3,
})


UNKNOWN = BreakerGate(BreakerState.OPEN, "no circuit breaker has published a state yet")


def gate_or_unknown(gate: object) -> BreakerGate:
    """The gate to check: the published one, or a fail-safe OPEN gate when there is none."""
    return gate if isinstance(gate, BreakerGate) else UNKNOWN
