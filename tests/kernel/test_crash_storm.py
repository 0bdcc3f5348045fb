"""Crash storm: hundreds of crashing and normal messages from several threads across a
three-level tree; afterwards every worker answers, the tree is intact, every handled crash
was reported, and no runtime thread outlives the runtime.

Nothing here sleeps: waits are futures, thread joins and supervision events with timeouts.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pykka
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
    Strategy,
    SupervisedActor,
    SupervisorSpec,
    TreeNode,
)

WAIT = 10.0
SEED = 20240611
SENDERS = 4
PER_SENDER = 100  # 400 messages in all
CRASH_SHARE = 0.4
CRASHES: tuple[type[BaseException], ...] = (
    TypeError,  # restart
    KeyError,  # restart (LookupError)
    ZeroDivisionError,  # restart (ArithmeticError)
    RuntimeError,  # restart (default rule)
    ConnectionError,  # restart, retryable
    ValueError,  # resume
    SystemExit,  # restart; never leaves the actor
    KeyboardInterrupt,  # restart; never leaves the actor
)
ALPHA = [f"a{i}" for i in range(1, 6)]
BETA = [f"b{i}" for i in range(1, 6)]
WORKERS = ALPHA + BETA


@dataclass(frozen=True)
class Crash:
    exc: type[BaseException]
    seq: int


@dataclass(frozen=True)
class Work:
    seq: int


class Ledger:
    """What all workers handled, by worker name (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.crashes: Counter[str] = Counter()
        self.work: Counter[str] = Counter()

    def crash(self, name: str) -> None:
        with self._lock:
            self.crashes[name] += 1

    def worked(self, name: str) -> None:
        with self._lock:
            self.work[name] += 1


class StormWorker(SupervisedActor):
    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def on_receive(self, message: Any) -> Any:
        name = self.ctx.name
        if isinstance(message, Crash):
            self.ledger.crash(name)
            raise message.exc(f"storm #{message.seq}")
        if isinstance(message, Work):
            self.ledger.worked(name)
            return None
        return (name, self.ctx.incarnation)


def shape(node: TreeNode) -> tuple[Any, ...]:
    return (node.name, node.kind, tuple(shape(child) for child in node.children))


def botvisor_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("botvisor")}


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    try:
        yield started
    finally:
        for rt in started:
            rt.stop()


def build_storm_tree(ledger: Ledger) -> SupervisorSpec:
    def workers(names: list[str]) -> tuple[ChildSpec, ...]:
        return tuple(ChildSpec(n, factory=lambda: StormWorker(ledger)) for n in names)

    roomy = Intensity(max_restarts=100_000, within_seconds=1)
    quick = Backoff(initial=0.001, maximum=0.005, multiplier=2, jitter=0.001, reset_after=60)
    return SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=roomy,
        backoff=quick,
        children=(
            ChildSpec(
                "alpha",
                supervisor=SupervisorSpec(
                    strategy=Strategy.ONE_FOR_ALL,
                    intensity=roomy,
                    backoff=quick,
                    children=workers(ALPHA),
                ),
            ),
            ChildSpec(
                "beta",
                supervisor=SupervisorSpec(
                    strategy=Strategy.REST_FOR_ONE,
                    intensity=roomy,
                    backoff=quick,
                    children=workers(BETA),
                ),
            ),
        ),
    )


def test_crash_storm(runtimes: list[Runtime]) -> None:
    threads_before = botvisor_threads()
    ledger = Ledger()
    rt = Runtime(ask_timeout=WAIT, monitor_interval=0.05)
    runtimes.append(rt)
    rec = EventRecorder(rt.events)
    rt.start(build_storm_tree(ledger), name="root")
    tree_before = rt.tree()
    assert tree_before is not None
    assert [n.name for n in tree_before.walk()] == ["root", "alpha", *ALPHA, "beta", *BETA]

    # -- the storm ------------------------------------------------------------------------
    sent_crashes: list[Counter[str]] = [Counter() for _ in range(SENDERS)]
    sent_work: list[Counter[str]] = [Counter() for _ in range(SENDERS)]
    start_line = threading.Barrier(SENDERS, timeout=WAIT)

    def sender(index: int) -> None:
        rng = random.Random(SEED + index)
        start_line.wait()
        for i in range(PER_SENDER):
            target = rng.choice(WORKERS)
            seq = index * PER_SENDER + i
            if rng.random() < CRASH_SHARE:
                rt.tell(target, Crash(rng.choice(CRASHES), seq))
                sent_crashes[index][target] += 1
            else:
                rt.tell(target, Work(seq))
                sent_work[index][target] += 1

    with ThreadPoolExecutor(SENDERS, thread_name_prefix="storm-sender") as pool:
        futures = [pool.submit(sender, i) for i in range(SENDERS)]
        for future in futures:
            future.result(timeout=WAIT)  # re-raises anything a sender hit
    crashes: Counter[str] = sum(sent_crashes, Counter())
    work: Counter[str] = sum(sent_work, Counter())
    total_crashes = sum(crashes.values())
    assert sum(work.values()) + total_crashes == SENDERS * PER_SENDER
    assert total_crashes >= 100
    assert set(crashes) == set(WORKERS)  # every worker was hit

    # -- every worker answers again -------------------------------------------------------
    deadline = time.monotonic() + 30
    unanswered = set(WORKERS)
    while unanswered and time.monotonic() < deadline:
        asks = {name: rt.ask_future(name, "ping") for name in sorted(unanswered)}
        for name, future in asks.items():
            try:
                reply = future.get(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except pykka.Timeout:
                continue
            assert reply[0] == name
            unanswered.discard(name)
    assert not unanswered, f"no answer from {sorted(unanswered)}"

    # Each ping queued behind all storm messages, so each was handled, none lost.
    assert dict(ledger.crashes) == dict(crashes)
    assert dict(ledger.work) == dict(work)

    # -- every handled crash was reported -------------------------------------------------
    with contextlib.suppress(TimeoutError):  # the comparison below says which are missing
        rec.wait_for(EventKind.CRASHED, count=total_crashes, timeout=WAIT)
    reported = Counter(e.actor for e in rec.of(EventKind.CRASHED))
    assert dict(reported) == dict(ledger.crashes), "crashed events != crashes handled"
    assert rt.dead_letters == total_crashes  # each failing tell is lost and counted once
    assert rec.of(EventKind.ESCALATED) == []

    # -- the tree is intact ---------------------------------------------------------------
    # Restarts triggered by the last reports may still be under way: wait for them.
    assert rec.wait_until(
        lambda: all(rt.cell(n).state is ChildState.RUNNING for n in WORKERS), timeout=WAIT
    ), {n: rt.cell(n).state for n in WORKERS}
    tree_after = rt.tree()
    assert tree_after is not None
    assert shape(tree_after) == shape(tree_before)
    for name in WORKERS:
        assert rt.cell(name).state is ChildState.RUNNING, name
    assert {n.name: n.state for n in tree_after.walk()} == {
        n.name: "running" for n in tree_before.walk()
    }
    for sup in ("root", "alpha", "beta"):
        assert rt.cell(sup).incarnation == 1, f"{sup} was restarted"
    assert rt.exit_code is None

    # -- nothing is left running after stop -----------------------------------------------
    rt.stop()
    leftover = botvisor_threads() - threads_before
    for thread in leftover:
        thread.join(WAIT)
    alive = sorted(t.name for t in leftover if t.is_alive())
    assert alive == [], f"threads still running after stop: {alive}"


# -- the race the storm hits, made deterministic -------------------------------------------
class Gated(SupervisedActor):
    """A worker whose on_start can be held, to keep its supervisor busy starting it."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def on_start(self) -> None:
        self.gate.threads[(self.ctx.name, self.ctx.incarnation)] = threading.current_thread()
        if self.gate.hold_start and self.ctx.name == "gk":
            self.gate.entered.set()
            self.gate.release.wait(WAIT)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        return self.ctx.incarnation


class Gate:
    def __init__(self) -> None:
        self.hold_start = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: dict[tuple[str, int], threading.Thread] = {}


@pytest.mark.parametrize("error", [TypeError, ValueError])
def test_two_siblings_crashing_together_are_both_reported(
    runtimes: list[Runtime], error: type[Exception]
) -> None:
    """Under one_for_all, b crashes while its supervisor is busy; by the time the supervisor
    reads b's report it has already stopped b for a's group restart. b's failed message
    must still be reported (a crashed event) and counted as a dead letter."""
    gate = Gate()
    rt = Runtime(clock=ManualClock(), monitor_interval=0)
    runtimes.append(rt)
    rec = EventRecorder(rt.events)
    rt.start(
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ALL,
            intensity=Intensity(100, 60),
            backoff=Backoff(initial=0, jitter=0),
            children=tuple(
                ChildSpec(name, factory=lambda: Gated(gate)) for name in ("a", "b", "gk")
            ),
        )
    )
    dead_before = rt.dead_letters
    try:
        gate.hold_start = True
        with ThreadPoolExecutor(1) as pool:
            restarting = pool.submit(rt.restart_child, "gk", timeout=WAIT)
            assert gate.entered.wait(WAIT)  # the supervisor is busy starting gk
            # Both reports queue at the supervisor, behind gk's start: a's, then b's.
            rt.tell("a", TypeError("a fails"))
            gate.threads[("a", 1)].join(WAIT)  # a reports, then its thread ends
            assert not gate.threads[("a", 1)].is_alive()
            rt.tell("b", error("b fails"))
            if error is ValueError:  # b resumes: it reports before taking its next message
                assert rt.ask("b", "who", timeout=WAIT) == 1
            else:
                gate.threads[("b", 1)].join(WAIT)
                assert not gate.threads[("b", 1)].is_alive()
            gate.hold_start = False
            gate.release.set()
            restarting.result(timeout=WAIT)
    finally:
        gate.hold_start = False
        gate.release.set()

    rec.wait_for(EventKind.RESTARTED, "a", timeout=WAIT)
    assert rt.ask("a", "who", timeout=WAIT) == 2
    assert rt.ask("b", "who", timeout=WAIT) == 2
    rt.which_children("root", timeout=WAIT)  # the supervisor has read every report
    assert len(rec.of(EventKind.CRASHED, "a")) == 1
    assert len(rec.of(EventKind.CRASHED, "b")) == 1, "b's failure went unreported"
    assert rt.dead_letters == dead_before + 2
