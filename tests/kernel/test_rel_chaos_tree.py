"""Faults injected into a real tree (real pykka actors and threads, real files): each kind
happens, is counted, is handled by the supervisor like a real failure, and the tree
recovers. And ``botvisor run --chaos`` as a real process: ``botvisor status`` says so.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.common.storage import atomic_write
from supervisor import (
    Backoff,
    ChildSpec,
    EventKind,
    EventRecorder,
    Intensity,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.errors import AskTimeout
from supervisor.host.chaos import ChaosModel, InjectedHang
from tests.conftest import REPO, BotProcess

NO_BACKOFF = Backoff(initial=0.0, maximum=0.0, jitter=0.0)
MANY = Intensity(max_restarts=10_000, within_seconds=60)


class Hang:
    """The message the hang tests fault (only this type is eligible there)."""


class Counter(SupervisedActor):
    """Counts the messages it handled in this incarnation; answers an ask with
    (incarnation, count)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return (self.ctx.incarnation, self.count)


class StateWriter(SupervisedActor):
    """Writes its counter to a state file on every message, through the chaos I/O hook
    (as actors/common/storage.py's helpers are to call it)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.written = 0

    def on_receive(self, message: Any) -> Any:
        chaos = self.ctx.chaos
        if chaos is not None:
            chaos.before_write(self.path)
        atomic_write(self.path, str(message).encode())
        self.written += 1
        return self.written


def _runtime(chaos: dict[str, Any], *children: ChildSpec, monitor: float = 0.25) -> Runtime:
    plan = ChaosModel.model_validate({"enabled": True, "seed": 3, **chaos}).plan()
    rt = Runtime(chaos=plan, monitor_interval=monitor)
    rt.start(SupervisorSpec(intensity=MANY, backoff=NO_BACKOFF, children=children))
    return rt


def _ask_all(rt: Runtime, name: str, n: int) -> list[Any]:
    """Ask ``name`` n times in turn; each outcome is the reply or the exception raised."""
    outcomes: list[Any] = []
    for i in range(n):
        try:
            outcomes.append(rt.ask(name, i, timeout=10))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def test_raised_faults_restart_the_actor_and_are_counted() -> None:
    rt = _runtime({"actors": {"*": {"raise": {"RuntimeError": 0.2}}}},
                  ChildSpec("counter", factory=Counter))
    events = EventRecorder(rt.events)
    try:
        outcomes = _ask_all(rt, "counter", 300)
        injected = [o for o in outcomes if isinstance(o, RuntimeError)]
        assert all("chaos: injected into counter" in str(e) for e in injected)
        assert rt.chaos is not None
        assert rt.chaos.counts() == {"counter": {"raise:RuntimeError": len(injected)}}
        assert 30 < len(injected) < 90
        # classified like a real RuntimeError (error -> restart): one restart per fault,
        # and the replacement answers from a fresh state
        events.wait_for(EventKind.RESTARTED, "counter", count=len(injected))
        replies = [o for o in outcomes if isinstance(o, tuple)]
        assert replies[-1][0] == len(injected) + 1
        assert rt.ask("counter", "after", timeout=10)[0] == len(injected) + 1
        node = rt.tree()
        assert node is not None and node.children[0].state == "running"
        assert node.children[0].restarts == len(injected)
    finally:
        rt.stop()


def test_same_seed_same_message_order_same_faults() -> None:
    def faulted() -> list[int]:
        rt = _runtime({"actors": {"*": {"raise": {"ValueError": 0.3}}}},
                      ChildSpec("counter", factory=Counter))
        try:
            return [i for i, o in enumerate(_ask_all(rt, "counter", 100))
                    if isinstance(o, ValueError)]
        finally:
            rt.stop()

    first = faulted()
    assert first and first == faulted()


def test_a_bad_data_fault_is_resumed_with_the_actor_state_kept() -> None:
    rt = _runtime({"actors": {"*": {"raise": {"ValueError": 0.3}}}},
                  ChildSpec("counter", factory=Counter))
    events = EventRecorder(rt.events)
    try:
        outcomes = _ask_all(rt, "counter", 100)
        faults = sum(isinstance(o, ValueError) for o in outcomes)
        assert faults > 10
        events.wait_for(EventKind.RESUMED, "counter", count=faults)
        # ValueError -> resume: the same instance, which handled every other message
        assert rt.ask("counter", "after", timeout=10) == (1, 100 - faults + 1)
        assert not events.of(EventKind.RESTARTED, "counter")
    finally:
        rt.stop()


def test_a_hang_is_reported_as_hung_and_the_replacement_takes_over() -> None:
    rt = _runtime({"hang_margin": 0.5,
                   "actors": {"*": {"hang": 1.0, "only_messages": ["Hang"]}}},
                  ChildSpec("counter", factory=Counter, handler_deadline=0.2),
                  monitor=0.05)
    events = EventRecorder(rt.events)
    try:
        assert rt.ask("counter", "before", timeout=10) == (1, 1)
        future = rt.ask_future("counter", Hang())
        events.wait_for(EventKind.HUNG, "counter")
        events.wait_for(EventKind.RESTARTED, "counter")
        assert rt.ask("counter", "after", timeout=10) == (2, 1)
        with pytest.raises(InjectedHang):  # the hung handler ends, dropping its message
            future.get(timeout=10)
        assert rt.chaos is not None and rt.chaos.counts() == {"counter": {"hang": 1}}
    finally:
        rt.stop()


def test_stop_ends_a_hang_at_once() -> None:
    rt = _runtime({"hang_margin": 3600, "actors": {"*": {"hang": 1.0}}},
                  ChildSpec("counter", factory=Counter, handler_deadline=3600, shutdown=30))
    events = EventRecorder(rt.events)
    future = rt.ask_future("counter", "hang now")
    with pytest.raises(AskTimeout):
        rt.ask("counter", "queued", timeout=0.2)  # the actor is hung
    rt.stop()  # releases the plan: the hung handler returns, the stop is within budget
    with pytest.raises(InjectedHang):
        future.get(timeout=10)
    assert not events.of(EventKind.SHUTDOWN_TIMEOUT)


def test_slow_handlers_are_counted_and_still_answer() -> None:
    rt = _runtime({"actors": {"*": {"slow": 0.5, "slow_seconds": 0.001}}},
                  ChildSpec("counter", factory=Counter))
    try:
        outcomes = _ask_all(rt, "counter", 100)
        assert outcomes == [(1, i) for i in range(1, 101)]
        assert rt.chaos is not None
        slow = rt.chaos.counts()["counter"]["slow"]
        assert 30 < slow < 70
    finally:
        rt.stop()


def test_state_write_faults_restart_the_writer_and_the_file_stays_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.txt"
    rt = _runtime({"actors": {"writer": {"io_error": 0.3}}},
                  ChildSpec("writer", factory=lambda: StateWriter(path)),
                  ChildSpec("counter", factory=Counter))
    events = EventRecorder(rt.events)
    try:
        assert rt.chaos is not None
        assert rt.chaos.injector("counter", is_supervisor=False) is None  # not named: none
        outcomes = _ask_all(rt, "writer", 100)
        failed = [o for o in outcomes if isinstance(o, OSError)]
        assert failed and all(e.errno in (errno.ENOSPC, errno.EIO, errno.EROFS)
                              for e in failed)
        counts = rt.chaos.counts()["writer"]
        assert sum(counts.values()) == len(failed)
        assert set(counts) <= {"io:ENOSPC", "io:EIO", "io:EROFS"}
        events.wait_for(EventKind.RESTARTED, "writer", count=len(failed))  # OSError: restart
        last_ok = max(i for i, o in enumerate(outcomes) if isinstance(o, int))
        assert path.read_text() == str(last_ok)
    finally:
        rt.stop()


# -- botvisor run --chaos, as a real process ---------------------------------------------------
def _status(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RUNTIME_DIRECTORY="")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "supervisor.host.cli", "status", "--config",
                           str(config), *extra], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("chaos", [True, False])
def test_status_shows_chaos(tmp_path: Path, bot_process: type[BotProcess], chaos: bool) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "chaos": {"actors": {"ticker": {"raise": {"ValueError": 0.5}}}},
        "tree": {"children": [{"name": "ticker", "actor": "tests.support.fixture_actors:Ticker",
                               "settings": {"interval": 0.01}}]},
    }), encoding="utf-8")
    args = ["run", "--config", str(config)] + (["--chaos-seed", "5"] if chaos else [])
    bot = bot_process(*args, env={"RUNTIME_DIRECTORY": ""}, cwd=tmp_path)  # state/ there
    bot.wait_for_line(r"control socket on")
    if chaos:
        assert bot.wait_for_line(r"chaos: fault injection is ON \(seed 5\)")
        bot.wait_for_line(r"chaos: raise:ValueError injected into ticker handling str")
    shown = _status(config)
    assert shown.returncode == 0, shown.stderr
    as_json = _status(config, "--json")
    assert as_json.returncode == 0, as_json.stderr
    reply = json.loads(as_json.stdout)["result"]["chaos"]
    if chaos:
        assert "chaos" in shown.stdout and "ON, seed 5" in shown.stdout
        assert reply["enabled"] is True and reply["seed"] == 5
        assert reply["faults_injected"] >= 1
        assert reply["counts"]["ticker"]["raise:ValueError"] >= 1
    else:
        assert "ON, seed" not in shown.stdout
        assert reply == {"enabled": False}
    bot.signal()
    assert bot.wait() == 0
