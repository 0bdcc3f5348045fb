"""One owner per cell: the root's cell is moved only by its root keeper, every other cell
only by its supervisor instance, on the thread that runs it (a shared one included).

The root failing (its intensity exceeded) while the runtime stops, a hang of the root's
handler reported while it stops, two stops at once and a stop from inside a handler: each
ends one way (one exit code and reason, one final event for the root, published once the
root is stopped and on the thread that owns it) with the tree stopped. A cell moved from
another thread raises ``NotOwner``.

Real actors and threads; nothing sleeps: the tests wait on events, barriers and futures
with timeouts, and the hang's deadline is read from a ManualClock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from supervisor import (
    Backoff,
    ChildSpec,
    ChildState,
    EventKind,
    EventRecorder,
    Intensity,
    ManualClock,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.cell import NotOwner
from supervisor.commands import StartChild
from supervisor.events import SupervisionEvent
from supervisor.faults import ActorFaults, FaultPlan
from supervisor.lifecycle import Lifecycle

WAIT = 10.0  # upper bound for any wait; never reached unless something is wrong
IMMEDIATE = Backoff(initial=0, jitter=0)
ROUNDS = 50


@dataclass(frozen=True, slots=True)
class Call:
    """Run ``fn`` in the handler."""

    fn: Callable[[], None]


@dataclass
class Gate:
    """Blocks whoever passes until ``release`` is set (bounded by ``limit``)."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    limit: float = 30.0

    def pass_(self) -> None:
        self.entered.set()
        self.release.wait(self.limit)


class Worker(SupervisedActor):
    """Crashes on "crash", runs a ``Call``; its on_stop passes its gate, if it has one."""

    def __init__(self, gate: Gate | None = None) -> None:
        super().__init__()
        self.gate = gate

    def on_stop(self) -> None:
        if self.gate is not None:
            self.gate.pass_()

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crashes on purpose")
        if isinstance(message, Call):
            message.fn()
            return None
        return message


def _check_hung(rt: Runtime) -> None:
    """What the monitor does on its tick: report the handlers past their deadline."""
    rt.check_hung()


def _built_after(gate: Gate) -> Worker:
    gate.pass_()
    return Worker()


class Owned:
    """The root's events as published: on which thread, and the root's state then."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lock = threading.Lock()
        self.seen: list[tuple[EventKind, str, int, ChildState]] = []
        rt.events.subscribe(self._on_event)

    def _on_event(self, event: SupervisionEvent) -> None:
        if event.actor != "root":
            return
        state = self.rt.cell("root").state
        with self._lock:
            self.seen.append((event.kind, event.reason, threading.get_ident(), state))

    def final(self) -> list[tuple[EventKind, str, ChildState]]:
        """The events that end the root: its stop, or its failure as the runtime saw it."""
        with self._lock:
            return [
                (kind, reason, state) for kind, reason, _, state in self.seen
                if kind is EventKind.STOPPED
                or (kind is EventKind.ESCALATED and reason.startswith("root supervisor"))
            ]

    def owner_threads(self) -> set[int]:
        """The threads that published the root's own lifecycle events (not the escalating
        supervisor's announcement of its intensity, which it makes itself)."""
        with self._lock:
            return {
                ident for kind, reason, ident, _ in self.seen
                if kind is not EventKind.ESCALATED or reason.startswith("root supervisor")
            }


def _tree(*children: ChildSpec, max_restarts: int = 5, clock: Any = None,
          chaos: FaultPlan | None = None) -> tuple[Runtime, Owned, EventRecorder]:
    rt = Runtime(clock=clock or ManualClock(), ask_timeout=WAIT, monitor_interval=0,
                 chaos=chaos)
    owned = Owned(rt)
    rec = EventRecorder(rt.events)
    rt.start(SupervisorSpec(intensity=Intensity(max_restarts=max_restarts, within_seconds=60),
                            backoff=IMMEDIATE, children=children),
             name="root")
    return rt, owned, rec


def _running(rt: Runtime) -> list[str]:
    tree = rt.tree()
    assert tree is not None
    return [n.name for n in tree.walk() if n.state == ChildState.RUNNING.value]


def _stopped(rt: Runtime) -> bool:
    return not _running(rt)


def _run_together(*fns: Callable[[], None]) -> list[threading.Thread]:
    """Start ``fns`` on threads of their own, released at once by a barrier."""
    barrier = threading.Barrier(len(fns))

    def run(fn: Callable[[], None]) -> None:
        barrier.wait(WAIT)
        fn()

    threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    return threads


def _joined(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} still running"


def _ended_one_way(rt: Runtime, owned: Owned, *, failed_reason: str) -> None:
    """One exit code and reason; one final event for the root, announcing the state it is
    in; all of the root's lifecycle events from one thread (its keeper)."""
    final = owned.final()
    assert len(final) == 1, final
    kind, reason, state = final[0]
    assert state is ChildState.STOPPED
    assert rt.cell("root").state is ChildState.STOPPED
    if rt.exit_code == 1:
        assert kind is EventKind.ESCALATED
        assert rt.exit_reason.startswith(f"root supervisor failed: {failed_reason}")
    else:
        assert (rt.exit_code, rt.exit_reason) == (0, "stopped")
        assert (kind, reason) == (EventKind.STOPPED, "runtime stopped")
    threads = owned.owner_threads()
    assert len(threads) == 1 and threading.get_ident() not in threads, threads


class StopSignal:
    """A fault plan that injects nothing: its ``release`` (called as the runtime's stop
    begins) tells the test the stop is under way."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def injector(self, name: str, *, is_supervisor: bool) -> ActorFaults | None:
        return None

    def release(self) -> None:
        self.released.set()


# -- the root fails while the runtime stops --------------------------------------------------
def test_the_root_failing_while_the_runtime_stops_ends_one_way() -> None:
    """The root exceeds its intensity (w crashed) and, while it is stopping its children
    (slow's on_stop holds it), the runtime is stopped: half the rounds the stop begins
    first, the other half the two race from a barrier."""
    for round_ in range(ROUNDS):
        gate = Gate()
        signal = StopSignal()
        rt, owned, rec = _tree(ChildSpec("slow", factory=partial(Worker, gate)),
                               ChildSpec("w", factory=Worker), max_restarts=0, chaos=signal)
        rt.tell("w", "crash")
        assert gate.entered.wait(WAIT)  # the root escalates: it is stopping slow
        if round_ % 2:
            threads = _run_together(rt.stop, gate.release.set)
        else:
            threads = _run_together(rt.stop)
            assert signal.released.wait(WAIT)
            gate.release.set()
        _joined(threads)
        _ended_one_way(rt, owned, failed_reason="RestartIntensityExceeded")
        assert rec.wait_until(partial(_stopped, rt), timeout=WAIT)
        assert rt.wait(timeout=0)
        rec.close()


# -- a hang of the root's handler reported while the runtime stops ----------------------------
def test_a_hang_of_the_roots_handler_reported_while_it_stops_ends_one_way() -> None:
    """The monitor reports the root's handler hung (it waits in a child's factory) once
    the stop has begun, or (every other round) racing it from a barrier."""
    for round_ in range(ROUNDS // 2):
        clock = ManualClock()
        signal = StopSignal()
        rt, owned, rec = _tree(ChildSpec("w", factory=Worker), clock=clock, chaos=signal)
        root = rt.cell("root")  # the root's spec has no deadline of its own: give it one
        root.spec = dataclasses.replace(root.spec, handler_deadline=1.0)
        gate = Gate()
        # The child's factory runs in the root's handler (StartChild): the root hangs there.
        late = ChildSpec("late", factory=partial(_built_after, gate))
        rt.ask_future("root", StartChild(late))
        assert gate.entered.wait(WAIT)
        clock.advance(2.0)
        if round_ % 2:
            stopping = _run_together(rt.stop, partial(_check_hung, rt))
            stopping[1].join(WAIT)
        else:
            stopping = _run_together(rt.stop)
            assert signal.released.wait(WAIT)  # the stop has begun
            _check_hung(rt)
        gate.release.set()
        _joined(stopping)
        _ended_one_way(rt, owned, failed_reason="HandlerTimeout")
        assert rec.wait_until(partial(_stopped, rt), timeout=WAIT)
        rec.close()


# -- two stops at once -----------------------------------------------------------------------
def test_stop_from_two_threads_returns_in_both_once_the_tree_is_stopped() -> None:
    gate = Gate()
    rt, owned, _ = _tree(ChildSpec("w", factory=lambda: Worker(gate)))
    seen: dict[str, list[str]] = {}
    calling = [threading.Event(), threading.Event()]

    def stop(i: int) -> None:
        calling[i].set()
        rt.stop()
        seen[f"caller {i}"] = _running(rt)  # what each caller finds when stop() returns

    threads = _run_together(lambda: stop(0), lambda: stop(1))
    assert gate.entered.wait(WAIT)  # the stop is under way: w's on_stop holds it
    assert all(c.wait(WAIT) for c in calling)
    gate.release.set()
    _joined(threads)
    assert seen == {"caller 0": [], "caller 1": []}
    _ended_one_way(rt, owned, failed_reason="")
    assert rt.cell("w").state is ChildState.STOPPED
    rt.stop()  # and a third, later, returns at once


# -- stop from inside an actor's handler ------------------------------------------------------
def test_stop_from_inside_an_actors_handler_stops_the_tree() -> None:
    rt, owned, rec = _tree(ChildSpec("w", factory=Worker, shutdown=0.2),
                           ChildSpec("other", factory=Worker))
    returned = threading.Event()

    def stop_from_handler() -> None:
        rt.stop()
        returned.set()

    rt.tell("w", Call(stop_from_handler))
    assert rt.wait(timeout=WAIT)
    assert returned.wait(WAIT)  # the handler's stop() came back: nothing deadlocked
    _ended_one_way(rt, owned, failed_reason="")
    assert not _running(rt)
    # w's own stop waited out its budget (its handler was the one stopping the tree)
    assert [e.actor for e in rec.of(EventKind.SHUTDOWN_TIMEOUT)] == ["w"]


def test_stop_from_the_keepers_own_path_does_not_wait_for_itself() -> None:
    rt, owned, _ = _tree(ChildSpec("w", factory=Worker), max_restarts=0)

    def on_event(event: SupervisionEvent) -> None:  # on the keeper: the root's failure
        if event.kind is EventKind.ESCALATED and event.reason.startswith("root supervisor"):
            rt.stop()

    rt.events.subscribe(on_event)
    rt.tell("w", "crash")
    assert rt.wait(timeout=WAIT)
    rt.stop()  # the one the subscriber handed over has run, or runs now
    _ended_one_way(rt, owned, failed_reason="RestartIntensityExceeded")
    assert rt.exit_code == 1 and not _running(rt)


# -- a cell moved from another thread raises -------------------------------------------------
def test_a_cell_moved_off_its_owners_thread_raises() -> None:
    rt, _, _ = _tree(ChildSpec("w", factory=Worker))
    try:
        for name in ("root", "w"):
            cell = rt.cell(name)
            with pytest.raises(NotOwner, match=name):
                cell.apply(Lifecycle.STOP)
            with pytest.raises(NotOwner, match=name):
                cell.record_error(RuntimeError("not mine"))
            assert cell.state is ChildState.RUNNING and cell.last_error is None
    finally:
        rt.stop()


def test_a_supervisor_given_up_as_hung_leaves_its_replacements_children_alone() -> None:
    """``sub`` hangs in a handler and is replaced; its replacement owns ``w`` from then on.
    When the old instance comes back and stops, it stops what it still owns (``late``,
    started in the handler that hung), not ``w``."""
    clock = ManualClock()
    gate = Gate()
    sub = SupervisorSpec(backoff=IMMEDIATE, children=(ChildSpec("w", factory=Worker),))
    rt, _, rec = _tree(ChildSpec("sub", supervisor=sub, handler_deadline=1.0), clock=clock)
    try:
        rt.ask_future("sub", StartChild(ChildSpec("late", factory=partial(_built_after, gate))))
        assert gate.entered.wait(WAIT)  # sub's handler hangs in late's factory
        old = [t for t in threading.enumerate() if t.name == "botvisor:sub#1"]
        assert len(old) == 1
        clock.advance(2.0)
        assert rt.check_hung() == ["sub"]
        rec.wait_for(EventKind.RESTARTED, "sub", timeout=WAIT)  # the replacement runs
        gate.release.set()  # the old instance comes back, finishes its handler and stops
        _joined(old)
        assert rt.cell("late").state is ChildState.STOPPED  # it stopped what it owned
        assert rt.cell("w").state is ChildState.RUNNING
        assert rt.ask("w", "ping", timeout=WAIT) == "ping"  # w is its replacement's still
        assert not rec.of(EventKind.STOPPED, "w")
    finally:
        gate.release.set()
        rt.stop()
