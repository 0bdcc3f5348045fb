"""The executor's held signals (actors/execution/held.py), pure: arrival order, the bound,
a predecessor's hand-over ahead, the re-insert after a duplicate check, and the release in
order with a symbol's later signals behind its first that waits. No runtime."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.common.messages import Side
from actors.execution.held import HeldSignals
from actors.execution.orders import Request
from actors.strategies.contract import Signal

pytestmark = pytest.mark.unit


def sig(name: str, symbol: str = "AAA") -> Signal:
    return Signal(name, "t", symbol, Side.BUY, 1.0, 60.0, "a test")


def hold(held: HeldSignals, *signals: Signal) -> None:
    for s in signals:
        assert held.hold(held.arrive(), s)


def ids(held: HeldSignals) -> list[str]:
    return [r.signal_id for _, r in held]


def test_signals_are_held_in_arrival_order_up_to_the_bound() -> None:
    held = HeldSignals(bound=2)
    hold(held, sig("a"), sig("b"))
    assert not held.hold(held.arrive(), sig("c"))  # the bound: not held
    assert ids(held) == ["a", "b"] and held.signal_ids() == ("a", "b")
    assert held.arrivals == 3 and len(held) == 2
    assert held.holds("AAA") and not held.holds("BBB")


def test_a_hand_over_goes_ahead_of_what_this_instance_received() -> None:
    held = HeldSignals(bound=10)
    hold(held, sig("mine-1"), sig("mine-2"))
    held.handoff([sig("old-1"), sig("old-2")])
    assert ids(held) == ["old-1", "old-2", "mine-1", "mine-2"]
    seqs = [seq for seq, _ in held]
    assert seqs == sorted(seqs)  # a re-insert later keeps to this order
    held.reinsert(2, sig("checked"))  # arrival 2: after what came before it or with it
    assert ids(held) == ["old-1", "old-2", "mine-1", "mine-2", "checked"]


def test_a_hand_over_to_an_instance_holding_nothing_keeps_its_order() -> None:
    held = HeldSignals(bound=10)
    held.arrive()
    held.handoff([sig("x"), sig("y")])
    hold(held, sig("z"))
    assert ids(held) == ["x", "y", "z"]


def test_a_signal_checked_new_goes_back_in_its_arrival_order() -> None:
    held = HeldSignals(bound=10)
    first, second, third = held.arrive(), held.arrive(), held.arrive()
    held.hold(first, sig("a"))
    held.hold(third, sig("c"))
    held.reinsert(second, sig("b"))  # its duplicate check said new
    assert ids(held) == ["a", "b", "c"]


def test_release_lets_go_in_order_and_keeps_a_symbols_later_signals_behind_its_first() -> None:
    held = HeldSignals(bound=10)
    hold(held, sig("a1", "AAA"), sig("b1", "BBB"), sig("a2", "AAA"), sig("b2", "BBB"))
    asked: list[str] = []

    def consider(seq: int, request: Request) -> bool:
        asked.append(request.signal_id)
        return request.signal_id == "a1"  # a1 must still wait

    held.release(consider)
    assert asked == ["a1", "b1", "b2", "a1"]  # a2 never asked: behind a1; a 2nd round
    assert ids(held) == ["a1", "a2"]


def test_release_rounds_take_what_a_decision_put_back() -> None:
    held = HeldSignals(bound=10)
    hold(held, sig("a"))
    put_back: list[str] = []

    def consider(seq: int, request: Request) -> bool:
        put_back.append(request.signal_id)
        if request.signal_id == "a":
            held.reinsert(seq, sig("a-again"))
        return False

    held.release(consider)
    assert put_back == ["a", "a-again"] and len(held) == 0


def test_a_decision_that_raises_costs_only_itself() -> None:
    held = HeldSignals(bound=10)
    hold(held, sig("a", "AAA"), sig("bad", "BBB"), sig("c", "CCC"))

    def consider(seq: int, request: Request) -> bool:
        if request.signal_id == "bad":
            raise RuntimeError("a bug")
        return True

    with pytest.raises(RuntimeError):
        held.release(consider)
    assert ids(held) == ["a", "c"]


def test_pass_on_merges_the_signals_under_a_check_by_arrival() -> None:
    held = HeldSignals(bound=10)
    hold(held, sig("a"), sig("b"))  # arrivals 1, 2
    checks = [(0, sig("checked-0")), (2, sig("checked-2"))]
    assert [r.signal_id for r in held.pass_on(checks)] == ["checked-0", "a", "b",
                                                           "checked-2"]
    assert len(held) == 0


def test_the_version_changes_with_what_is_held_only() -> None:
    held = HeldSignals(bound=10)
    v = held.version
    hold(held, sig("a"))
    assert held.version != v
    v = held.version
    held.release(lambda seq, request: True)  # nothing let go
    assert held.version == v
    held.release(lambda seq, request: False)
    assert held.version != v and len(held) == 0


@given(st.lists(st.tuples(st.sampled_from("ABC"), st.booleans()), max_size=30))
def test_release_asks_in_arrival_order_and_never_past_a_symbols_first_waiter(
        signals: list[tuple[str, bool]]) -> None:
    """Each held signal of symbol s, flagged to wait or not: one round asks them in
    arrival order, none of a symbol after its first that waits; what stays is exactly each
    symbol's signals from its first waiter on, in order."""
    held = HeldSignals(bound=100)
    requests = [sig(f"{i}", symbol) for i, (symbol, _) in enumerate(signals)]
    waits = {r.signal_id: w for r, (_, w) in zip(requests, signals, strict=True)}
    hold(held, *requests)
    asked: list[str] = []

    def consider(seq: int, request: Request) -> bool:
        asked.append(request.signal_id)
        return waits[request.signal_id]

    held.release(consider)
    seen_wait: set[str] = set()
    expected_asked: list[str] = []
    expected_kept: list[str] = []
    for r in requests:
        if r.symbol in seen_wait:
            expected_kept.append(r.signal_id)
            continue
        expected_asked.append(r.signal_id)
        if waits[r.signal_id]:
            seen_wait.add(r.symbol)
            expected_kept.append(r.signal_id)
    assert asked[:len(expected_asked)] == expected_asked  # (a 2nd round asks the waiters)
    assert ids(held) == expected_kept
