"""A child's lifecycle: the table in ``supervisor.lifecycle`` (pure, no Runtime), and the order
in which the supervisor moves a cell and publishes the event that announces it (a
subscriber that reads the tree inside its callback sees the state the event names)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor import (
    Backoff,
    ChildSpec,
    ChildState,
    EventKind,
    EventRecorder,
    Intensity,
    ManualClock,
    RestartType,
    Runtime,
    SupervisedActor,
    SupervisionEvent,
    SupervisorSpec,
    TreeNode,
)
from supervisor.lifecycle import LIFECYCLE, IllegalTransition, Lifecycle, next_state

WAIT = 10.0
S = ChildState
L = Lifecycle


# -- the table, pure -----------------------------------------------------------------------
def test_the_examples_in_the_docstring_hold() -> None:
    import doctest

    from supervisor import lifecycle
    result = doctest.testmod(lifecycle)
    assert result.failed == 0 and result.attempted > 0


def test_every_state_has_a_way_out_and_every_event_is_used() -> None:
    assert {state for state, _ in LIFECYCLE} == set(ChildState)
    assert {event for _, event in LIFECYCLE} == set(Lifecycle)


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (S.STOPPED, L.START, S.STARTING),
        (S.STARTING, L.STARTED, S.RUNNING),
        (S.STARTING, L.START_FAILED, S.RESTARTING),
        (S.RUNNING, L.CRASH, S.CRASHED),
        (S.CRASHED, L.WAIT, S.RESTARTING),
        (S.CRASHED, L.STOP, S.STOPPED),
        (S.RESTARTING, L.START, S.STARTING),
        (S.RUNNING, L.TERMINATE, S.TERMINATED),
        (S.TERMINATED, L.START, S.STARTING),
    ],
)
def test_the_table_moves_a_child(state: ChildState, event: Lifecycle, after: ChildState) -> None:
    assert next_state(state, event) is after


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.STOPPED, L.CRASH),  # nothing runs that could crash
        (S.RESTARTING, L.CRASH),
        (S.RUNNING, L.STARTED),  # started only after a start
        (S.STOPPED, L.START_FAILED),
        (S.CRASHED, L.START),  # a crash is decided (restart or stop) before a new start
        (S.CRASHED, L.TERMINATE),
        (S.TERMINATED, L.STOP),  # stopped by hand stays so until started again
        (S.STARTING, L.TERMINATE),
    ],
)
def test_an_event_the_table_does_not_allow_raises(state: ChildState, event: Lifecycle) -> None:
    with pytest.raises(IllegalTransition, match=f"{event.value} is not allowed") as err:
        next_state(state, event, "w")
    assert (err.value.child, err.value.state, err.value.event) == ("w", state, event)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(Lifecycle)), max_size=40))
def test_any_walk_follows_the_table_and_never_skips_a_start(events: list[Lifecycle]) -> None:
    """RUNNING only right after STARTING, CRASHED only from RUNNING; an illegal event
    raises and leaves the state as it was."""
    state = S.STOPPED
    for event in events:
        try:
            after = next_state(state, event)
        except IllegalTransition:
            assert (state, event) not in LIFECYCLE
            continue
        if after is S.RUNNING:
            assert state is S.STARTING
        if after is S.CRASHED:
            assert state is S.RUNNING
        if state is S.TERMINATED:
            assert after in (S.STARTING, S.RESTARTING, S.TERMINATED)
        state = after


# -- the order of state and event, with a Runtime --------------------------------------------
@dataclass(frozen=True)
class Lost:
    """A tell the worker fails on."""


class Hold:
    """Makes the worker block in its handler until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


class Worker(SupervisedActor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Lost):
            raise RuntimeError("lost on purpose")
        if isinstance(message, Hold):
            message.entered.set()
            message.release.wait(WAIT)
            return None
        if message == "ping":
            return self.ctx.incarnation
        return super().on_receive(message)


def _spec(backoff: Backoff, **child: Any) -> SupervisorSpec:
    return SupervisorSpec(
        intensity=Intensity(max_restarts=20, within_seconds=60),
        backoff=backoff,
        children=(ChildSpec(id="w", factory=Worker, **child),),
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for rt in made:
        rt.stop()


def _node(rt: Runtime, name: str) -> TreeNode:
    tree = rt.tree()
    assert tree is not None
    return next(n for n in tree.walk() if n.name == name)


class TreeOnEvent:
    """Reads the tree (and the clock's timers) inside the subscriber callback, as an
    observer would, for each event of ``kinds`` about ``actor``."""

    def __init__(self, rt: Runtime, clock: ManualClock, actor: str, *kinds: EventKind) -> None:
        self.seen: list[tuple[SupervisionEvent, TreeNode, list[float]]] = []
        self._rt, self._clock, self._actor, self._kinds = rt, clock, actor, kinds
        rt.events.subscribe(self._on_event)

    def _on_event(self, event: SupervisionEvent) -> None:
        if event.kind in self._kinds and event.actor == self._actor:
            self.seen.append((event, _node(self._rt, self._actor), self._clock.pending()))


def _runtime(runtimes: list[Runtime], clock: ManualClock) -> Runtime:
    rt = Runtime(clock=clock, ask_timeout=WAIT, monitor_interval=0)
    runtimes.append(rt)
    return rt


def test_a_reader_told_crashed_sees_the_child_crashed(
    runtimes: list[Runtime], clock: ManualClock
) -> None:
    spec = _spec(Backoff(initial=0, jitter=0))
    rt = _runtime(runtimes, clock)
    rec = EventRecorder(rt.events)
    seen = TreeOnEvent(rt, clock, "w", EventKind.CRASHED)
    rt.start(spec)
    rt.tell("w", Lost())
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    [(event, node, _)] = seen.seen
    assert event.kind is EventKind.CRASHED
    assert node.state == ChildState.CRASHED.value  # not "running": its instance is gone
    assert node.last_error == "RuntimeError: lost on purpose"
    assert node.incarnation == 1


def test_a_reader_told_restarting_finds_the_timer_scheduled(
    runtimes: list[Runtime], clock: ManualClock
) -> None:
    spec = _spec(Backoff(initial=3, jitter=0))
    rt = _runtime(runtimes, clock)
    rec = EventRecorder(rt.events)
    seen = TreeOnEvent(rt, clock, "w", EventKind.RESTARTING)
    rt.start(spec)
    rt.tell("w", Lost())
    rec.wait_for(EventKind.RESTARTING, "w", timeout=WAIT)
    [(event, node, pending)] = seen.seen
    assert event.delay == 3
    assert node.state == ChildState.RESTARTING.value
    assert pending == [3.0]  # the backoff timer is armed when the event is published
    clock.advance(3)
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    assert rt.ask("w", "ping", timeout=WAIT) == 2


def test_the_message_a_child_failed_on_is_a_dead_letter_with_its_type(
    runtimes: list[Runtime], clock: ManualClock
) -> None:
    spec = _spec(Backoff(initial=0, jitter=0))
    rt = _runtime(runtimes, clock)
    rec = EventRecorder(rt.events)
    rt.start(spec)
    rt.tell("w", Lost())
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    [dead] = rec.of(EventKind.DEAD_LETTER, "w")
    assert (dead.message_type, dead.count) == ("Lost", 1)
    assert "<Lost>" in dead.describe()
    assert rt.dead_letters == 1  # still counted

    with pytest.raises(RuntimeError, match="lost on purpose"):
        rt.ask("w", Lost(), timeout=WAIT)  # an ask's failure goes to its caller: not lost
    rec.wait_for(EventKind.RESTARTED, "w", count=2, timeout=WAIT)
    assert len(rec.of(EventKind.DEAD_LETTER, "w")) == 1
    assert rt.dead_letters == 1


def test_a_hung_handler_reaches_the_supervisor_which_records_it(
    runtimes: list[Runtime], clock: ManualClock
) -> None:
    spec = _spec(Backoff(initial=0, jitter=0), handler_deadline=5)
    rt = _runtime(runtimes, clock)
    rec = EventRecorder(rt.events)
    seen = TreeOnEvent(rt, clock, "w", EventKind.HUNG)
    rt.start(spec)
    hold = Hold()
    rt.tell("w", hold)
    assert hold.entered.wait(WAIT)
    clock.advance(6)
    assert rt.check_hung() == ["w"]
    assert rt.check_hung() == []  # reported once, though its supervisor may not have it yet
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    hold.release.set()
    [(_, node, _)] = seen.seen
    assert node.state == ChildState.CRASHED.value
    assert (node.last_error or "").startswith("HandlerTimeout")
    [dead] = rec.of(EventKind.DEAD_LETTER, "w")
    assert dead.message_type == "Hold"


class Quitter(Worker):
    def on_receive(self, message: Any) -> Any:
        if message == "quit":
            self.stop()  # a normal exit of the child's own
            return None
        return super().on_receive(message)


@pytest.mark.parametrize(("restart", "then"), [
    (RestartType.PERMANENT, ChildState.RESTARTING), (RestartType.TRANSIENT, ChildState.STOPPED)])
def test_a_reader_told_exited_sees_the_child_gone(
    runtimes: list[Runtime], clock: ManualClock, restart: RestartType, then: ChildState
) -> None:
    spec = SupervisorSpec(intensity=Intensity(max_restarts=20, within_seconds=60),
                          backoff=Backoff(initial=3, jitter=0),
                          children=(ChildSpec(id="w", factory=Quitter, restart=restart),))
    rt = _runtime(runtimes, clock)
    rec = EventRecorder(rt.events)
    seen = TreeOnEvent(rt, clock, "w", EventKind.EXITED)
    rt.start(spec)
    rt.tell("w", "quit")
    rec.wait_for(EventKind.EXITED, "w", timeout=WAIT)
    [(_, node, _)] = seen.seen
    assert node.state == then.value  # not "running": its instance has ended


@pytest.mark.parametrize("how", ["restart", "new settings"])
def test_a_reader_told_stopped_by_a_restart_sees_it_not_running(
    runtimes: list[Runtime], clock: ManualClock, how: str
) -> None:
    rt = _runtime(runtimes, clock)
    rec = EventRecorder(rt.events)
    seen = TreeOnEvent(rt, clock, "w", EventKind.STOPPED)
    rt.start(_spec(Backoff(initial=0, jitter=0)))
    if how == "restart":
        rt.restart_child("w", timeout=WAIT)
    else:
        rt.replace_child(ChildSpec(id="w", factory=Worker, settings={"new": 1}), timeout=WAIT)
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    [(_, node, _)] = seen.seen
    assert node.state == ChildState.RESTARTING.value  # stopped, on its way back
    assert rt.ask("w", "ping", timeout=WAIT) == 2
