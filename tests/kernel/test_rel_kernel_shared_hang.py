"""A hung handler on a shared thread (``ChildSpec.thread``) costs only the hung actor.

When a handler on a shared thread runs past its ``handler_deadline``, the thread is
abandoned and a fresh one of the same name takes over every other mate's waiting turns:
the mates keep their mailboxes and state and are not restarted; only the hung actor is
(one ``hung`` failure). The same for an ``on_start`` that overran its start timeout.

Real actors and threads; deadlines are read from a ManualClock; each hang waits on a
threading.Event the test sets at teardown.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from supervisor import (
    Backoff,
    ChildInfo,
    ChildSpec,
    Directive,
    ErrorHandler,
    EventKind,
    EventRecorder,
    Intensity,
    ManualClock,
    Rule,
    Runtime,
    Severity,
    SupervisedActor,
    SupervisorSpec,
)

WAIT = 10.0  # upper bound for any wait; never reached unless something is wrong
IMMEDIATE = Backoff(initial=0, jitter=0)


@dataclass(frozen=True, slots=True)
class Note:
    text: str


@dataclass(frozen=True, slots=True)
class Hang:
    """Block the handler until the board is released; then try to touch the name again."""


@dataclass(frozen=True, slots=True)
class Who:
    pass


@dataclass(frozen=True, slots=True)
class Boom:
    pass


@dataclass(frozen=True, slots=True)
class Snap:
    """What a mate publishes: who it is, which instance, the notes it has taken."""

    name: str
    incarnation: int
    notes: tuple[str, ...]


class Board:
    """What the instances did, shared with the test across incarnations (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.release = threading.Event()  # set at teardown: ends every hang
        self._events: dict[tuple[str, str, int], threading.Event] = {}
        self._handled: list[tuple[str, int, Any]] = []
        self.hang_threads: dict[tuple[str, int], threading.Thread] = {}
        self.block_start: set[tuple[str, int]] = set()  # on_start blocks for these

    def event(self, what: str, name: str, incarnation: int) -> threading.Event:
        with self._lock:
            return self._events.setdefault((what, name, incarnation), threading.Event())

    def record(self, name: str, incarnation: int, message: Any) -> None:
        with self._lock:
            self._handled.append((name, incarnation, message))

    def handled(self, name: str, incarnation: int) -> list[Any]:
        with self._lock:
            return [m for n, i, m in self._handled if (n, i) == (name, incarnation)]


class Mate(SupervisedActor):
    """Takes notes and publishes them; ``Hang`` blocks until the board is released, then
    publishes and schedules a note, as a handler that comes back late would."""

    def __init__(self, board: Board) -> None:
        super().__init__()
        self.board = board
        self.notes: list[str] = []

    def _snap(self) -> Snap:
        return Snap(self.ctx.name, self.ctx.incarnation, tuple(self.notes))

    def on_start(self) -> None:
        name, inc = self.ctx.name, self.ctx.incarnation
        if (name, inc) in self.board.block_start:
            self.board.event("start_entered", name, inc).set()
            self.board.release.wait(60)
        self.ctx.publish(self._snap())

    def on_stop(self) -> None:
        self.board.event("stopped", self.ctx.name, self.ctx.incarnation).set()

    def on_receive(self, message: Any) -> Any:
        name, inc = self.ctx.name, self.ctx.incarnation
        self.board.record(name, inc, message)
        match message:
            case Note(text):
                self.notes.append(text)
                self.ctx.publish(self._snap())
            case Who():
                return self._snap()
            case Boom():
                raise RuntimeError("boom (on purpose)")
            case Hang():
                self.board.hang_threads[(name, inc)] = threading.current_thread()
                self.board.event("hang_entered", name, inc).set()
                self.board.release.wait(60)
                # Back, long after being given up: none of this may reach the replacement.
                self.notes.append("late")
                self.ctx.publish(Snap(name, inc, ("late",)))
                self.ctx.schedule(1.0, Note("from the hung instance's timer"))
                self.ctx.try_tell(name, Note("from the hung instance, by name"))
                try:
                    self.actor_ref.tell(Note("from the hung instance, by its ref"))
                except pykka.ActorDeadError:
                    self.board.record(name, inc, "its ref refused it")
        return None


class Tree:
    """A runtime with three mates a, b, c on one shared thread; always cleaned up."""

    def __init__(self, board: Board, *, start_timeout: float = 2.0,
                 backoff: Backoff = IMMEDIATE, error_handler: ErrorHandler | None = None
                 ) -> None:
        self.board = board
        self.clock = ManualClock()
        self.before = set(pykka.ActorRegistry.get_all())
        self.rt = Runtime(clock=self.clock, ask_timeout=WAIT, monitor_interval=0.0,
                          error_handler=error_handler)
        self.rec = EventRecorder(self.rt.events)
        self.rt.start(SupervisorSpec(
            intensity=Intensity(max_restarts=3, within_seconds=60),
            backoff=backoff,
            children=tuple(
                ChildSpec(name, factory=lambda: Mate(board), thread="pipeline",
                          handler_deadline=5.0, start_timeout=start_timeout)
                for name in ("a", "b", "c")
            ),
        ))

    def children(self) -> dict[str, ChildInfo]:
        """The root's view of its children; an ask, so also a barrier for the root."""
        return {info.id: info for info in self.rt.which_children("root", timeout=WAIT)}

    def ask(self, name: str) -> Snap:
        snap = self.rt.ask(name, Who(), timeout=WAIT)
        assert isinstance(snap, Snap)
        return snap

    def hang(self, name: str, incarnation: int) -> None:
        """Make ``name`` hang and be declared hung (the clock passes its deadline)."""
        self.rt.tell(name, Hang())
        assert self.board.event("hang_entered", name, incarnation).wait(WAIT)

    def declare_hung(self) -> list[str]:
        self.clock.advance(6.0)  # past handler_deadline (5 s)
        return self.rt.check_hung()

    def leaked(self) -> list[Any]:
        """pykka registrations left by this runtime."""
        return [ref for ref in pykka.ActorRegistry.get_all() if ref not in self.before]

    def close(self) -> None:
        self.board.release.set()
        self.rec.close()
        self.rt.stop()


@pytest.fixture
def tree() -> Iterator[Tree]:
    t = Tree(Board())
    try:
        yield t
    finally:
        t.close()


def _no_supervision_of(rec: EventRecorder, *names: str) -> None:
    kinds = (EventKind.CRASHED, EventKind.HUNG, EventKind.RESTARTING, EventKind.RESTARTED,
             EventKind.START_FAILED, EventKind.STOPPED)
    for name in names:
        got = [e.describe() for kind in kinds for e in rec.of(kind, name)]
        assert got == [], got


def test_a_hung_mate_is_replaced_and_its_thread_mates_go_on_untouched(tree: Tree) -> None:
    rt, rec = tree.rt, tree.rec
    rt.tell("b", Note("b1"))
    rt.tell("c", Note("c1"))
    tree.hang("a", 1)
    # Queued behind the hung handler, on the same thread:
    for i in (2, 3):
        rt.tell("b", Note(f"b{i}"))
        rt.tell("c", Note(f"c{i}"))
    rt.tell("a", Note("a-after"))  # for a: the replacement gets it

    assert tree.declare_hung() == ["a"]
    hung = rec.wait_for(EventKind.HUNG, "a", timeout=WAIT)
    assert "HandlerTimeout" in (hung[0].error or "")
    rec.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)

    # The mates kept their state and every message queued for them, in order.
    assert tree.ask("b") == Snap("b", 1, ("b1", "b2", "b3"))
    assert tree.ask("c") == Snap("c", 1, ("c1", "c2", "c3"))
    assert rt.peek("b") == Snap("b", 1, ("b1", "b2", "b3"))
    rt.tell("c", Note("c4"))
    assert tree.ask("c").notes == ("c1", "c2", "c3", "c4")
    # The replacement answers, with the message that waited behind the hang.
    assert tree.ask("a") == Snap("a", 2, ("a-after",))

    info = tree.children()
    assert (info["a"].restarts, info["b"].restarts, info["c"].restarts) == (1, 0, 0)
    assert {i.state for i in info.values()} == {"running"}
    assert rec.of(EventKind.START_FAILED) == []
    assert rec.of(EventKind.ESCALATED) == []
    assert rt.exit_code is None
    _no_supervision_of(rec, "b", "c")


def test_a_second_hang_on_the_fresh_thread_is_recovered_again(tree: Tree) -> None:
    rt, rec = tree.rt, tree.rec
    tree.hang("a", 1)
    assert tree.declare_hung() == ["a"]
    rec.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)
    assert tree.ask("a").incarnation == 2

    tree.hang("a", 2)  # now on the thread that took over
    rt.tell("b", Note("b1"))
    rt.tell("c", Note("c1"))
    assert tree.declare_hung() == ["a"]
    rec.wait_for(EventKind.RESTARTED, "a", count=2, timeout=WAIT)
    assert tree.ask("a").incarnation == 3
    assert tree.ask("b") == Snap("b", 1, ("b1",))
    assert tree.ask("c") == Snap("c", 1, ("c1",))

    first, second = tree.board.hang_threads[("a", 1)], tree.board.hang_threads[("a", 2)]
    assert first is not second
    assert first.name.startswith("botvisor:thread:pipeline")
    assert second.name.startswith("botvisor:thread:pipeline")
    info = tree.children()
    assert (info["a"].restarts, info["b"].restarts, info["c"].restarts) == (2, 0, 0)
    assert rec.of(EventKind.ESCALATED) == []
    _no_supervision_of(rec, "b", "c")


def test_a_hung_handler_that_returns_late_takes_no_more_messages_and_leaves_the_replacement_alone(
    tree: Tree,
) -> None:
    rt, rec, board = tree.rt, tree.rec, tree.board
    tree.hang("a", 1)
    for i in range(3):
        rt.tell("a", Note(f"n{i}"))
    assert tree.declare_hung() == ["a"]
    rec.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)
    assert tree.ask("a") == Snap("a", 2, ("n0", "n1", "n2"))

    board.release.set()  # the hung handler returns, publishes and schedules a timer
    assert board.event("stopped", "a", 1).wait(WAIT)
    hung_thread = board.hang_threads[("a", 1)]
    hung_thread.join(WAIT)
    assert not hung_thread.is_alive()  # the abandoned thread ends once it is back

    rt.tell("a", Note("n3"))
    tree.clock.advance(2.0)  # the late instance's timer would be due now
    assert tree.ask("a") == Snap("a", 2, ("n0", "n1", "n2", "n3"))
    assert rt.peek("a") == Snap("a", 2, ("n0", "n1", "n2", "n3"))
    assert board.handled("a", 1) == [Hang(), "its ref refused it"]  # nothing reached it
    assert tree.ask("b") == Snap("b", 1, ())
    assert tree.children()["a"].restarts == 1


def test_an_on_start_that_overruns_on_a_shared_thread_frees_its_mates_and_unregisters() -> None:
    board = Board()
    board.block_start.add(("a", 2))
    t = Tree(board, start_timeout=1.0)
    try:
        rt, rec = t.rt, t.rec
        rt.tell("a", Boom())  # a's second incarnation hangs in on_start
        assert board.event("start_entered", "a", 2).wait(WAIT)
        rt.tell("b", Note("b1"))
        failed = rec.wait_for(EventKind.START_FAILED, "a", timeout=WAIT)
        assert "did not finish within 1s" in (failed[0].error or "")
        rec.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)
        assert t.ask("a").incarnation == 3
        assert t.ask("b") == Snap("b", 1, ("b1",))
        assert t.ask("c") == Snap("c", 1, ())
        info = t.children()
        assert (info["b"].restarts, info["c"].restarts) == (0, 0)
        _no_supervision_of(rec, "b", "c")
    finally:
        t.rt.stop()
    assert t.leaked() == []  # nothing left registered: the hung start is still hung
    board.release.set()
    assert board.event("stopped", "a", 2).wait(WAIT)  # back late: it stops at once
    assert t.leaked() == []
    t.rec.close()


def test_an_on_start_that_overran_and_came_back_is_not_left_registered() -> None:
    """One actor on a shared thread; its start overruns, then returns before its restart."""
    board = Board()
    board.block_start.add(("a", 2))
    clock = ManualClock()
    before = set(pykka.ActorRegistry.get_all())
    rt = Runtime(clock=clock, ask_timeout=WAIT, monitor_interval=0.0)
    rec = EventRecorder(rt.events)
    try:
        rt.start(SupervisorSpec(
            backoff=Backoff(initial=1, multiplier=1, maximum=1, jitter=0),
            children=(ChildSpec("a", factory=lambda: Mate(board), thread="solo",
                                start_timeout=1.0),),
        ))
        rt.tell("a", Boom())
        rec.wait_for(EventKind.RESTARTING, "a", timeout=WAIT)
        rt.which_children("root", timeout=WAIT)
        clock.advance(1)  # the restart: its on_start blocks past the timeout
        rec.wait_for(EventKind.START_FAILED, "a", timeout=WAIT)
        rec.wait_for(EventKind.RESTARTING, "a", count=2, timeout=WAIT)
        board.release.set()  # it comes back late
        rt.which_children("root", timeout=WAIT)
        clock.advance(1)
        rec.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)
        assert rt.ask("a", Who(), timeout=WAIT) == Snap("a", 3, ())
    finally:
        board.release.set()
        rt.stop()
        rec.close()
    assert [r for r in pykka.ActorRegistry.get_all() if r not in before] == []
    assert board.event("stopped", "a", 2).wait(WAIT)  # the late instance ran its on_stop


def test_a_hang_resumed_by_its_error_handler_still_frees_the_thread_mates() -> None:
    """HandlerTimeout -> resume: the hung actor is kept (it goes on when its handler
    returns), but its thread-mates do not wait for that: they go on on a fresh thread."""
    board = Board()
    resume = ErrorHandler({"supervisor.errors.HandlerTimeout":
                           Rule(Severity.WARNING, Directive.RESUME)})
    t = Tree(board, error_handler=resume)
    try:
        rt, rec = t.rt, t.rec
        t.hang("a", 1)
        rt.tell("a", Note("a1"))
        rt.tell("b", Note("b1"))
        assert t.declare_hung() == ["a"]
        rec.wait_for(EventKind.RESUMED, "a", timeout=WAIT)
        assert t.ask("b") == Snap("b", 1, ("b1",))
        assert t.ask("c") == Snap("c", 1, ())
        board.release.set()  # a comes back and goes on with what waited for it
        back = t.ask("a")
        assert (back.incarnation, back.notes[:2]) == (1, ("late", "a1"))
        info = t.children()
        assert (info["a"].restarts, info["b"].restarts, info["c"].restarts) == (0, 0, 0)
        _no_supervision_of(rec, "b", "c")
    finally:
        t.close()


def test_a_stop_stuck_behind_a_hung_mate_does_not_hold_the_others_or_leave_it_registered(
) -> None:
    """No deadline caught the hang: the tree stops with a mate blocked. The stops after
    it do not each wait out their budget behind it, and every on_stop runs."""
    board = Board()
    clock = ManualClock()
    before = set(pykka.ActorRegistry.get_all())
    rt = Runtime(clock=clock, ask_timeout=WAIT, monitor_interval=0.0)
    rec = EventRecorder(rt.events)
    try:
        rt.start(SupervisorSpec(children=(
            ChildSpec("first", factory=lambda: Mate(board), thread="pipeline", shutdown=WAIT),
            ChildSpec("stuck", factory=lambda: Mate(board), thread="pipeline", shutdown=0.2),
            ChildSpec("last", factory=lambda: Mate(board), thread="pipeline", shutdown=0.2),
        )))
        rt.tell("stuck", Hang())
        assert board.event("hang_entered", "stuck", 1).wait(WAIT)
        rt.stop()  # reverse order: last, stuck, first
        assert board.event("stopped", "last", 1).wait(WAIT)
        assert board.event("stopped", "first", 1).is_set()  # within its budget
        assert [e.actor for e in rec.of(EventKind.SHUTDOWN_TIMEOUT)] == ["last", "stuck"]
        assert not board.event("stopped", "stuck", 1).is_set()
        assert [r for r in pykka.ActorRegistry.get_all() if r not in before] == []
    finally:
        board.release.set()
        rt.stop()
        rec.close()
    assert board.event("stopped", "stuck", 1).wait(WAIT)  # back late: it stops then
