"""sd_notify and the watchdog, against real datagram sockets and a real actor tree.

A bound ``AF_UNIX``/``SOCK_DGRAM`` socket stands in for systemd's notification socket: the
tests point ``NOTIFY_SOCKET`` at it (a path, or an abstract '@name') and read what arrives.
Time is a ManualClock; the session's main loop is simulated by advancing it in 0.25 s steps
and calling ``tick``. Nothing sleeps: waits are socket timeouts, events and futures.
One test runs ``botvisor run`` as a real process under a fake systemd socket.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from supervisor import (
    Backoff,
    ChildSpec,
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
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.host.health import HealthPolicy, TreeHealth
from supervisor.host.sd_notify import Notifier, SystemdService, monotonic_usec
from tests.conftest import REPO, BotProcess

IMMEDIATE = Backoff(initial=0, jitter=0)
STEP = 0.25  # one simulated main-loop tick (exact in binary, so ping times compare exactly)
WATCHDOG_USEC = 2_000_000  # systemd's WatchdogSec=2 -> a ping every 1 s
POLICY = HealthPolicy(down_grace=5.0, max_restarts=2, restart_window=60.0, summary_window=600)


# -- a fake systemd ------------------------------------------------------------------------
class Listener:
    """A real datagram socket in systemd's place; each datagram parsed into a dict."""

    def __init__(self, bind_to: str, notify_socket: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.notify_socket = notify_socket
        self.seen: list[dict[str, str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.notify_socket, **extra}

    @staticmethod
    def _parse(data: bytes) -> dict[str, str]:
        fields = {}
        for line in data.decode().split("\n"):
            key, _, value = line.partition("=")
            fields[key] = value
        return fields

    def receive(self, timeout: float = 5.0) -> dict[str, str]:
        """The next datagram; fails the test if none comes within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            message = self._parse(self.sock.recv(65536))
        except TimeoutError:
            raise AssertionError(f"no datagram within {timeout}s; seen: {self.seen}") from None
        self.seen.append(message)
        return message

    def drain(self) -> list[dict[str, str]]:
        """Every datagram that has already arrived (sends to AF_UNIX are synchronous)."""
        self.sock.settimeout(0)
        got = []
        while True:
            try:
                got.append(self._parse(self.sock.recv(65536)))
            except BlockingIOError:
                break
        self.seen.extend(got)
        return got

    def wait_for(self, key: str, timeout: float = 20.0) -> dict[str, str]:
        """Read datagrams until one carries ``key``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {key} within {timeout}s; seen: {self.seen}")
            message = self.receive(remaining)
            if key in message:
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = str(tmp_path / "notify.sock")
    lst = Listener(path, path)
    yield lst
    lst.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"botvisor-test-{uuid.uuid4().hex}"
    lst = Listener("\0" + name, "@" + name)
    yield lst
    lst.close()


# -- a small real tree -----------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """Makes a Worker block in its handler until ``release`` is set."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class Worker(SupervisedActor):
    """Answers pings, crashes on request, or blocks in its handler (to look hung)."""

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return self.ctx.incarnation
        if message == "crash":
            raise RuntimeError("crashes on purpose")
        if isinstance(message, Block):
            message.entered.set()
            message.release.wait(30)
            return None
        raise AssertionError(f"unexpected message {message!r}")


def tree_spec() -> SupervisorSpec:
    return SupervisorSpec(
        intensity=Intensity(max_restarts=50, within_seconds=60),
        backoff=IMMEDIATE,
        children=(
            ChildSpec("steady", factory=Worker, handler_deadline=2.0),
            ChildSpec("flaky", factory=Worker),
            ChildSpec("slow", supervisor=SupervisorSpec(
                backoff=Backoff(initial=100, maximum=100, jitter=0),
                children=(ChildSpec("sleepy", factory=Worker),),
            )),
            ChildSpec("helper", factory=Worker, restart=RestartType.TRANSIENT),
        ),
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def runtime(clock: ManualClock) -> Iterator[Runtime]:
    # A hung handler is reported (HUNG event) but resumed, so the instance stays hung
    # until its handler returns: exactly what the watchdog must notice.
    handler = ErrorHandler({"supervisor.errors.HandlerTimeout":
                            Rule(Severity.ERROR, Directive.RESUME)})
    rt = Runtime(clock=clock, error_handler=handler, monitor_interval=0.5)
    rt.start(tree_spec(), name="root")
    yield rt
    rt.stop()


def make_service(listener: Listener, runtime: Runtime, clock: ManualClock,
                 **env: str) -> SystemdService:
    environ = listener.env(WATCHDOG_USEC=str(WATCHDOG_USEC), **env)
    service = SystemdService(Notifier(environ), policy=POLICY)
    service.attach(clock, TreeHealth(runtime, POLICY))
    return service


def main_loop(clock: ManualClock, service: SystemdService, listener: Listener,
              seconds: float) -> list[tuple[float, dict[str, str]]]:
    """Run the session's main loop for ``seconds`` of clock time; what arrived, and when."""
    got: list[tuple[float, dict[str, str]]] = []
    for _ in range(round(seconds / STEP)):
        clock.advance(STEP)
        service.tick(clock.now())
        got.extend((clock.now(), m) for m in listener.drain())
    return got


def pings(got: list[tuple[float, dict[str, str]]]) -> list[float]:
    return [at for at, m in got if m.get("WATCHDOG") == "1"]


def statuses(got: list[tuple[float, dict[str, str]]]) -> list[str]:
    return [m["STATUS"] for _, m in got if "STATUS" in m]


# -- Notifier ----------------------------------------------------------------------------------
def test_notifier_sends_each_message_to_a_path_socket(listener: Listener) -> None:
    notifier = Notifier(listener.env())
    assert notifier.enabled
    assert notifier.ready("tree is up")
    assert listener.receive() == {"READY": "1", "STATUS": "tree is up"}
    assert notifier.status("two\nlines")
    assert listener.receive() == {"STATUS": "two lines"}
    before = monotonic_usec()
    assert notifier.reloading("reloading")
    after = monotonic_usec()
    msg = listener.receive()
    assert msg["RELOADING"] == "1" and msg["STATUS"] == "reloading"
    assert before <= int(msg["MONOTONIC_USEC"]) <= after
    # the same clock systemd uses: CLOCK_MONOTONIC, in microseconds
    assert abs(int(msg["MONOTONIC_USEC"]) - time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6) < 5e6
    assert notifier.stopping()
    assert listener.receive() == {"STOPPING": "1"}
    assert not notifier.watchdog()  # no WATCHDOG_USEC: no watchdog
    assert listener.drain() == []
    notifier.close()


def test_notifier_speaks_to_an_abstract_socket(abstract_listener: Listener) -> None:
    notifier = Notifier(abstract_listener.env(WATCHDOG_USEC="500000"))
    assert notifier.ready()
    assert abstract_listener.receive() == {"READY": "1"}
    assert notifier.watchdog_interval == 0.25
    assert notifier.watchdog()
    assert abstract_listener.receive() == {"WATCHDOG": "1"}
    assert notifier.reloading()
    assert set(abstract_listener.receive()) == {"RELOADING", "MONOTONIC_USEC"}
    notifier.close()


def test_watchdog_settings_come_from_the_environment(listener: Listener) -> None:
    me = os.getpid()
    assert Notifier(listener.env(WATCHDOG_USEC="30000000")).watchdog_interval == 15.0
    assert Notifier(listener.env(WATCHDOG_USEC="30000000",
                                 WATCHDOG_PID=str(me))).watchdog_interval == 15.0
    for bad in ({"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "soon"},
                {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(me + 1)},
                {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "nobody"}):
        notifier = Notifier(listener.env(**bad))
        assert notifier.watchdog_interval is None, bad
        assert not notifier.watchdog()
    # the pid can be given, as systemd gives it to the main process only
    assert Notifier(listener.env(WATCHDOG_USEC="2", WATCHDOG_PID="42"),
                    pid=42).watchdog_interval == 1e-6
    assert listener.drain() == []


def test_without_notify_socket_everything_is_a_no_op(
    runtime: Runtime, clock: ManualClock
) -> None:
    notifier = Notifier({"WATCHDOG_USEC": "2000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not any([notifier.ready("x"), notifier.status("x"), notifier.watchdog(),
                    notifier.reloading(), notifier.stopping()])
    service = SystemdService(notifier)
    service.attach(clock, TreeHealth(runtime))
    timers = clock.pending()
    service.ready()
    for _ in range(8):
        clock.advance(STEP)
        service.tick(clock.now())
    service.reloading()
    service.reloaded([], [])
    service.stopping("test")
    service.stopped(0)
    service.stop()
    assert service.pings == 0
    assert service.last_report is None  # not even judged: nothing to tell
    assert len(clock.pending()) <= len(timers)  # no watchdog timer was scheduled


def test_unreachable_socket_never_raises_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with caplog.at_level(logging.DEBUG, logger="botvisor"):
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not notify systemd" in warnings[0].getMessage()
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).ready()  # unsupported: no-op
    notifier.close()


# -- TreeHealth --------------------------------------------------------------------------------
def test_health_summary_counts_states_and_names_a_terminated_child(
    runtime: Runtime, clock: ManualClock
) -> None:
    health = TreeHealth(runtime, POLICY)
    report = health.check()
    assert report.healthy and report.reason == "ok"
    assert report.summary == "5 actors: 5 running; no restarts in 10 min"
    runtime.terminate_child("flaky")  # the operator stops it: reported, not a failure
    clock.advance(POLICY.down_grace * 2)
    report = health.check()
    assert report.healthy, report.reason
    assert report.summary == "5 actors: 4 running, 1 terminated (flaky); no restarts in 10 min"
    assert report.status_line == report.summary


def test_health_down_past_grace_is_unhealthy_until_it_runs_again(
    runtime: Runtime, clock: ManualClock
) -> None:
    health = TreeHealth(runtime, POLICY)
    recorder = EventRecorder(runtime.events)
    runtime.tell("sleepy", "crash")  # its supervisor backs off 100 s before the restart
    recorder.wait_for(EventKind.RESTARTING, "sleepy")
    report = health.check()
    assert report.healthy, "a restart within the grace period is not a failure"
    assert "1 restarting (sleepy)" in report.summary
    assert "1 restart in 10 min" in report.summary
    clock.advance(POLICY.down_grace + STEP)
    report = health.check()
    assert not report.healthy
    assert report.reason == "sleepy has not been running (restarting) for over 5s"
    assert report.status_line.startswith("UNHEALTHY: sleepy has not been running")
    clock.advance(100)  # the backoff runs out; the supervisor restarts it
    recorder.wait_for(EventKind.RESTARTED, "sleepy")
    assert health.check().healthy
    recorder.close()


def test_health_ended_tree_is_unhealthy(clock: ManualClock) -> None:
    rt = Runtime(clock=clock)
    health = TreeHealth(rt)
    assert health.check().reason == "the tree is not running"
    rt.start(tree_spec())
    assert health.check().healthy
    rt.stop()
    report = health.check()
    assert not report.healthy
    assert report.reason.startswith("the tree has ended (exit 0): stopped")


# -- SystemdService: the watchdog ----------------------------------------------------------------
def test_ready_then_pings_at_half_the_interval_while_healthy(
    listener: Listener, runtime: Runtime, clock: ManualClock
) -> None:
    service = make_service(listener, runtime, clock)
    assert service.interval == 1.0
    start = clock.now()
    service.ready()
    ready, first_ping = listener.drain()
    assert ready["READY"] == "1"
    assert ready["STATUS"] == "5 actors: 5 running; no restarts in 10 min"
    assert first_ping == {"WATCHDOG": "1"}
    got = main_loop(clock, service, listener, 5.0)
    assert pings(got) == [start + n for n in range(1, 6)]
    assert statuses(got) == []  # nothing changed, nothing re-sent
    assert service.pings == 6


def test_hung_permanent_child_stops_pings_until_its_handler_returns(
    listener: Listener, runtime: Runtime, clock: ManualClock
) -> None:
    service = make_service(listener, runtime, clock)
    service.ready()
    listener.drain()
    block = Block()
    runtime.tell("steady", block)
    assert block.entered.wait(10)
    try:
        got = main_loop(clock, service, listener, 2.0)  # still within the 2 s deadline
        assert len(pings(got)) == 2
        got = main_loop(clock, service, listener, 4.0)  # past it: hung
        assert pings(got) == [], "the watchdog must starve while a permanent child hangs"
        assert statuses(got) == [
            "UNHEALTHY: steady is hung: a handler has run past its 2s deadline "
            "| 5 actors: 5 running; no restarts in 10 min"
        ]
        assert service.last_report is not None and not service.last_report.healthy
    finally:
        block.release.set()
    assert runtime.ask("steady", "ping") == 1  # the handler returned; same instance
    got = main_loop(clock, service, listener, 1.0)
    assert pings(got) == [clock.now() - 1.0 + STEP]  # at once, on the first healthy tick
    assert statuses(got) == ["5 actors: 5 running; no restarts in 10 min"]


def test_crash_looping_child_stops_pings_until_its_restarts_age_out(
    listener: Listener, runtime: Runtime, clock: ManualClock
) -> None:
    service = make_service(listener, runtime, clock)
    service.ready()
    listener.drain()
    recorder = EventRecorder(runtime.events)
    crashed_at = clock.now()
    for _ in range(POLICY.max_restarts + 1):
        runtime.tell("flaky", "crash")
    recorder.wait_for(EventKind.RESTARTED, "flaky", count=POLICY.max_restarts + 1)
    assert runtime.ask("flaky", "ping") == POLICY.max_restarts + 2
    got = main_loop(clock, service, listener, 3.0)
    assert pings(got) == []
    assert statuses(got) == [
        "UNHEALTHY: flaky is crash-looping: 3 restarts in 1 min (limit 2) "
        "| 5 actors: 5 running; 3 restarts in 10 min"
    ]
    got = main_loop(clock, service, listener, POLICY.restart_window)
    assert pings(got), "pings resume once the restarts have left the window"
    assert pings(got)[0] == crashed_at + POLICY.restart_window
    assert statuses(got)[-1] == "5 actors: 5 running; 3 restarts in 10 min"
    recorder.close()


def test_watchdog_pid_of_another_process_means_no_pings(
    listener: Listener, runtime: Runtime, clock: ManualClock
) -> None:
    service = make_service(listener, runtime, clock, WATCHDOG_PID=str(os.getpid() + 1))
    assert service.interval is None
    service.ready()
    got = [(clock.now(), m) for m in listener.drain()]
    got += main_loop(clock, service, listener, 3.0)
    assert [m for _, m in got if "READY" in m]  # still tells systemd it is ready
    assert pings(got) == []


def test_reload_keeps_pings_going_and_a_stalled_main_loop_stops_them(
    listener: Listener, runtime: Runtime, clock: ManualClock
) -> None:
    service = make_service(listener, runtime, clock)
    service.ready()
    listener.drain()
    service.reloading()
    (msg,) = listener.drain()
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
    clock.advance(3.0)  # a long reload on the main thread: no ticks, the clock's timer pings
    assert len([m for m in listener.drain() if m.get("WATCHDOG")]) == 3
    service.reloaded(["tree.children[1].settings"], [])
    (msg,) = listener.drain()
    assert msg["READY"] == "1" and msg["STATUS"].startswith("5 actors")
    clock.advance(5.0)  # no reload, no ticks: the main loop is stuck; let systemd see it
    # one more ping falls due within an interval of the last sign of life, then none
    assert len([m for m in listener.drain() if m.get("WATCHDOG")]) == 1
    got = main_loop(clock, service, listener, 1.0)
    assert len(pings(got)) == 1  # it ticks again: pings resume at once


def test_stopping_is_announced_and_ends_the_pings(
    listener: Listener, runtime: Runtime, clock: ManualClock
) -> None:
    service = make_service(listener, runtime, clock)
    service.ready()
    listener.drain()
    service.stopping("received SIGTERM")
    assert listener.drain() == [{"STOPPING": "1", "STATUS": "stopping: received SIGTERM"}]
    got = main_loop(clock, service, listener, 3.0)
    assert got == []
    service.stopped(0)
    service.stop()
    assert listener.drain() == [{"STATUS": "stopped (exit status 0)"}]


# -- the real process --------------------------------------------------------------------------
def test_botvisor_run_talks_to_systemd(
    bot_process: type[BotProcess], listener: Listener, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    shutil.copy(REPO / "config.yaml", config)  # its relative state/ paths land in tmp_path
    bot = bot_process("run", "--config", str(config), cwd=tmp_path,
                      env=listener.env(WATCHDOG_USEC="1000000"))
    ready = listener.wait_for("READY")
    assert "actors:" in ready["STATUS"]
    listener.wait_for("WATCHDOG")  # at once, with READY=1 ...
    listener.wait_for("WATCHDOG")  # ... and again half a WATCHDOG_USEC later
    bot.signal(signal.SIGHUP)
    reloading = listener.wait_for("RELOADING")
    assert 0 < int(reloading["MONOTONIC_USEC"]) <= monotonic_usec()
    listener.wait_for("READY")
    bot.signal(signal.SIGTERM)
    stopping = listener.wait_for("STOPPING")
    assert stopping["STATUS"] == "stopping: received SIGTERM"
    assert bot.wait() == 0
    assert (tmp_path / "state").is_dir()
