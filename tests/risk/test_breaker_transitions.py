"""The breaker's transition table (actors/risk/transitions.py), pure: no runtime."""

from __future__ import annotations

import itertools

import pytest

from actors.risk.contract import BreakerState
from actors.risk.transitions import TABLE, BreakerEvent, IllegalTransition, allowed, next_state

pytestmark = pytest.mark.unit

S = BreakerState
E = BreakerEvent


@pytest.mark.parametrize(("state", "event", "target", "manual"), [
    (S.CLOSED, E.TRIP, S.OPEN, False),
    (S.HALF_OPEN, E.TRIP, S.OPEN, False),
    (S.OPEN, E.RECOVERY_TIMEOUT, S.HALF_OPEN, False),
    (S.HALF_OPEN, E.PROBES_PASSED, S.CLOSED, False),
    (S.HALF_OPEN, E.RESTARTED_HALF_OPEN, S.OPEN, False),
    (S.OPEN, E.STATE_LOST, S.OPEN, True),
    (S.HALTED, E.FORCE_OPEN, S.OPEN, True),
    (S.HALTED, E.FORCE_CLOSE, S.CLOSED, False),
    (S.CLOSED, E.HALT, S.HALTED, True),
])
def test_the_table_moves_each_state_by_its_events(
        state: BreakerState, event: BreakerEvent, target: BreakerState, manual: bool) -> None:
    rule = next_state(state, event, manual=False)
    assert (rule.target, rule.manual) == (target, manual)


@pytest.mark.parametrize(("state", "event"), [
    (S.OPEN, E.TRIP),  # already refusing new risk: no second trip
    (S.HALTED, E.TRIP),
    (S.CLOSED, E.RECOVERY_TIMEOUT),
    (S.HALF_OPEN, E.RECOVERY_TIMEOUT),
    (S.OPEN, E.PROBES_PASSED),  # a late probe result after a trip closes nothing
    (S.CLOSED, E.PROBES_PASSED),
    (S.HALTED, E.PROBES_PASSED),
    (S.OPEN, E.RESTARTED_HALF_OPEN),
    (S.CLOSED, E.STATE_LOST),
])
def test_an_event_the_table_does_not_allow_raises(state: BreakerState,
                                                  event: BreakerEvent) -> None:
    with pytest.raises(IllegalTransition, match=f"{event.value} is not allowed from"):
        next_state(state, event, manual=False)


def test_an_open_set_by_hand_does_not_recover_by_the_clock() -> None:
    with pytest.raises(IllegalTransition, match="waits for the operator"):
        next_state(S.OPEN, E.RECOVERY_TIMEOUT, manual=True)


def test_an_open_a_level_trigger_holds_does_not_recover_by_the_clock() -> None:
    with pytest.raises(IllegalTransition, match="a level trigger holds"):
        next_state(S.OPEN, E.RECOVERY_TIMEOUT, manual=False, holding=True)
    assert next_state(S.OPEN, E.RECOVERY_TIMEOUT, manual=False, holding=False).target \
        is S.HALF_OPEN
    # the other events are not held back by a level: a trip, the operator
    assert next_state(S.CLOSED, E.TRIP, manual=False, holding=True).target is S.OPEN
    assert next_state(S.OPEN, E.FORCE_CLOSE, manual=False, holding=True).target is S.CLOSED


def test_halted_is_left_only_by_the_operator() -> None:
    leaving = {rule.event for rule in TABLE if S.HALTED in rule.sources
               and rule.target is not S.HALTED}
    assert leaving == {E.FORCE_OPEN, E.FORCE_CLOSE}
    assert not allowed(S.HALTED, S.HALF_OPEN)
    assert allowed(S.OPEN, S.HALF_OPEN)


def test_each_state_and_event_has_at_most_one_rule() -> None:
    keys = [(source, rule.event) for rule in TABLE for source in rule.sources]
    assert len(keys) == len(set(keys))


def test_the_examples_in_the_docstrings_hold() -> None:
    import doctest

    from actors.risk import contract, transitions
    for module in (transitions, contract):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_permits_agrees_with_next_state_everywhere() -> None:
    from actors.risk.transitions import permits
    for state in S:
        for event in E:
            for manual, holding in itertools.product((False, True), repeat=2):
                try:
                    next_state(state, event, manual=manual, holding=holding)
                    applies = True
                except IllegalTransition:
                    applies = False
                assert permits(state, event, manual=manual, holding=holding) is applies, \
                    (state, event, manual, holding)
