"""Supervision semantics of the runtime, checked against Erlang/OTP's supervisor behaviour.

Strategies, restart types, ordered start and reverse-ordered stop, shutdown budgets,
restart intensity and escalation (one and two levels, and at the root), error-handler
directives, dynamic children, failing starts, and no threads left behind.

Nothing here sleeps: tests wait on supervision events or futures with timeouts, and
drive time with a ManualClock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from supervisor import (
    ActorNotRunning,
    Backoff,
    ChildSpec,
    ChildState,
    Directive,
    ErrorHandler,
    EventKind,
    EventRecorder,
    Intensity,
    ManualClock,
    RestartType,
    Rule,
    Runtime,
    Severity,
    Strategy,
    SupervisedActor,
    SupervisorSpec,
    SystemClock,
    UnknownActor,
)
from supervisor.errors import RuntimeErrorBase

WAIT = 10.0  # upper bound for any wait; tests never get near it unless something is wrong
IMMEDIATE = Backoff(initial=0, jitter=0)


# -- test actors ---------------------------------------------------------------------------
class Journal:
    """Lifecycle calls of several actors, in the order they happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[str, str]] = []

    def add(self, what: str, name: str) -> None:
        with self._lock:
            self._entries.append((what, name))

    def entries(self, what: str | None = None) -> list[tuple[str, str]]:
        with self._lock:
            return [e for e in self._entries if what is None or e[0] == what]

    def names(self, what: str) -> list[str]:
        return [name for _, name in self.entries(what)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class Block:
    """Makes a Worker block in its handler until ``release`` is set (bounded by ``limit``)."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    limit: float = 30.0


class MyError(Exception):
    """An application error the tests give their own rules."""


class MySubError(MyError):
    """Matched through its base class's rule."""


class Worker(SupervisedActor):
    """A plain child: answers pings, counts, crashes, exits or blocks on request."""

    def __init__(
        self,
        name: str,
        journal: Journal | None = None,
        instances: list[Worker] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.count = 0
        if instances is not None:
            instances.append(self)

    def _note(self, what: str) -> None:
        if self.journal is not None:
            self.journal.add(what, self.name)

    def on_start(self) -> None:
        self._note("start")

    def on_stop(self) -> None:
        self._note("stop")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._note("fail")

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return (self.ctx.name, self.ctx.incarnation)
        if message == "inc":
            self.count += 1
            return self.count
        if message == "crash":
            raise RuntimeError(f"{self.name} crashes on purpose")
        if message == "exit":
            self.stop()  # a normal exit, after this message
            return None
        if isinstance(message, BaseException):
            raise message
        if isinstance(message, Block):
            message.entered.set()
            message.release.wait(message.limit)
            return None
        raise AssertionError(f"unexpected message {message!r}")


class FlakyStart(Worker):
    """A worker whose on_start raises while its shared budget of failures lasts."""

    def __init__(self, name: str, failures: list[int], journal: Journal | None = None) -> None:
        super().__init__(name, journal)
        self.failures = failures

    def on_start(self) -> None:
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise RuntimeError(f"{self.name} cannot start yet")
        super().on_start()


# -- spec helpers ----------------------------------------------------------------------------
def worker(
    name: str,
    journal: Journal | None = None,
    instances: list[Worker] | None = None,
    **kwargs: Any,
) -> ChildSpec:
    return ChildSpec(id=name, factory=partial(Worker, name, journal, instances), **kwargs)


def sup(
    *children: ChildSpec,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: Intensity | None = None,
    error_handler: ErrorHandler | None = None,
) -> SupervisorSpec:
    return SupervisorSpec(
        strategy=strategy,
        intensity=intensity or Intensity(max_restarts=20, within_seconds=60),
        backoff=IMMEDIATE,
        children=children,
        error_handler=error_handler,
    )


def nested(name: str, spec: SupervisorSpec, **kwargs: Any) -> ChildSpec:
    return ChildSpec(id=name, supervisor=spec, **kwargs)


# -- runtime fixture and waiting helpers ------------------------------------------------------
@dataclass
class Tree:
    rt: Runtime
    rec: EventRecorder
    clock: Any

    def inc(self, name: str) -> int:
        return self.rt.cell(name).incarnation

    def count(self, kind: EventKind, name: str) -> int:
        return len(self.rec.of(kind, name))

    def wait(self, kind: EventKind, name: str, count: int = 1) -> None:
        self.rec.wait_for(kind, name, count=count, timeout=WAIT)

    def crash_and_wait(self, name: str, message: Any = "crash") -> None:
        """Send ``message`` (a crash, or "exit") and wait until the replacement runs."""
        before = self.count(EventKind.RESTARTED, name)
        self.rt.tell(name, message)
        self.wait(EventKind.RESTARTED, name, before + 1)

    def crash(self, name: str, message: Any = "crash") -> None:
        """Crash ``name`` and wait until its supervisor has seen the crash."""
        before = self.count(EventKind.CRASHED, name)
        self.rt.tell(name, message)
        self.wait(EventKind.CRASHED, name, before + 1)

    def settle(self, supervisor: str) -> None:
        """Barrier: ``supervisor`` has handled everything sent to it before this call."""
        self.rt.which_children(supervisor, timeout=WAIT)

    def ping(self, name: str) -> tuple[str, int]:
        reply: tuple[str, int] = self.rt.ask(name, "ping", timeout=WAIT)
        return reply


MakeTree = Callable[..., Tree]


@pytest.fixture
def make_tree() -> Iterator[MakeTree]:
    """Build and start a runtime (ManualClock unless told otherwise); always stopped after."""
    runtimes: list[Runtime] = []

    def make(
        spec: SupervisorSpec, *, clock: Any = None, name: str = "root", monitor: float = 0
    ) -> Tree:
        clock = ManualClock() if clock is None else clock
        rt = Runtime(clock=clock, ask_timeout=WAIT, monitor_interval=monitor)
        runtimes.append(rt)
        rec = EventRecorder(rt.events)  # before start, to see every event
        rt.start(spec, name=name)
        return Tree(rt, rec, clock)

    yield make
    for rt in runtimes:
        rt.stop()


def botvisor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("botvisor")]


# -- 1-3: strategies -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "crashed", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, "a", {"a"}),
        (Strategy.ONE_FOR_ONE, "b", {"b"}),
        (Strategy.ONE_FOR_ONE, "c", {"c"}),
        (Strategy.ONE_FOR_ALL, "a", {"a", "b", "c"}),
        (Strategy.ONE_FOR_ALL, "b", {"a", "b", "c"}),
        (Strategy.ONE_FOR_ALL, "c", {"a", "b", "c"}),
        (Strategy.REST_FOR_ONE, "a", {"a", "b", "c"}),
        (Strategy.REST_FOR_ONE, "b", {"b", "c"}),
        (Strategy.REST_FOR_ONE, "c", {"c"}),
    ],
)
def test_strategy_restarts_exactly_its_group(
    make_tree: MakeTree, strategy: Strategy, crashed: str, restarted: set[str]
) -> None:
    t = make_tree(sup(worker("a"), worker("b"), worker("c"), strategy=strategy))
    t.crash_and_wait(crashed)
    for name in restarted - {crashed}:
        t.wait(EventKind.RESTARTED, name)
    t.settle("root")

    for name in ("a", "b", "c"):
        expected = 2 if name in restarted else 1
        assert t.inc(name) == expected, name
        assert t.ping(name) == (name, expected)
        assert t.rt.cell(name).state is ChildState.RUNNING
    assert t.rt.cell(crashed).restarts == 1
    assert t.count(EventKind.RESTARTED, "root") == 0
    assert not t.rec.of(EventKind.ESCALATED)


def test_one_for_one_keeps_sibling_state(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("a"), worker("b")))
    assert t.rt.ask("a", "inc") == 1
    assert t.rt.ask("b", "inc") == 1
    t.crash_and_wait("b")
    assert t.rt.ask("a", "inc") == 2  # the sibling is the same instance
    assert t.rt.ask("b", "inc") == 1  # the crashed child starts afresh


def test_one_for_all_stops_in_reverse_and_starts_in_order(make_tree: MakeTree) -> None:
    journal = Journal()
    t = make_tree(
        sup(
            worker("a", journal),
            worker("b", journal),
            worker("c", journal),
            worker("d", journal),
            strategy=Strategy.ONE_FOR_ALL,
        )
    )
    assert journal.names("start") == ["a", "b", "c", "d"]
    journal.clear()

    t.crash_and_wait("b")
    t.wait(EventKind.RESTARTED, "d")
    t.settle("root")

    assert journal.entries() == [
        ("fail", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert [t.inc(n) for n in "abcd"] == [2, 2, 2, 2]


def test_rest_for_one_restarts_the_rest_in_order(make_tree: MakeTree) -> None:
    journal = Journal()
    t = make_tree(
        sup(
            worker("a", journal),
            worker("b", journal),
            worker("c", journal),
            worker("d", journal),
            strategy=Strategy.REST_FOR_ONE,
        )
    )
    journal.clear()

    t.crash_and_wait("b")
    t.wait(EventKind.RESTARTED, "d")
    t.settle("root")

    assert journal.entries() == [
        ("fail", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert [t.inc(n) for n in "abcd"] == [1, 2, 2, 2]


def test_messages_sent_during_a_restart_reach_the_replacement(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("w")))
    t.rt.tell("w", "crash")
    future = t.rt.ask_future("w", "ping")  # queued behind the crash
    assert future.get(timeout=WAIT) == ("w", 2)


def test_value_error_resumes_the_same_instance(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("w")))
    assert t.rt.ask("w", "inc") == 1
    with pytest.raises(ValueError, match="bad data"):
        t.rt.ask("w", ValueError("bad data"))
    t.wait(EventKind.RESUMED, "w")
    assert t.rt.ask("w", "inc") == 2  # state kept: resumed, not restarted
    assert t.inc("w") == 1
    assert t.count(EventKind.RESTARTED, "w") == 0


# -- 4: restart types ----------------------------------------------------------------------
def test_permanent_restarted_after_crash_and_after_normal_exit(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("p", restart=RestartType.PERMANENT)))
    t.crash_and_wait("p", "crash")
    assert t.ping("p") == ("p", 2)

    t.crash_and_wait("p", "exit")
    assert t.count(EventKind.EXITED, "p") == 1
    assert t.ping("p") == ("p", 3)
    assert t.rt.cell("p").state is ChildState.RUNNING


def test_transient_restarted_after_crash_not_after_normal_exit(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("t", restart=RestartType.TRANSIENT), worker("other")))
    t.crash_and_wait("t", "crash")
    assert t.ping("t") == ("t", 2)

    t.rt.tell("t", "exit")
    t.wait(EventKind.STOPPED, "t")
    t.settle("root")
    cell = t.rt.cell("t")
    assert cell.state is ChildState.STOPPED
    assert cell.state.value == "stopped"
    assert cell.incarnation == 2
    assert t.count(EventKind.RESTARTED, "t") == 1
    with pytest.raises(ActorNotRunning):
        t.rt.tell("t", "ping")
    with pytest.raises(ActorNotRunning):
        t.rt.ask("t", "ping", timeout=WAIT)
    assert t.ping("other") == ("other", 1)


@pytest.mark.parametrize("how", ["crash", "exit"])
def test_temporary_never_restarted_and_removed(make_tree: MakeTree, how: str) -> None:
    t = make_tree(sup(worker("tmp", restart=RestartType.TEMPORARY), worker("other")))
    t.rt.tell("tmp", how)
    t.wait(EventKind.STOPPED, "tmp")
    t.settle("root")

    assert not t.rt.has("tmp")
    assert t.count(EventKind.RESTARTED, "tmp") == 0
    assert t.count(EventKind.RESTARTING, "tmp") == 0
    with pytest.raises(UnknownActor):
        t.rt.tell("tmp", "ping")
    assert [c.id for c in t.rt.which_children("root")] == ["other"]
    assert t.ping("other") == ("other", 1)


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
def test_temporary_child_is_not_restarted_with_its_group(
    make_tree: MakeTree, strategy: Strategy
) -> None:
    # OTP: a temporary child is never restarted, even when a sibling's failure makes a
    # one_for_all / rest_for_one supervisor terminate it; it is removed instead.
    journal = Journal()
    t = make_tree(
        sup(
            worker("a", journal),
            worker("tmp", journal, restart=RestartType.TEMPORARY),
            worker("c", journal),
            strategy=strategy,
        )
    )
    journal.clear()
    t.crash_and_wait("a")
    t.wait(EventKind.RESTARTED, "c")
    t.settle("root")

    assert ("stop", "tmp") in journal.entries()
    assert ("start", "tmp") not in journal.entries()
    assert t.count(EventKind.RESTARTED, "tmp") == 0
    assert not t.rt.has("tmp")
    with pytest.raises(UnknownActor):
        t.rt.tell("tmp", "ping")
    assert [c.id for c in t.rt.which_children("root")] == ["a", "c"]
    assert t.ping("a") == ("a", 2)
    assert t.ping("c") == ("c", 2)


# -- 5: ordered start, reverse-ordered stop of the whole tree ----------------------------------
def test_tree_starts_in_order_and_stops_depth_first_in_reverse(make_tree: MakeTree) -> None:
    journal = Journal()
    inner = sup(worker("i1", journal), worker("i2", journal))
    mid = sup(worker("m1", journal), nested("inner", inner), worker("m2", journal))
    t = make_tree(sup(worker("a", journal), nested("mid", mid), worker("z", journal)))

    assert journal.names("start") == ["a", "m1", "i1", "i2", "m2", "z"]
    started = [e.actor for e in t.rec.of(EventKind.STARTED)]
    assert started == ["a", "m1", "i1", "i2", "inner", "m2", "mid", "z", "root"]
    tree = t.rt.tree()
    assert tree is not None
    names = [n.name for n in tree.walk()]
    assert names == ["root", "a", "mid", "m1", "inner", "i1", "i2", "m2", "z"]
    assert {n.state for n in tree.walk()} == {"running"}

    t.rt.stop()

    assert journal.names("stop") == ["z", "m2", "i2", "i1", "m1", "a"]
    stopped = [e.actor for e in t.rec.of(EventKind.STOPPED)]
    assert stopped == ["z", "m2", "i2", "i1", "inner", "m1", "mid", "a", "root"]
    for name in names:
        assert t.rt.cell(name).state is ChildState.STOPPED, name
        assert t.rt.cell(name).actor is None, name
    with pytest.raises(ActorNotRunning):
        t.rt.tell("i1", "ping")


# -- 6: shutdown budget ----------------------------------------------------------------------
def test_stop_gives_up_on_a_child_past_its_shutdown_budget(make_tree: MakeTree) -> None:
    journal = Journal()
    instances: list[Worker] = []
    t = make_tree(
        sup(
            worker("first", journal),
            worker("stuck", journal, instances, shutdown=0.2),
            worker("last", journal),
        )
    )
    block = Block()
    t.rt.tell("stuck", block)
    assert block.entered.wait(WAIT)
    stuck_thread = instances[0]._thread
    assert stuck_thread is not None

    stopper = threading.Thread(target=t.rt.stop, name="test-stopper", daemon=True)
    try:
        stopper.start()
        stopper.join(WAIT)
        assert not stopper.is_alive(), "rt.stop() did not return"

        timeouts = t.rec.of(EventKind.SHUTDOWN_TIMEOUT)
        assert [e.actor for e in timeouts] == ["stuck"]
        # The stop went on past the stuck child, in reverse order.
        assert journal.names("stop") == ["last", "first"]
        assert stuck_thread.is_alive()
    finally:
        block.release.set()
    stuck_thread.join(WAIT)
    assert not stuck_thread.is_alive()


# -- 7: restart intensity ----------------------------------------------------------------------
def intensity_tree(make_tree: MakeTree, max_restarts: int = 3, within: float = 60) -> Tree:
    inner = sup(worker("w"), worker("w2"), intensity=Intensity(max_restarts, within))
    return make_tree(sup(nested("sub", inner), worker("side")))


def test_intensity_allows_max_restarts_then_escalates(make_tree: MakeTree) -> None:
    t = intensity_tree(make_tree)
    for i in range(3):
        t.crash_and_wait("w")
        assert t.inc("w") == i + 2
    t.settle("sub")
    t.settle("root")
    assert not t.rec.of(EventKind.ESCALATED)
    assert t.inc("sub") == 1

    t.rt.tell("w", "crash")
    t.wait(EventKind.ESCALATED, "sub")
    t.wait(EventKind.RESTARTED, "sub")
    t.settle("root")
    t.settle("sub")

    assert [e.actor for e in t.rec.of(EventKind.ESCALATED)] == ["sub"]
    assert t.inc("sub") == 2
    assert t.rt.cell("sub").restarts == 1
    assert t.rt.cell("sub").state is ChildState.RUNNING
    assert t.ping("w") == ("w", 5)  # its supervisor started it again
    assert t.ping("w2") == ("w2", 2)  # and its sibling too
    assert t.ping("side") == ("side", 1)  # the root's other child is untouched
    assert not t.rt.wait(timeout=0)

    # The restarted supervisor has a fresh window: three more crashes are fine.
    for _ in range(3):
        t.crash_and_wait("w")
    t.settle("sub")
    assert len(t.rec.of(EventKind.ESCALATED)) == 1
    assert t.inc("sub") == 2


def test_crashes_spread_out_in_time_do_not_escalate(make_tree: MakeTree) -> None:
    t = intensity_tree(make_tree)
    for _ in range(8):
        t.crash_and_wait("w")
        t.clock.advance(61)
    t.settle("sub")
    t.settle("root")
    assert not t.rec.of(EventKind.ESCALATED)
    assert t.inc("sub") == 1
    assert t.ping("w") == ("w", 9)


def test_intensity_window_slides(make_tree: MakeTree) -> None:
    t = intensity_tree(make_tree)
    t.crash_and_wait("w")  # t=0
    t.clock.advance(30)
    t.crash_and_wait("w")  # t=30
    t.crash_and_wait("w2")  # t=30
    t.clock.advance(31)  # t=61: the first restart has left the window
    t.crash_and_wait("w")  # three in the window: allowed
    t.settle("sub")
    assert not t.rec.of(EventKind.ESCALATED)
    assert t.inc("sub") == 1

    t.rt.tell("w2", "crash")  # a fourth within 60s, counted across children
    t.wait(EventKind.ESCALATED, "sub")
    t.wait(EventKind.RESTARTED, "sub")
    assert t.inc("sub") == 2


# -- 8: root escalation ----------------------------------------------------------------------
def test_root_exceeding_intensity_ends_the_runtime_with_exit_code_1(make_tree: MakeTree) -> None:
    instances: list[Worker] = []
    t = make_tree(
        sup(
            worker("a", None, instances),
            worker("b", None, instances),
            nested("sub", sup(worker("s1", None, instances), worker("s2", None, instances))),
            worker("c", None, instances),
            intensity=Intensity(max_restarts=1, within_seconds=60),
        )
    )
    t.crash_and_wait("b")
    assert not t.rt.wait(timeout=0)

    t.rt.tell("b", "crash")
    assert t.rt.wait(timeout=WAIT)
    assert t.rt.exit_code == 1
    assert t.rec.of(EventKind.ESCALATED, "root")
    for name in ("a", "b", "sub", "s1", "s2", "c"):
        cell = t.rt.cell(name)
        assert cell.state is ChildState.STOPPED, name
        assert cell.actor is None, name
    for name in ("a", "sub", "s1", "s2", "c"):
        assert t.count(EventKind.STOPPED, name) == 1, name
    for actor in instances:
        assert actor._thread is not None
        actor._thread.join(WAIT)
        assert not actor._thread.is_alive()


def test_child_that_never_starts_makes_root_escalate(make_tree: MakeTree) -> None:
    never = [10**6]
    t = make_tree(
        sup(
            worker("ok"),
            ChildSpec(id="never", factory=partial(FlakyStart, "never", never)),
            intensity=Intensity(max_restarts=2, within_seconds=60),
        )
    )
    assert t.rt.wait(timeout=WAIT)
    assert t.rt.exit_code == 1
    assert t.count(EventKind.START_FAILED, "never") == 3
    assert t.rt.cell("ok").state is ChildState.STOPPED


# -- 9: escalation through two levels ------------------------------------------------------------
def test_escalation_through_two_levels(make_tree: MakeTree) -> None:
    once = Intensity(max_restarts=1, within_seconds=60)
    inner = sup(worker("w"), intensity=once)
    middle = sup(nested("inner", inner), worker("m"), intensity=once)
    t = make_tree(sup(nested("middle", middle), worker("side")))

    # inner exceeds its intensity: middle restarts it.
    t.crash_and_wait("w")
    t.rt.tell("w", "crash")
    t.wait(EventKind.ESCALATED, "inner")
    t.wait(EventKind.RESTARTED, "inner")
    t.settle("middle")
    assert t.inc("inner") == 2
    assert t.inc("middle") == 1
    assert not t.rec.of(EventKind.ESCALATED, "middle")
    assert t.ping("w") == ("w", 3)
    assert t.ping("m") == ("m", 1)

    # inner exceeds again: middle's second restart exceeds its own intensity: root restarts it.
    t.crash_and_wait("w")
    t.rt.tell("w", "crash")
    t.wait(EventKind.ESCALATED, "inner", 2)
    t.wait(EventKind.ESCALATED, "middle")
    t.wait(EventKind.RESTARTED, "middle")
    t.settle("root")
    t.settle("middle")
    assert t.inc("middle") == 2
    assert t.inc("inner") == 3
    assert t.ping("w") == ("w", 5)
    assert t.ping("m") == ("m", 2)
    assert t.ping("side") == ("side", 1)
    assert not t.rec.of(EventKind.ESCALATED, "root")
    assert not t.rt.wait(timeout=0)


# -- 10: directives from a custom error handler --------------------------------------------------
def test_rule_keys_are_dotted_class_names() -> None:
    from supervisor.error_handler import class_name

    assert class_name(KeyError) == "KeyError"
    assert class_name(MyError) == "tests.kernel.test_supervision.MyError"


def test_directive_stop_ends_the_child_for_good(make_tree: MakeTree) -> None:
    handler = ErrorHandler(rules={"KeyError": Rule(Severity.ERROR, Directive.STOP)})
    t = make_tree(sup(worker("w"), worker("other"), error_handler=handler))

    t.rt.tell("w", KeyError("missing"))  # permanent, yet stopped by the directive
    t.wait(EventKind.STOPPED, "w")
    t.settle("root")
    assert t.rt.cell("w").state is ChildState.STOPPED
    assert t.count(EventKind.RESTARTING, "w") == 0
    assert t.count(EventKind.RESTARTED, "w") == 0
    with pytest.raises(ActorNotRunning):
        t.rt.tell("w", "ping")

    # The default rules still apply to everything else.
    t.crash_and_wait("other")
    assert t.ping("other") == ("other", 2)


@pytest.mark.parametrize("error", [MyError("app"), MySubError("sub-app")])
def test_directive_escalate_restarts_the_supervisor(make_tree: MakeTree, error: Exception) -> None:
    handler = ErrorHandler(
        rules={"tests.kernel.test_supervision.MyError": Rule(Severity.CRITICAL, Directive.ESCALATE)}
    )
    inner = sup(worker("w"), worker("w2"), error_handler=handler)
    t = make_tree(sup(nested("sub", inner), worker("side")))

    t.rt.tell("w", error)
    t.wait(EventKind.ESCALATED, "sub")
    t.wait(EventKind.RESTARTED, "sub")
    t.settle("root")
    assert t.inc("sub") == 2
    assert t.count(EventKind.RESTARTING, "w") == 0  # escalated at once, no restart first
    assert t.ping("w") == ("w", 2)
    assert t.ping("w2") == ("w2", 2)
    assert t.ping("side") == ("side", 1)


# -- 11: dynamic children ----------------------------------------------------------------------
def test_start_child_adds_and_starts_and_refuses_duplicates(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("a"), nested("sub", sup(worker("s1")))))
    before = t.rt.count_children("root")
    assert before == {"specs": 2, "active": 2, "supervisors": 1, "workers": 1}

    info = t.rt.start_child("root", worker("dyn"))
    assert info.id == "dyn"
    assert info.state == "running"
    t.wait(EventKind.STARTED, "dyn")
    assert t.ping("dyn") == ("dyn", 1)
    assert [c.id for c in t.rt.which_children("root")] == ["a", "sub", "dyn"]
    assert t.rt.count_children("root") == {
        "specs": 3,
        "active": 3,
        "supervisors": 1,
        "workers": 2,
    }

    for taken in ("dyn", "s1", "root"):
        with pytest.raises(RuntimeErrorBase, match="already exists"):
            t.rt.start_child("root", worker(taken))
    assert t.rt.count_children("root")["specs"] == 3
    assert t.ping("dyn") == ("dyn", 1)  # the refused duplicate did not disturb the original
    assert t.ping("s1") == ("s1", 1)

    # A dynamic child is supervised like the others.
    t.crash_and_wait("dyn")
    assert t.ping("dyn") == ("dyn", 2)


def test_terminate_child_stops_without_restart_or_intensity(make_tree: MakeTree) -> None:
    """Stopping by hand neither restarts nor counts against intensity; starting again counts."""
    t = make_tree(
        sup(worker("a"), worker("b"), intensity=Intensity(max_restarts=1, within_seconds=60))
    )
    info = t.rt.terminate_child("b")
    assert info.state == "terminated"
    assert t.rt.cell("b").state is ChildState.TERMINATED
    with pytest.raises(ActorNotRunning):
        t.rt.tell("b", "ping")
    with pytest.raises(ActorNotRunning):
        t.rt.ask("b", "ping", timeout=WAIT)
    assert t.rt.count_children("root")["active"] == 1
    t.settle("root")
    assert t.count(EventKind.RESTARTING, "b") == 0  # not restarted by itself

    # The stop did not count: the one restart the intensity allows is still there.
    t.crash_and_wait("a")
    assert not t.rec.of(EventKind.ESCALATED)

    # Starting b again counts: a second restart within the window is one too many.
    with pytest.raises(RuntimeErrorBase, match="restarts in 60s"):
        t.rt.restart_child("b")
    t.wait(EventKind.ESCALATED, "root")
    assert t.rt.wait(timeout=WAIT) and t.rt.exit_code == 1


def test_requested_starts_within_the_intensity_are_fine(make_tree: MakeTree) -> None:
    t = make_tree(
        sup(worker("a"), worker("b"), intensity=Intensity(max_restarts=3, within_seconds=60))
    )
    for round_ in range(1, 4):  # three stop/start cycles: three counted restarts, allowed
        t.rt.terminate_child("b")
        info = t.rt.restart_child("b")
        assert info.state == "running"
        assert t.ping("b") == ("b", round_ + 1)
    t.settle("root")
    assert not t.rec.of(EventKind.ESCALATED)
    assert not t.rt.wait(timeout=0)
    assert t.ping("a") == ("a", 1)


def test_delete_child_only_after_terminate(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("a"), worker("b")))
    with pytest.raises(RuntimeErrorBase, match="running"):
        t.rt.delete_child("b")
    assert t.ping("b") == ("b", 1)

    t.rt.terminate_child("b")
    t.rt.delete_child("b")
    assert not t.rt.has("b")
    with pytest.raises(UnknownActor):
        t.rt.tell("b", "ping")
    assert [c.id for c in t.rt.which_children("root")] == ["a"]
    assert t.rt.count_children("root")["specs"] == 1

    # The name is free again.
    t.rt.start_child("root", worker("b"))
    assert t.ping("b") == ("b", 1)


def test_start_child_refuses_a_subtree_with_a_taken_name_and_leaves_no_trace(
    make_tree: MakeTree,
) -> None:
    t = make_tree(sup(worker("a")))
    clash = nested("sub2", sup(worker("x"), worker("a")))  # "a" is taken
    with pytest.raises(RuntimeErrorBase):
        t.rt.start_child("root", clash)
    assert t.ping("a") == ("a", 1)
    for name in ("sub2", "x"):
        assert not t.rt.has(name), f"{name!r} is left registered after the refused start"
    assert [c.id for c in t.rt.which_children("root")] == ["a"]
    # Every name of the refused subtree is free again.
    t.rt.start_child("root", worker("x"))
    assert t.ping("x") == ("x", 1)


def test_deleting_a_nested_supervisor_removes_its_subtree(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("a"), nested("sub", sup(worker("s1"), worker("s2")))))
    t.rt.terminate_child("sub")
    assert t.rt.cell("s1").state is ChildState.STOPPED
    with pytest.raises(ActorNotRunning):
        t.rt.tell("s1", "ping")
    t.rt.restart_child("sub")  # a terminated supervisor comes back with its children
    assert t.ping("s1") == ("s1", 2)

    t.rt.terminate_child("sub")
    t.rt.delete_child("sub")
    for name in ("sub", "s1", "s2"):
        assert not t.rt.has(name), f"{name!r} outlived its deleted supervisor"
        with pytest.raises(UnknownActor):
            t.rt.tell(name, "ping")
    t.rt.start_child("root", worker("s1"))  # the name is free again
    assert t.ping("s1") == ("s1", 1)


def test_temporary_nested_supervisor_is_removed_with_its_subtree(make_tree: MakeTree) -> None:
    inner = sup(worker("s1"), intensity=Intensity(max_restarts=0, within_seconds=60))
    t = make_tree(sup(worker("a"), nested("sub", inner, restart=RestartType.TEMPORARY)))
    t.rt.tell("s1", "crash")  # sub gives up at once and, being temporary, is not restarted
    t.wait(EventKind.ESCALATED, "sub")
    t.wait(EventKind.STOPPED, "sub")
    t.settle("root")
    assert t.count(EventKind.RESTARTED, "sub") == 0
    for name in ("sub", "s1"):
        assert not t.rt.has(name), f"{name!r} outlived its removed supervisor"
    assert t.ping("a") == ("a", 1)


def test_restart_child_restarts_a_running_child_in_place(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("a"), worker("b")))
    assert t.rt.ask("b", "inc") == 1
    info = t.rt.restart_child("b")
    assert info.incarnation == 2
    assert t.rt.ask("b", "inc") == 1
    assert t.ping("a") == ("a", 1)


# -- 12: failing starts ------------------------------------------------------------------------
def test_on_start_failures_are_retried_until_the_child_runs(make_tree: MakeTree) -> None:
    journal = Journal()
    failures = [2]
    t = make_tree(
        sup(
            worker("before", journal),
            ChildSpec(id="flaky", factory=partial(FlakyStart, "flaky", failures, journal)),
            worker("after", journal),
        )
    )
    t.wait(EventKind.RESTARTED, "flaky")
    assert t.count(EventKind.START_FAILED, "flaky") == 2
    assert t.rt.cell("flaky").state is ChildState.RUNNING
    assert t.inc("flaky") == 3
    assert t.ping("flaky") == ("flaky", 3)
    assert t.ping("before") == ("before", 1)
    assert t.ping("after") == ("after", 1)
    assert journal.names("start").count("flaky") == 1
    assert not t.rec.of(EventKind.ESCALATED)


def test_failing_start_of_a_dynamic_child_is_refused(make_tree: MakeTree) -> None:
    t = make_tree(sup(worker("a")))
    spec = ChildSpec(id="bad", factory=partial(FlakyStart, "bad", [1]))
    with pytest.raises(RuntimeErrorBase, match="failed to start"):
        t.rt.start_child("root", spec)
    assert not t.rt.has("bad")
    assert t.rt.count_children("root")["specs"] == 1


# -- 13: no thread left behind -----------------------------------------------------------------
def test_no_thread_left_behind_after_stop(make_tree: MakeTree) -> None:
    inner = sup(worker("i1"), worker("i2"), intensity=Intensity(1, 60))
    t = make_tree(
        sup(worker("a"), nested("sub", inner), worker("z")),
        clock=SystemClock(),
        monitor=0.05,  # real timers, so the clock's thread runs too
    )
    t.crash_and_wait("a")
    t.crash_and_wait("i1")
    t.rt.tell("i1", "crash")  # sub escalates and is restarted
    t.wait(EventKind.RESTARTED, "sub")
    names = {thread.name for thread in botvisor_threads()}
    assert "botvisor-clock" in names
    assert "botvisor:root#1" in names

    t.rt.stop()

    for thread in botvisor_threads():
        thread.join(WAIT)
    assert botvisor_threads() == []
