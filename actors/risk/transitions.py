"""The circuit breaker's state machine as one table: which event moves which state where.

The breaker actor (``breaker.py``) is the table's only user: every change of its state goes
through :func:`next_state`, and an event the table does not allow from the current state
raises :class:`IllegalTransition`. Pure: no actor, no clock, no I/O.

>>> next_state(BreakerState.OPEN, BreakerEvent.RECOVERY_TIMEOUT, manual=False).target
<BreakerState.HALF_OPEN: 'half_open'>
>>> next_state(BreakerState.HALTED, BreakerEvent.TRIP, manual=True)
Traceback (most recent call last):
...
actors.risk.transitions.IllegalTransition: breaker: trip is not allowed from halted
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from actors.risk.contract import BreakerState

__all__ = ["TABLE", "BreakerEvent", "IllegalTransition", "Rule", "allowed", "next_state", "permits"]

_C, _O, _H, _X = (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN,
                  BreakerState.HALTED)
_ANY = frozenset(BreakerState)


class BreakerEvent(enum.StrEnum):
    """What can move the breaker."""

    TRIP = "trip"  # a trigger fired, or a probe failed
    RECOVERY_TIMEOUT = "recovery_timeout"  # the timer after a trip ran out
    PROBES_PASSED = "probes_passed"  # success_threshold good probes in HALF_OPEN
    RESTARTED_HALF_OPEN = "restarted_half_open"  # a new process found HALF_OPEN
    STATE_LOST = "state_lost"  # its file was lost while the ledger has history
    FORCE_OPEN = "force_open"  # the operator (`botvisor breaker open`)
    FORCE_CLOSE = "force_close"  # the operator (`botvisor breaker close`)
    HALT = "halt"  # the operator, or the position actor on an impossible book


class IllegalTransition(RuntimeError):
    """An event the table does not allow from the breaker's current state."""


@dataclass(frozen=True, slots=True)
class Rule:
    """``event`` moves a breaker in one of ``sources`` to ``target`` when ``guard`` (given
    whether the current state was set by hand, and whether a level trigger holds) allows;
    ``manual``: the new state is held until an operator (or a new manual event) changes
    it."""

    sources: frozenset[BreakerState]
    event: BreakerEvent
    target: BreakerState
    manual: bool = False
    guard: Callable[[bool, bool], bool] | None = None
    why: str = ""


def _not_manual_nor_held(manual: bool, holding: bool) -> bool:
    return not manual and not holding


TABLE: tuple[Rule, ...] = (
    Rule(frozenset({_C, _H}), BreakerEvent.TRIP, _O,
         why="OPEN and HALTED do not trip again: they already refuse new risk"),
    Rule(frozenset({_O}), BreakerEvent.RECOVERY_TIMEOUT, _H, guard=_not_manual_nor_held,
         why="an OPEN set by hand (or for lost state) waits for the operator, and one a "
             "level trigger holds (daily loss, volatility, stale data, ...) stays OPEN"),
    Rule(frozenset({_H}), BreakerEvent.PROBES_PASSED, _C),
    Rule(frozenset({_H}), BreakerEvent.RESTARTED_HALF_OPEN, _O,
         why="the probes the last process sent are not known"),
    Rule(frozenset({_O}), BreakerEvent.STATE_LOST, _O, manual=True,
         why="held open (exits only) until an operator closes it"),
    Rule(_ANY, BreakerEvent.FORCE_OPEN, _O, manual=True),
    Rule(_ANY, BreakerEvent.FORCE_CLOSE, _C),
    Rule(_ANY, BreakerEvent.HALT, _X, manual=True),
)

_BY_KEY = MappingProxyType({(source, rule.event): rule for rule in TABLE
                            for source in rule.sources})


def next_state(state: BreakerState, event: BreakerEvent, *, manual: bool,
               holding: bool = False) -> Rule:
    """The rule that ``event`` applies to a breaker in ``state`` (``manual``: that state was
    set by hand; ``holding``: a level trigger holds the breaker OPEN); raises
    :class:`IllegalTransition` when the table has none or its guard refuses."""
    rule = _BY_KEY.get((state, event))
    if rule is None:
        raise IllegalTransition(f"breaker: {event.value} is not allowed from {state.value}")
    if rule.guard is not None and not rule.guard(manual, holding):
        raise IllegalTransition(f"breaker: {event.value} is not allowed from "
                                f"{state.value} now: {rule.why}")
    return rule


def permits(state: BreakerState, event: BreakerEvent, *, manual: bool,
            holding: bool = False) -> bool:
    """Whether :func:`next_state` would apply ``event`` now (the actor's guard before it
    acts on an input: a probe result in OPEN, a stale recovery timer)."""
    rule = _BY_KEY.get((state, event))
    return rule is not None and (rule.guard is None or rule.guard(manual, holding))


def allowed(previous: BreakerState, state: BreakerState) -> bool:
    """Whether some event of the table moves ``previous`` to ``state``."""
    return any(previous in rule.sources and rule.target is state for rule in TABLE)
