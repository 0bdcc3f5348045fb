"""Actors sharing a named thread (``ChildSpec.thread``): same supervision, one thread.

Real actors and threads; waits are on events and futures with timeouts.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pykka.messages import ProxyGetAttr

from supervisor import (
    ChildSpec,
    EventKind,
    EventRecorder,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
    WouldDeadlock,
)
from supervisor.host.config import ConfigError, parse_config

WAIT = 10.0


class Mate(SupervisedActor):
    """Records (message, thread name); forwards ("pass", to, x) as a tell; "boom" raises."""

    def __init__(self, stopped: list[str] | None = None) -> None:
        super().__init__()
        self.seen: list[tuple[Any, str]] = []
        self.stopped = stopped

    def on_stop(self) -> None:
        if self.stopped is not None:
            self.stopped.append(threading.current_thread().name)

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom (on purpose)")
        if message == "seen":
            return list(self.seen)
        if isinstance(message, tuple) and message[0] == "pass":
            self.ctx.tell(message[1], message[2])
        elif isinstance(message, tuple) and message[0] == "ask":
            return self.ctx.ask(message[1], "seen")
        self.seen.append((message, threading.current_thread().name))
        return None


def _tree(stopped: list[str] | None = None) -> Runtime:
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("a", factory=lambda: Mate(stopped), thread="pipeline"),
        ChildSpec("b", factory=lambda: Mate(stopped), thread="pipeline"),
        ChildSpec("c", factory=lambda: Mate(stopped)),  # a thread of its own
    )))
    return rt


def test_thread_mates_run_on_one_thread_and_keep_their_order() -> None:
    rt = _tree()
    try:
        for i in range(200):
            rt.tell("a", ("pass", "b", i))  # a -> b: a queue append on the same thread
            rt.tell("c", i)
        rt.ask("a", "seen")  # a has forwarded everything: b's 200 wait ahead of the next ask
        seen_b = rt.ask("b", "seen")
        seen_c = rt.ask("c", "seen")
        assert [m for m, _ in seen_b] == list(range(200))
        assert {t for _, t in seen_b} == {"botvisor:thread:pipeline"}
        assert [m for m, _ in seen_c] == list(range(200))
        assert {t for _, t in seen_c} != {"botvisor:thread:pipeline"}
    finally:
        rt.stop()


def test_a_crash_restarts_only_that_mate_and_the_messages_behind_it_reach_the_new_one(
) -> None:
    rt = _tree()
    recorder = EventRecorder(rt.events)
    try:
        first = rt.cell("a").actor
        rt.tell("a", "boom")
        for i in range(5):
            rt.tell("a", i)
            rt.tell("b", i)
        recorder.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)
        assert rt.cell("a").actor is not first
        assert [m for m, _ in rt.ask("a", "seen")] == [0, 1, 2, 3, 4]
        assert [m for m, _ in rt.ask("b", "seen")] == [0, 1, 2, 3, 4]
        assert not [e for e in recorder.events
                    if e.kind is EventKind.RESTARTED and e.actor == "b"]
    finally:
        recorder.close()
        rt.stop()


def test_an_ask_between_thread_mates_is_refused_at_once_not_left_to_hang() -> None:
    rt = _tree()
    try:
        with pytest.raises(WouldDeadlock, match="shares its thread 'pipeline'"):
            rt.ask("a", ("ask", "b"))
        assert rt.ask("a", ("ask", "c")) == []  # another thread: fine
        assert rt.ask("c", ("ask", "a")) == []  # into the shared thread: fine
    finally:
        rt.stop()


def test_stopping_runs_on_stop_on_the_shared_thread_and_ends_it() -> None:
    stopped: list[str] = []
    before = {t.ident for t in threading.enumerate()}
    rt = _tree(stopped)
    rt.ask("a", "seen")
    shared = [t for t in threading.enumerate() if t.name == "botvisor:thread:pipeline"]
    assert len(shared) == 1
    rt.stop()
    assert stopped.count("botvisor:thread:pipeline") == 2  # a and b, on their thread
    shared[0].join(WAIT)
    assert not shared[0].is_alive()
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not [t for t in left if t.name.startswith("botvisor:")], left


def test_config_names_the_thread_of_a_worker_and_refuses_one_for_a_supervisor() -> None:
    _, spec = parse_config({"tree": {"children": [
        {"name": "a", "actor": "tests.support.fixture_actors:Ticker", "thread": "pipeline"}]}})
    assert spec.children[0].thread == "pipeline"
    with pytest.raises(ConfigError) as info:
        parse_config({"tree": {"children": [
            {"name": "sub", "thread": "pipeline",
             "children": [{"name": "a", "actor": "tests.support.fixture_actors:Ticker"}]}]}})
    problems = dict(info.value.problems)
    assert "own thread" in problems["tree.children[0].thread"], problems


class Noting(SupervisedActor):
    """Notes (its name, message) in a list shared by the test; "block" holds its thread
    until ``release`` is set (after setting ``entered``)."""

    def __init__(self, name: str, order: list[tuple[str, Any]], entered: threading.Event,
                 release: threading.Event) -> None:
        super().__init__()
        self.name, self.order, self.entered, self.release = name, order, entered, release

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.entered.set()
            assert self.release.wait(WAIT), "the test never released the thread"
            return None
        self.order.append((self.name, message))
        return None


def test_an_urgent_mates_turn_goes_before_the_waiting_turns_of_the_others() -> None:
    """The shared thread is held by one mate; messages for a normal mate and then for an
    urgent one wait meanwhile. Once the thread is free the urgent mate runs first."""
    order: list[tuple[str, Any]] = []
    entered, release = threading.Event(), threading.Event()

    def mate(name: str) -> SupervisedActor:
        return Noting(name, order, entered, release)

    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("gate", factory=lambda: mate("gate"), thread="pipeline"),
        ChildSpec("ticks", factory=lambda: mate("ticks"), thread="pipeline"),
        ChildSpec("orders", factory=lambda: mate("orders"), thread="pipeline", urgent=True),
    )))
    try:
        rt.tell("gate", "block")
        assert entered.wait(WAIT)
        for i in range(3):
            rt.tell("ticks", i)
        for i in range(3):
            rt.tell("orders", i)
        release.set()
        rt.ask("ticks", ProxyGetAttr(attr_path=("name",)))
        rt.ask("orders", ProxyGetAttr(attr_path=("name",)))
        assert order == [("orders", 0), ("orders", 1), ("orders", 2),
                         ("ticks", 0), ("ticks", 1), ("ticks", 2)]
    finally:
        release.set()
        rt.stop()


def test_urgent_needs_a_shared_thread() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"tree": {"children": [
            {"name": "a", "actor": "tests.support.fixture_actors:Ticker", "urgent": True}]}})
    assert "shared thread" in dict(info.value.problems)["tree.children[0].urgent"]
    with pytest.raises(ValueError, match="urgent needs a shared thread"):
        ChildSpec("a", factory=SupervisedActor, urgent=True)
