"""Resilience of the runtime: backoff on an injected clock, fallbacks, messages kept across
restarts, fail-fast sends to stopped children, ask failures and timeouts, process-level
exceptions inside one actor, hung handlers, and timers that die with their instance.

Nothing here sleeps: tests wait on supervision events, futures or threading.Events with
timeouts, and move time with ManualClock.advance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pytest

from supervisor import (
    ActorCrashed,
    ActorNotRunning,
    AskTimeout,
    Backoff,
    ChildInfo,
    ChildSpec,
    ChildState,
    Clock,
    EventKind,
    EventRecorder,
    Fallback,
    Intensity,
    ManualClock,
    RestartType,
    Runtime,
    Strategy,
    SupervisedActor,
    SupervisorSpec,
)

WAIT = 10.0  # upper bound for any wait; never reached unless something is wrong
IMMEDIATE = Backoff(initial=0, jitter=0)
ROOMY = Intensity(max_restarts=1000, within_seconds=60)  # nothing escalates


# -- test actors ---------------------------------------------------------------------------
class Probe:
    """What the instances of one child did, shared across its incarnations (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handled: list[tuple[int, Any]] = []
        self.broken = False  # on_start of the primary fails while set
        self.block_start = False  # on_start blocks on ``gate`` while set
        self.gate = threading.Event()  # releases a blocked handler or on_start
        self.entered = threading.Event()  # set when a handler or on_start starts blocking
        self.threads: dict[int, threading.Thread] = {}
        self.stopped: dict[int, threading.Event] = {}

    def record(self, incarnation: int, message: Any) -> None:
        with self._lock:
            self._handled.append((incarnation, message))

    def handled(self, incarnation: int | None = None) -> list[Any]:
        with self._lock:
            return [m for i, m in self._handled if incarnation is None or i == incarnation]

    def entries(self) -> list[tuple[int, Any]]:
        with self._lock:
            return list(self._handled)

    def stop_event(self, incarnation: int) -> threading.Event:
        with self._lock:
            return self.stopped.setdefault(incarnation, threading.Event())


@dataclass(frozen=True)
class Boom:
    """Makes a Worker raise ``exc(text)`` in its handler."""

    exc: type[BaseException]
    text: str = "boom"


class Worker(SupervisedActor):
    """Records every message with its incarnation; see ``on_receive`` for what each does."""

    role = "primary"

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe
        self.count = 0

    def on_start(self) -> None:
        self.probe.threads[self.ctx.incarnation] = threading.current_thread()
        if self.probe.block_start:
            self.probe.entered.set()
            self.probe.gate.wait(WAIT)
        if self.probe.broken:
            raise RuntimeError(f"{self.role} cannot start")

    def on_stop(self) -> None:
        self.probe.stop_event(self.ctx.incarnation).set()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.probe.stop_event(self.ctx.incarnation).set()

    def on_receive(self, message: Any) -> Any:
        incarnation = self.ctx.incarnation
        self.probe.record(incarnation, message)
        if isinstance(message, Boom):
            raise message.exc(message.text)
        if message == "block":
            self.probe.entered.set()
            self.probe.gate.wait(WAIT)
        elif message == "count":
            self.count += 1
            return self.count
        elif message == "arm":
            self.ctx.schedule(5, "tick")
        elif message == "quit":
            self.stop()
        return (self.role, incarnation)


class Backup(Worker):
    """The fallback: a different class that always starts."""

    role = "fallback"

    def on_start(self) -> None:
        self.probe.threads[self.ctx.incarnation] = threading.current_thread()


# -- harness -------------------------------------------------------------------------------
class Harness:
    """Starts runtimes and probes for one test and always cleans them up."""

    def __init__(self) -> None:
        self._runtimes: list[Runtime] = []
        self._probes: list[Probe] = []

    def probe(self) -> Probe:
        probe = Probe()
        self._probes.append(probe)
        return probe

    def start(
        self,
        *children: ChildSpec,
        clock: Clock | None = None,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        backoff: Backoff = IMMEDIATE,
        intensity: Intensity = ROOMY,
        **runtime_kwargs: Any,
    ) -> tuple[Runtime, EventRecorder]:
        runtime_kwargs.setdefault("monitor_interval", 0.0)  # tests call check_hung themselves
        rt = Runtime(clock=clock, **runtime_kwargs)
        self._runtimes.append(rt)
        recorder = EventRecorder(rt.events)
        rt.start(
            SupervisorSpec(
                strategy=strategy, intensity=intensity, backoff=backoff, children=children
            ),
            name="root",
        )
        return rt, recorder

    def close(self) -> None:
        for probe in self._probes:
            probe.block_start = False
            probe.gate.set()
        for rt in self._runtimes:
            rt.stop()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()


def children(rt: Runtime, supervisor: str = "root") -> dict[str, ChildInfo]:
    """The supervisor's view of its children. Being an ask, it is also a barrier: the
    supervisor has handled everything queued before it (reports, restarts, timers)."""
    return {info.id: info for info in rt.which_children(supervisor, timeout=WAIT)}


def worker(name: str, probe: Probe, **kwargs: Any) -> ChildSpec:
    return ChildSpec(name, factory=lambda: Worker(probe), **kwargs)


def delays(recorder: EventRecorder, name: str) -> list[float | None]:
    return [e.delay for e in recorder.of(EventKind.RESTARTING, name)]


# -- 1-3: backoff on an injected clock -----------------------------------------------------
def test_backoff_delays_double_up_to_the_maximum_and_restart_waits_for_the_clock(
    h: Harness,
) -> None:
    clock = ManualClock()
    probe = h.probe()
    rt, rec = h.start(
        worker("w", probe),
        clock=clock,
        backoff=Backoff(initial=1, multiplier=2, maximum=8, jitter=0, reset_after=1000),
    )
    for n, delay in enumerate([1, 2, 4, 8, 8], start=1):
        rt.tell("w", Boom(TypeError))
        event = rec.wait_for(EventKind.RESTARTING, "w", count=n, timeout=WAIT)[-1]
        assert event.delay == pytest.approx(delay)
        # Down, and it stays down until the clock has moved the whole delay.
        assert children(rt)["w"].state == "restarting"
        assert clock.pending() == [pytest.approx(delay)]
        clock.advance(delay - 0.25)
        assert children(rt)["w"].state == "restarting"
        assert len(rec.of(EventKind.RESTARTED, "w")) == n - 1
        assert rt.cell("w").incarnation == n
        clock.advance(0.25)
        rec.wait_for(EventKind.RESTARTED, "w", count=n, timeout=WAIT)
        assert rt.cell("w").state is ChildState.RUNNING
        assert rt.cell("w").incarnation == n + 1
    assert delays(rec, "w") == [1, 2, 4, 8, 8]
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 6)
    assert clock.pending() == []


def test_backoff_resets_once_the_child_has_run_for_reset_after(h: Harness) -> None:
    clock = ManualClock()
    probe = h.probe()
    rt, rec = h.start(
        worker("w", probe),
        clock=clock,
        backoff=Backoff(initial=1, multiplier=2, maximum=60, jitter=0, reset_after=10),
    )

    def crash_and_restart(ran_for: float) -> float:
        clock.advance(ran_for)  # the instance runs this long before it crashes
        before = len(rec.of(EventKind.RESTARTED, "w"))
        rt.tell("w", Boom(TypeError))
        n = len(rec.of(EventKind.RESTARTING, "w")) + 1
        delay = rec.wait_for(EventKind.RESTARTING, "w", count=n, timeout=WAIT)[-1].delay
        assert delay is not None
        children(rt)  # the restart timer is armed
        clock.advance(delay)
        rec.wait_for(EventKind.RESTARTED, "w", count=before + 1, timeout=WAIT)
        return delay

    assert crash_and_restart(0) == 1
    assert crash_and_restart(0) == 2
    assert crash_and_restart(9.5) == 4  # ran for less than reset_after: the streak goes on
    assert crash_and_restart(10) == 1  # ran for reset_after: back to the initial delay
    assert crash_and_restart(0) == 2
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 6)


def test_jitter_adds_between_zero_and_jitter_seconds(h: Harness) -> None:
    clock = ManualClock()
    probe = h.probe()
    jitter = 0.5
    rt, rec = h.start(
        worker("w", probe),
        clock=clock,
        backoff=Backoff(initial=1, multiplier=2, maximum=100, jitter=jitter, reset_after=1000),
    )
    bases = [1, 2, 4, 8, 16]
    seen: list[float] = []
    for n, base in enumerate(bases, start=1):
        rt.tell("w", Boom(TypeError))
        delay = rec.wait_for(EventKind.RESTARTING, "w", count=n, timeout=WAIT)[-1].delay
        assert delay is not None
        assert base <= delay <= base + jitter
        seen.append(delay)
        children(rt)
        clock.advance(delay)
        rec.wait_for(EventKind.RESTARTED, "w", count=n, timeout=WAIT)
    assert any(d > b for d, b in zip(seen, bases, strict=True)), "jitter was never applied"

    policy = Backoff(initial=1, multiplier=2, maximum=100, jitter=jitter)
    samples = [policy.delay(3) for _ in range(200)]
    assert all(4 <= d <= 4 + jitter for d in samples)
    assert max(samples) - min(samples) > jitter / 10  # spread, not a constant


# -- 4: fallback ---------------------------------------------------------------------------
def test_fallback_takes_over_after_k_failures_and_the_primary_comes_back(h: Harness) -> None:
    clock = ManualClock()
    probe = h.probe()
    spec = ChildSpec(
        "feed",
        factory=lambda: Worker(probe),
        fallback=Fallback(
            lambda: Backup(probe), after=3, retry_primary_after=30, description="cached feed"
        ),
    )
    rt, rec = h.start(
        spec,
        clock=clock,
        backoff=Backoff(initial=1, multiplier=2, maximum=60, jitter=0, reset_after=1000),
    )
    assert rt.ask("feed", "who", timeout=WAIT) == ("primary", 1)

    probe.broken = True
    rt.tell("feed", Boom(TypeError))  # failure 1: the crash
    assert rec.wait_for(EventKind.RESTARTING, "feed", timeout=WAIT)[-1].delay == 1
    children(rt)
    clock.advance(1)  # failure 2: the primary does not start
    rec.wait_for(EventKind.START_FAILED, "feed", count=1, timeout=WAIT)
    assert rec.wait_for(EventKind.RESTARTING, "feed", count=2, timeout=WAIT)[-1].delay == 2
    assert children(rt)["feed"].state == "restarting"
    assert rec.of(EventKind.FELL_BACK, "feed") == []
    assert not rt.cell("feed").using_fallback
    clock.advance(2)  # failure 3: K reached, the fallback starts at once
    rec.wait_for(EventKind.START_FAILED, "feed", count=2, timeout=WAIT)
    fell_back = rec.wait_for(EventKind.FELL_BACK, "feed", timeout=WAIT)
    assert "cached feed" in fell_back[0].reason
    rec.wait_for(EventKind.RESTARTED, "feed", count=1, timeout=WAIT)
    assert rt.cell("feed").using_fallback
    role, _ = rt.ask("feed", "who", timeout=WAIT)  # the same name, now the fallback
    assert role == "fallback"
    assert children(rt)["feed"].fallback_active

    # The primary is tried again after retry_primary_after; still broken, so the fallback stays.
    clock.advance(29)
    assert children(rt)["feed"].state == "running"
    assert len(rec.of(EventKind.START_FAILED, "feed")) == 2
    clock.advance(1)
    rec.wait_for(EventKind.START_FAILED, "feed", count=3, timeout=WAIT)
    rec.wait_for(EventKind.RESTARTED, "feed", count=2, timeout=WAIT)
    assert rt.ask("feed", "who", timeout=WAIT)[0] == "fallback"
    assert rt.cell("feed").using_fallback
    assert rec.of(EventKind.PRIMARY_RESTORED, "feed") == []

    # Fixed: the next retry brings the primary back under the same name.
    probe.broken = False
    children(rt)  # the next RetryPrimary timer is armed
    clock.advance(30)
    rec.wait_for(EventKind.PRIMARY_RESTORED, "feed", timeout=WAIT)
    role, incarnation = rt.ask("feed", "who", timeout=WAIT)
    assert role == "primary"
    assert incarnation == rt.cell("feed").incarnation
    assert not rt.cell("feed").using_fallback
    assert not children(rt)["feed"].fallback_active
    assert clock.pending() == []  # no more primary retries once it is back


# -- 5: messages kept across a restart -----------------------------------------------------
def test_messages_sent_during_a_restart_reach_the_replacement_in_order(h: Harness) -> None:
    clock = ManualClock()
    probe = h.probe()
    rt, rec = h.start(
        worker("w", probe),
        clock=clock,
        backoff=Backoff(initial=5, multiplier=2, maximum=60, jitter=0, reset_after=1000),
    )
    dead_before = rt.dead_letters
    for message in ["a", Boom(TypeError), "b", "c"]:  # b and c queue behind the failure
        rt.tell("w", message)
    assert rec.wait_for(EventKind.RESTARTING, "w", timeout=WAIT)[-1].delay == 5
    assert children(rt)["w"].state == "restarting"
    for message in ["d", "e", "f"]:  # sent while no instance runs
        rt.tell("w", message)
    assert rt.cell("w").state is ChildState.RESTARTING
    node = rt.tree()
    assert node is not None
    assert [c.mailbox for c in node.children if c.name == "w"] == [5]
    assert probe.handled() == ["a", Boom(TypeError)]

    clock.advance(5)
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 2)
    assert probe.handled(1) == ["a", Boom(TypeError)]
    assert probe.handled(2) == ["b", "c", "d", "e", "f", "who"]
    assert rt.dead_letters == dead_before + 1  # only the failing message is lost
    assert len(rec.of(EventKind.CRASHED, "w")) == 1


# -- 6: stopped for good -------------------------------------------------------------------
def test_messages_to_a_terminated_child_fail_fast(h: Harness) -> None:
    probe = h.probe()
    rt, rec = h.start(worker("w", probe), worker("other", h.probe()))
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 1)
    rt.terminate_child("w", timeout=WAIT)
    assert rt.cell("w").state is ChildState.TERMINATED
    assert len(rec.of(EventKind.STOPPED, "w")) == 1
    with pytest.raises(ActorNotRunning):
        rt.tell("w", "hello")
    with pytest.raises(ActorNotRunning):  # at once: not an AskTimeout after WAIT seconds
        rt.ask("w", "who", timeout=WAIT)
    dead_before = rt.dead_letters
    assert rt.try_tell("w", "hello") is False
    assert rt.dead_letters == dead_before + 1
    assert probe.handled() == ["who"]
    assert rt.ask("other", "who", timeout=WAIT) == ("primary", 1)


def test_messages_to_a_transient_child_after_its_normal_exit_fail_fast(h: Harness) -> None:
    probe = h.probe()
    rt, rec = h.start(worker("t", probe, restart=RestartType.TRANSIENT))
    rt.tell("t", "quit")
    rec.wait_for(EventKind.EXITED, "t", timeout=WAIT)
    rec.wait_for(EventKind.STOPPED, "t", timeout=WAIT)
    assert rt.cell("t").state is ChildState.STOPPED
    with pytest.raises(ActorNotRunning):
        rt.tell("t", "hello")
    with pytest.raises(ActorNotRunning):
        rt.ask("t", "who", timeout=WAIT)
    assert rec.of(EventKind.RESTARTED, "t") == []
    assert rt.cell("t").incarnation == 1


def test_an_ask_waiting_in_the_mailbox_of_a_terminated_child_fails(h: Harness) -> None:
    probe = h.probe()
    rt, rec = h.start(worker("slow", probe, shutdown=0))
    rt.tell("slow", "block")
    assert probe.entered.wait(WAIT)
    waiting = rt.ask_future("slow", "who")  # queued behind the blocked handler
    rt.terminate_child("slow", timeout=WAIT)
    with pytest.raises(ActorNotRunning):
        waiting.get(timeout=WAIT)
    assert rec.of(EventKind.SHUTDOWN_TIMEOUT, "slow")  # abandoned, still blocked
    probe.gate.set()
    assert probe.stop_event(1).wait(WAIT)
    assert probe.handled() == ["block"]  # the blocked instance never took the ask


# -- 7: a failing ask ----------------------------------------------------------------------
def test_ask_failure_reaches_the_caller_and_the_supervisor_applies_the_directive(
    h: Harness,
) -> None:
    probe = h.probe()
    rt, rec = h.start(worker("w", probe))
    assert rt.ask("w", "count", timeout=WAIT) == 1
    assert rt.ask("w", "count", timeout=WAIT) == 2

    with pytest.raises(ValueError, match="bad input"):
        rt.ask("w", Boom(ValueError, "bad input"), timeout=WAIT)
    rec.wait_for(EventKind.RESUMED, "w", timeout=WAIT)
    assert rt.ask("w", "count", timeout=WAIT) == 3  # same instance, state kept
    assert rt.cell("w").incarnation == 1
    assert rec.of(EventKind.RESTARTING, "w") == []

    with pytest.raises(TypeError, match="bug"):
        rt.ask("w", Boom(TypeError, "bug"), timeout=WAIT)
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    assert rt.ask("w", "count", timeout=WAIT) == 1  # a fresh instance
    assert rt.cell("w").incarnation == 2
    crashed = rec.of(EventKind.CRASHED, "w")
    assert len(crashed) == 2
    assert all(e.reason.startswith("ask ") for e in crashed)


# -- 8: SystemExit and KeyboardInterrupt stay inside one actor ------------------------------
@pytest.mark.parametrize("signal", [SystemExit, KeyboardInterrupt])
def test_process_level_exception_restarts_only_that_actor(
    h: Harness, signal: type[BaseException]
) -> None:
    victim, bystander = h.probe(), h.probe()
    rt, rec = h.start(worker("victim", victim), worker("bystander", bystander))
    assert rt.ask("bystander", "count", timeout=WAIT) == 1

    with pytest.raises(ActorCrashed) as caught:
        rt.ask("victim", Boom(signal, "bye"), timeout=WAIT)
    assert isinstance(caught.value.original, signal)
    assert isinstance(caught.value.__cause__, signal)
    rec.wait_for(EventKind.RESTARTED, "victim", count=1, timeout=WAIT)
    assert rt.ask("victim", "who", timeout=WAIT) == ("primary", 2)

    rt.tell("victim", Boom(signal, "again"))  # from a tell, too
    rec.wait_for(EventKind.RESTARTED, "victim", count=2, timeout=WAIT)
    assert rt.ask("victim", "who", timeout=WAIT) == ("primary", 3)

    assert rt.ask("bystander", "count", timeout=WAIT) == 2  # untouched, state kept
    assert rt.cell("bystander").incarnation == 1
    assert rt.cell("root").state is ChildState.RUNNING
    assert not rt.wait(0)
    assert rt.exit_code is None


# -- 9: every ask has a timeout ------------------------------------------------------------
def test_ask_to_a_blocked_actor_times_out(h: Harness) -> None:
    probe = h.probe()
    rt, _ = h.start(worker("w", probe), ask_timeout=0.3)
    rt.tell("w", "block")
    assert probe.entered.wait(WAIT)

    with pytest.raises(AskTimeout) as explicit:
        rt.ask("w", "who", timeout=0.2)
    assert explicit.value.timeout == 0.2
    assert isinstance(explicit.value, TimeoutError)

    with pytest.raises(AskTimeout) as default:
        rt.ask("w", "who")  # the runtime's ask_timeout
    assert default.value.timeout == 0.3

    probe.gate.set()
    assert rt.ask("w", "count", timeout=WAIT) == 1  # it answers again once unblocked


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_runtime_refuses_an_ask_timeout_that_is_not_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="ask_timeout"):
        Runtime(ask_timeout=timeout)


# -- 10: hung handlers ---------------------------------------------------------------------
def test_hung_handler_is_replaced_and_never_takes_another_message(h: Harness) -> None:
    clock = ManualClock()
    probe = h.probe()
    rt, rec = h.start(worker("w", probe, handler_deadline=5), clock=clock)
    dead_before = rt.dead_letters
    rt.tell("w", "block")
    assert probe.entered.wait(WAIT)

    clock.advance(4.5)
    assert rt.check_hung() == []  # within its deadline
    clock.advance(1)
    assert rt.check_hung() == ["w"]
    hung = rec.wait_for(EventKind.HUNG, "w", timeout=WAIT)
    assert "HandlerTimeout" in (hung[0].error or "")
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)

    # The replacement serves while the old instance is still blocked.
    old_thread = probe.threads[1]
    for message in ["m1", "m2"]:
        rt.tell("w", message)
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 2)
    assert old_thread.is_alive()
    assert not probe.gate.is_set()
    assert rt.check_hung() == []  # reported once, not again

    probe.gate.set()
    old_thread.join(WAIT)
    assert not old_thread.is_alive()
    assert probe.stop_event(1).is_set()
    for message in ["m3", "m4"]:
        rt.tell("w", message)
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 2)

    assert probe.entries() == [
        (1, "block"),
        (2, "m1"),
        (2, "m2"),
        (2, "who"),
        (2, "m3"),
        (2, "m4"),
        (2, "who"),
    ]
    assert rt.dead_letters == dead_before + 1  # the message it hung on is lost and counted


# -- 11: timers belong to one instance -----------------------------------------------------
def test_timers_scheduled_by_an_instance_are_cancelled_when_it_restarts(h: Harness) -> None:
    clock = ManualClock()
    probe = h.probe()
    rt, rec = h.start(worker("w", probe), clock=clock)
    rt.ask("w", "arm", timeout=WAIT)  # incarnation 1 schedules a tick in 5s
    assert clock.pending() == [5]

    rt.tell("w", Boom(TypeError))
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    assert clock.pending() == []
    clock.advance(10)
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 2)
    assert "tick" not in probe.handled()

    # Control: the replacement's own timer does fire.
    rt.ask("w", "arm", timeout=WAIT)
    clock.advance(5)
    assert rt.ask("w", "who", timeout=WAIT) == ("primary", 2)
    assert probe.entries()[-2:] == [(2, "tick"), (2, "who")]
