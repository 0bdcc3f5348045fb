"""Supervisor timers that fall due in the "wrong" state are not lost.

A fallback's primary is retried every ``retry_primary_after`` while the fallback runs:
also when the retry falls due while the fallback itself is restarting or stopped by hand,
and after the supervisor itself restarted (its timers die with its instance). Failure
reports reach a supervisor whose mailbox is full, and the hung-handler monitor goes on.

Real actors and threads; time moves only with ManualClock.advance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from supervisor import (
    Backoff,
    ChildInfo,
    ChildSpec,
    EventKind,
    EventRecorder,
    Fallback,
    Intensity,
    ManualClock,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.supervisor import RestartChild

WAIT = 10.0  # upper bound for any wait; never reached unless something is wrong


@dataclass(frozen=True, slots=True)
class Boom:
    pass


class Switch:
    """Shared by the test and the actors: is the primary broken; gates for blocking."""

    def __init__(self) -> None:
        self.broken = True
        self.release = threading.Event()
        self.entered = threading.Event()


class Primary(SupervisedActor):
    role = "primary"

    def __init__(self, switch: Switch) -> None:
        super().__init__()
        self.switch = switch

    def on_start(self) -> None:
        if self.switch.broken:
            raise RuntimeError(f"{self.role} cannot start")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Boom):
            raise RuntimeError("boom (on purpose)")
        if message == "block":
            self.switch.entered.set()
            self.switch.release.wait(60)
        return self.role


class Backup(Primary):
    role = "fallback"

    def on_start(self) -> None:
        pass


def _feed(switch: Switch) -> ChildSpec:
    return ChildSpec("feed", factory=lambda: Primary(switch),
                     fallback=Fallback(lambda: Backup(switch), after=1, retry_primary_after=30))


class Tree:
    def __init__(self, spec: SupervisorSpec) -> None:
        self.clock = ManualClock()
        self.rt = Runtime(clock=self.clock, ask_timeout=WAIT, monitor_interval=0.0)
        self.rec = EventRecorder(self.rt.events)
        self.rt.start(spec)

    def children(self, supervisor: str = "root") -> dict[str, ChildInfo]:
        """An ask, so also a barrier: the supervisor has handled what came before."""
        return {i.id: i for i in self.rt.which_children(supervisor, timeout=WAIT)}

    def role(self) -> str:
        role = self.rt.ask("feed", "who", timeout=WAIT)
        assert isinstance(role, str)
        return role

    def close(self) -> None:
        self.rec.close()
        self.rt.stop()


@pytest.fixture
def switch() -> Iterator[Switch]:
    s = Switch()
    try:
        yield s
    finally:
        s.release.set()


def _on_fallback(tree: Tree) -> None:
    """The primary failed to start at once, so the fallback runs (retry armed at +30 s)."""
    tree.rec.wait_for(EventKind.FELL_BACK, "feed", timeout=WAIT)
    tree.rec.wait_for(EventKind.RESTARTED, "feed", timeout=WAIT)
    assert tree.role() == "fallback"
    tree.children("sub" if tree.rt.has("sub") else "root")


def test_a_retry_due_while_the_fallback_restarts_happens_once_it_runs_again(
    switch: Switch,
) -> None:
    tree = Tree(SupervisorSpec(
        backoff=Backoff(initial=10, multiplier=1, maximum=10, jitter=0, reset_after=1000),
        intensity=Intensity(max_restarts=100, within_seconds=60),
        children=(_feed(switch),),
    ))
    try:
        rec = tree.rec
        _on_fallback(tree)
        tree.clock.advance(25)
        tree.rt.tell("feed", Boom())  # the fallback crashes: restarts in 10 s, at +35
        rec.wait_for(EventKind.RESTARTING, "feed", count=2, timeout=WAIT)
        assert tree.children()["feed"].state == "restarting"
        switch.broken = False  # the primary is fixed meanwhile
        tree.clock.advance(6)  # +31: the retry falls due while the fallback restarts
        assert tree.children()["feed"].state == "restarting"
        assert rec.of(EventKind.PRIMARY_RESTORED, "feed") == []
        tree.clock.advance(5)  # +36: the fallback runs again, and the retry is made
        rec.wait_for(EventKind.PRIMARY_RESTORED, "feed", timeout=WAIT)
        assert tree.role() == "primary"
        assert not tree.children()["feed"].fallback_active
        assert tree.clock.pending() == []  # no retry left once the primary is back
    finally:
        tree.close()


def test_a_retry_still_broken_after_the_fallback_restarted_is_armed_again(
    switch: Switch,
) -> None:
    tree = Tree(SupervisorSpec(
        backoff=Backoff(initial=10, multiplier=1, maximum=10, jitter=0, reset_after=1000),
        intensity=Intensity(max_restarts=100, within_seconds=60),
        children=(_feed(switch),),
    ))
    try:
        rec = tree.rec
        _on_fallback(tree)
        tree.clock.advance(25)
        tree.rt.tell("feed", Boom())
        rec.wait_for(EventKind.RESTARTING, "feed", count=2, timeout=WAIT)
        tree.children()
        tree.clock.advance(11)  # the retry fell due meanwhile; still broken
        rec.wait_for(EventKind.START_FAILED, "feed", count=2, timeout=WAIT)
        rec.wait_for(EventKind.RESTARTED, "feed", count=3, timeout=WAIT)
        assert tree.role() == "fallback"
        tree.children()
        assert tree.clock.pending() == [30]  # the next retry, once
        switch.broken = False
        tree.clock.advance(30)
        rec.wait_for(EventKind.PRIMARY_RESTORED, "feed", timeout=WAIT)
        assert tree.role() == "primary"
    finally:
        tree.close()


def test_a_fallback_stopped_and_restarted_by_hand_still_retries_its_primary(
    switch: Switch,
) -> None:
    tree = Tree(SupervisorSpec(children=(_feed(switch),)))
    try:
        _on_fallback(tree)
        tree.rt.terminate_child("feed", timeout=WAIT)
        switch.broken = False
        tree.clock.advance(31)  # the retry falls due while the child is terminated
        tree.children()
        tree.rt.restart_child("feed", timeout=WAIT)  # still on the fallback
        tree.rec.wait_for(EventKind.PRIMARY_RESTORED, "feed", timeout=WAIT)
        assert tree.role() == "primary"
    finally:
        tree.close()


def test_a_fallback_whose_supervisor_restarted_still_retries_its_primary(
    switch: Switch,
) -> None:
    tree = Tree(SupervisorSpec(children=(
        ChildSpec("sub", supervisor=SupervisorSpec(children=(_feed(switch),))),
    )))
    try:
        _on_fallback(tree)
        tree.rt.restart_child("sub", timeout=WAIT)  # its timers die with its instance
        tree.rec.wait_for(EventKind.RESTARTED, "sub", timeout=WAIT)
        assert tree.role() == "fallback"
        tree.children("sub")
        switch.broken = False
        tree.clock.advance(31)
        tree.rec.wait_for(EventKind.PRIMARY_RESTORED, "feed", timeout=WAIT)
        assert tree.role() == "primary"
    finally:
        tree.close()


class Gated(Primary):
    """Starts at once, except while ``switch.broken``: then on_start blocks until released."""

    def on_start(self) -> None:
        if self.switch.broken:
            self.switch.entered.set()
            self.switch.release.wait(60)


def test_hung_reports_reach_a_supervisor_whose_mailbox_is_full_and_the_monitor_goes_on(
) -> None:
    """The monitor (a clock timer) reports two hung workers while their supervisor is busy
    and its mailbox holds one message at most: both are restarted, and the monitor still
    runs afterwards."""
    slow, w1, w2 = Switch(), Switch(), Switch()
    for s in (slow, w1, w2):
        s.broken = False  # slow starts at once the first time
    clock = ManualClock()
    rt = Runtime(clock=clock, ask_timeout=WAIT, monitor_interval=1.0)
    rec = EventRecorder(rt.events)
    gates = [s.release for s in (slow, w1, w2)]
    try:
        rt.start(SupervisorSpec(children=(
            ChildSpec("sub", mailbox_limit=1, supervisor=SupervisorSpec(
                intensity=Intensity(max_restarts=100, within_seconds=60),
                backoff=Backoff(initial=0, jitter=0),
                children=(
                    ChildSpec("slow", factory=lambda: Gated(slow), start_timeout=30),
                    ChildSpec("w1", factory=lambda: Primary(w1), handler_deadline=5),
                    ChildSpec("w2", factory=lambda: Primary(w2), handler_deadline=5),
                ))),
        )))
        for w in ("w1", "w2"):
            rt.tell(w, "block")
        assert w1.entered.wait(WAIT) and w2.entered.wait(WAIT)
        slow.broken = True
        busy = rt.ask_future("sub", RestartChild("slow"))  # sub is busy starting slow
        assert slow.entered.wait(WAIT)
        clock.advance(6)  # the monitor reports both as hung; sub's mailbox takes only one
        slow.release.set()
        busy.get(timeout=WAIT)
        rec.wait_for(EventKind.RESTARTED, "w1", timeout=WAIT)
        rec.wait_for(EventKind.RESTARTED, "w2", timeout=WAIT)
        assert rt.ask("w2", "who", timeout=WAIT) == "primary"

        w1.entered.clear()
        w1.release = threading.Event()
        gates.append(w1.release)
        rt.tell("w1", "block")  # its replacement hangs too: the monitor is still running
        assert w1.entered.wait(WAIT)
        clock.advance(6)
        rec.wait_for(EventKind.HUNG, "w1", count=2, timeout=WAIT)
    finally:
        for gate in gates:
            gate.set()
        rec.close()
        rt.stop()
