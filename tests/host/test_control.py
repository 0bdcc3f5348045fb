"""The control socket in-process: a real tree, a real RunSession, a real unix socket.

What "start counts" means here: ``start NAME`` (like ``restart NAME``) adds one to the
child's ``restarts``, publishes a ``restarted`` event, and counts against its supervisor's
restart intensity, like a restart after a crash: nobody can restart a child faster than its
supervisor allows. ``stop NAME`` counts nowhere.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from supervisor import (
    ChildSpec,
    EventKind,
    EventRecorder,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.errors import ActorNotRunning
from supervisor.host.config import ConfigError, ControlModel, load_config, parse_config
from supervisor.host.control import ControlServer
from supervisor.host.control_protocol import (
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_UNKNOWN_ACTOR,
    EXIT_USAGE,
    ControlClient,
    ControlError,
    LineReader,
    NotRunning,
    OperatorCommand,
    socket_path,
)
from supervisor.host.control_socket import check_peer, peer_credentials
from supervisor.host.reload import ConfigReloader
from supervisor.host.session import RunSession, SessionService
from tests.support.fixture_actors import Echo

WAIT = 10.0
ME = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


# -- actors and config ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpSnapshot:
    """What the Operated actor publishes: read by `status` through the generic adapter."""

    label: str
    level: Decimal
    _private: str = "hidden"

    def metrics(self) -> dict[str, float]:
        return {"doubled": float(self.level * 2)}


class Operated(SupervisedActor):
    """Answers OperatorCommand the way the bot's actors do: a JSON-able dict."""

    def on_start(self) -> None:
        self.ctx.publish(OpSnapshot("ready", Decimal("1.50")))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, OperatorCommand):
            if message.command == "bad":
                return {"error": "operated: no such thing", "code": 2}
            return {"command": message.command, "args": list(message.args),
                    "who": message.who, "reason": message.reason}
        return super().on_receive(message)


def config_text(label: str = "one") -> str:
    return f"""
control:
  targets: {{thing: op, ghost: nobody}}
  status_fields: [op.label, op.level, op.doubled, op._private, nobody.x]
tree:
  intensity: {{max_restarts: 1, within_seconds: 60}}
  children:
    - name: group
      intensity: {{max_restarts: 1, within_seconds: 60}}
      children:
        - {{name: a1, actor: 'tests.support.fixture_actors:Echo', settings: {{label: {label}}}}}
        - {{name: a2, actor: 'tests.support.fixture_actors:Echo', settings: {{label: two}}}}
    - name: op
      actor: tests.host.test_control:Operated
"""


class _Ready(SessionService):
    """Set once every service of the run has started (the control socket included)."""

    name = "ready"

    def __init__(self) -> None:
        self.event = threading.Event()

    def ready(self) -> None:
        self.event.set()


@dataclass
class Bot:
    """A RunSession running in a thread with a ControlServer, and its socket."""

    config: Path
    session: RunSession
    runtime: Runtime
    server: ControlServer
    socket: Path
    code: Future[int]
    thread: threading.Thread

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        return ControlClient(self.socket, timeout=WAIT).request(cmd, args)

    def stop(self) -> None:
        self.session.request_stop("test over")
        assert self.code.result(timeout=WAIT) == 0
        self.thread.join(WAIT)


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    path = tmp_path / "bot.yaml"
    path.write_text(config_text())
    config, spec = load_config(path)
    runtime = Runtime(monitor_interval=0)
    session = RunSession(config, spec, runtime, config_path=path,
                         reloader=ConfigReloader(path))
    server = ControlServer()  # settings and socket path from the session, as `botvisor run`
    ready = _Ready()
    session.services.extend([server, ready])
    code: Future[int] = Future()
    thread = threading.Thread(target=lambda: code.set_result(session.run()))
    thread.start()
    assert ready.event.wait(WAIT), "the run did not get its services up"
    assert server.path is not None
    running = Bot(path, session, runtime, server, server.path, code, thread)
    yield running
    if not code.done():
        running.stop()


class Conn:
    """One raw client connection, for several requests (or broken ones) in a row."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(str(path))
        self.reader = LineReader(self.sock, 1 << 26)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        line = self.reader.next()
        assert isinstance(line, bytes), f"no reply line: {line!r}"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def roundtrip(self, data: bytes) -> dict[str, Any]:
        self.send(data)
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def _plain_runtime() -> Runtime:
    runtime = Runtime(monitor_interval=0)
    runtime.start(SupervisorSpec(children=(
        ChildSpec("a1", factory=lambda: Echo(Echo.Settings(label="solo"))),)))
    return runtime


# -- the socket ---------------------------------------------------------------------------------
def test_socket_is_private_beside_the_config_and_removed_at_stop(bot: Bot) -> None:
    assert bot.socket == bot.config.parent / "run" / "botvisor.sock"
    mode = os.stat(bot.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(bot.socket.parent).st_mode) == 0o700
    assert bot.ask("ping") == {"ok": True, "result": {"pid": os.getpid()}}
    bot.stop()
    assert not bot.socket.exists()
    assert not bot.socket.parent.exists()  # we made run/, and it is empty again
    with pytest.raises(NotRunning) as caught:
        bot.ask("status")
    assert caught.value.code == EXIT_NOT_RUNNING


def test_socket_path_rule(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    assert socket_path(cfg, {}) == tmp_path / "etc" / "run" / "botvisor.sock"
    assert socket_path(cfg, {"RUNTIME_DIRECTORY": ""}) == socket_path(cfg, {})
    assert socket_path(cfg, {"RUNTIME_DIRECTORY": "/run/botvisor"}) == Path(
        "/run/botvisor/botvisor.sock")
    assert socket_path(cfg, {"RUNTIME_DIRECTORY": "/run/a:/run/b"}) == Path(
        "/run/a/botvisor.sock")


def test_stale_socket_is_replaced_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()  # the file stays; nothing listens: what a killed bot leaves behind
    with pytest.raises(NotRunning, match="nothing answers"):
        ControlClient(path).request("ping")
    runtime = _plain_runtime()
    first = ControlServer(path=path)
    second = ControlServer(path=path)
    try:
        first.serve(runtime)
        assert ControlClient(path).request("ping")["ok"] is True
        with pytest.raises(ControlError, match="already serving"):
            second.serve(runtime)
        assert ControlClient(path).request("ping")["ok"] is True  # the live one is untouched
        blocker = tmp_path / "not-a-socket"
        blocker.write_text("keep me")
        with pytest.raises(ControlError, match="not a socket"):
            ControlServer(path=blocker).serve(runtime)
        assert blocker.read_text() == "keep me"
        with pytest.raises(ControlError, match="too long"):
            ControlServer(path=tmp_path / ("x" * 120) / "c.sock").serve(runtime)
    finally:
        first.close()
        second.close()
        runtime.stop()
    assert not path.exists()


# -- views --------------------------------------------------------------------------------------
def test_status_and_tree(bot: Bot) -> None:
    status = bot.ask("status")
    assert status["ok"] is True
    r = status["result"]
    assert (r["root"], r["state"], r["pid"]) == ("root", "running", os.getpid())
    assert r["uptime"] is not None and r["uptime"] >= 0
    assert (r["actors"], r["workers"], r["supervisors"]) == (4, 3, 1)
    assert r["by_state"] == {"running": 4}
    assert (r["restarts"], r["dead_letters"], r["stopping"]) == (0, 0, False)
    assert r["config"] == str(bot.config)
    assert r["socket"] == str(bot.socket)
    # Read from the published snapshot, without knowing its type: dataclass fields (a
    # decimal as its exact string) and metrics(); private fields and unknown actors left out.
    assert r["snapshot"] == {"op.label": "ready", "op.level": "1.50", "op.doubled": 3.0}

    tree = bot.ask("tree")["result"]
    assert (tree["name"], tree["kind"], tree["state"]) == ("root", "supervisor", "running")
    assert [c["name"] for c in tree["children"]] == ["group", "op"]
    group = tree["children"][0]
    assert [c["name"] for c in group["children"]] == ["a1", "a2"]
    a1 = group["children"][0]
    assert a1["kind"] == "worker" and a1["state"] == "running"
    assert (a1["restarts"], a1["incarnation"], a1["mailbox"]) == (0, 1, 0)
    assert a1["uptime"] >= 0 and a1["children"] == []


# -- changes ------------------------------------------------------------------------------------
def _state(runtime: Runtime, name: str) -> tuple[str, int, int]:
    tree = runtime.tree()
    assert tree is not None
    node = next(n for n in tree.walk() if n.name == name)
    return node.state, node.restarts, node.incarnation


def test_stop_does_not_count_against_intensity_but_start_does(bot: Bot) -> None:
    """group allows one restart in 60 s (and so does the root)."""
    rt = bot.runtime
    recorder = EventRecorder(rt.events)
    for _ in range(3):  # stops never count, however many
        stopped = bot.ask("stop", name="a1")
        assert stopped["ok"] is True and stopped["result"]["state"] == "terminated"
        with pytest.raises(ActorNotRunning):
            rt.ask("a1", "who")
        rt.which_children("group")  # a round trip through the supervisor: nothing pending
        assert _state(rt, "a1") == ("terminated", 0, 1)  # not restarted by itself
        assert bot.ask("stop", name="a1")["ok"] is True  # stopping it again is harmless
    started = bot.ask("start", name="a1")["result"]
    assert (started["state"], started["restarts"]) == ("running", 1)  # the one allowed
    assert rt.ask("a1", "who") == ("one", 2)
    assert _state(rt, "group") == ("running", 0, 1)

    # A second requested start within the window is one restart too many for group: it
    # escalates, and the root (which allows one) restarts group with both children.
    refused = bot.ask("restart", name="a2")
    assert refused["ok"] is False and "restarts in 60s" in refused["error"]
    recorder.wait_for(EventKind.ESCALATED, "group", timeout=WAIT)
    recorder.wait_for(EventKind.RESTARTED, "group", timeout=WAIT)
    assert rt.ask("a2", "who")[0] == "two"
    assert rt.exit_code is None
    status = bot.ask("status")["result"]
    assert status["by_state"] == {"running": 4}


def test_a_supervisor_is_stopped_and_started_with_its_children(bot: Bot) -> None:
    rt = bot.runtime
    assert bot.ask("stop", name="group")["result"]["state"] == "terminated"
    assert _state(rt, "a2")[0] == "stopped"
    assert bot.ask("start", name="group")["result"]["state"] == "running"
    assert rt.ask("a2", "who")[0] == "two"
    assert rt.exit_code is None


def test_refused_changes(bot: Bot) -> None:
    for cmd in ("stop", "start", "restart"):
        reply = bot.ask(cmd, name="nosuch")
        assert reply == {"ok": False, "error": "no actor named 'nosuch'",
                         "code": EXIT_UNKNOWN_ACTOR}
        assert bot.ask(cmd)["code"] == EXIT_USAGE  # no name
    running = bot.ask("start", name="a1")
    assert running["code"] == EXIT_ERROR and "already running" in running["error"]
    root = bot.ask("stop", name="root")
    assert root["code"] == EXIT_USAGE and "root" in root["error"]
    assert bot.runtime.exit_code is None


def test_reload_over_the_socket(bot: Bot) -> None:
    bot.config.write_text(config_text(label="uno"))
    reply = bot.ask("reload")
    assert reply == {"ok": True, "result": {"applied": ["a1.settings"], "not_applied": []}}
    assert bot.runtime.ask("a1", "who") == ("uno", 2)
    bot.config.write_text("tree: [not, a, mapping]\n")
    failed = bot.ask("reload")["result"]
    assert failed["applied"] == [] and failed["not_applied"][0].startswith("reload failed")


# -- operator commands --------------------------------------------------------------------------
def test_operator_commands_are_forwarded_to_the_mapped_actor(bot: Bot) -> None:
    reply = bot.ask("thing", command="open", args=["now"], reason="testing")
    assert reply == {"ok": True, "result": {"command": "open", "args": ["now"], "who": ME,
                                            "reason": "testing"}}
    refused = bot.ask("thing", command="bad")
    assert refused == {"ok": False, "error": "operated: no such thing", "code": EXIT_USAGE}
    assert bot.ask("ghost", command="status")["code"] == EXIT_UNKNOWN_ACTOR
    assert bot.ask("thing")["code"] == EXIT_USAGE  # no command
    assert bot.ask("thing", command="x", args="not a list")["code"] == EXIT_USAGE
    unknown = bot.ask("breaker", command="open")  # not mapped in this config
    assert unknown["code"] == EXIT_USAGE and "unknown command 'breaker'" in unknown["error"]
    assert _state(bot.runtime, "op") == ("running", 0, 1)  # a refused command is no failure


def test_control_targets_may_not_shadow_built_in_commands() -> None:
    with pytest.raises(ConfigError, match=r"control\.targets"):
        parse_config({"control": {"targets": {"status": "breaker"}}})
    with pytest.raises(ConfigError, match=r"control\.status_fields"):
        parse_config({"control": {"status_fields": ["nodot"]}})


# -- a robust server ----------------------------------------------------------------------------
def test_bad_requests_get_an_error_reply_and_the_server_keeps_serving(bot: Bot) -> None:
    conn = Conn(bot.socket)
    try:
        bad: list[tuple[bytes, str]] = [
            (b"not json\n", "not JSON"),
            (b"\xff\xfe\n", "not JSON"),
            (b"\n", "not JSON"),
            (b"[1, 2]\n", "expected"),
            (b'{"cmd": 5}\n', "expected"),
            (b'{"cmd": "status", "args": []}\n', "'args' must be an object"),
            (b'{"cmd": "fly"}\n', "unknown command 'fly'"),
            (b'{"cmd": "status", "args": {"pad": "' + b"x" * 70_000 + b'"}}\n', "too long"),
        ]
        for request, why in bad:
            reply = conn.roundtrip(request)
            assert reply["ok"] is False and reply["code"] == EXIT_USAGE, request[:40]
            assert why in reply["error"]
        # An oversized line sent in pieces: one error, then the connection carries on.
        conn.send(b'{"cmd": "ping", "pad": "' + b"y" * 40_000)
        conn.send(b"y" * 40_000)
        conn.send(b'"}\n{"cmd": "ping"}\n')
        assert "too long" in conn.reply()["error"]
        assert conn.reply() == {"ok": True, "result": {"pid": os.getpid()}}
        assert conn.roundtrip(b'{"cmd": "status"}\n')["ok"] is True
    finally:
        conn.close()
    assert bot.ask("ping")["ok"] is True  # and new connections too


def test_fifty_clients_at_once_while_a_silent_one_waits(bot: Bot) -> None:
    silent = Conn(bot.socket)
    silent.send(b'{"cmd": "sta')  # half a request, then nothing
    clients = 50
    all_connected = threading.Barrier(clients, timeout=WAIT)
    all_answered = threading.Barrier(clients, timeout=WAIT)
    replies: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            conn = Conn(bot.socket)
            try:
                all_connected.wait()  # 50 connections open at once (and the silent one)
                reply = conn.roundtrip(b'{"cmd": "status"}\n')
                with lock:
                    replies.append(reply)
                all_answered.wait()  # nobody leaves before everyone has an answer
            finally:
                conn.close()
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert errors == []
    assert len(replies) == clients
    assert all(r["ok"] and r["result"]["state"] == "running" for r in replies)
    silent.send(b'tus"}\n')  # the silent client was being served all along
    assert silent.reply()["ok"] is True
    silent.close()


def test_a_connection_beyond_max_clients_evicts_the_one_idle_longest(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    runtime = _plain_runtime()
    server = ControlServer(ControlModel(max_clients=2), path=path)
    try:
        server.serve(runtime)
        first, second = Conn(path), Conn(path)
        assert first.roundtrip(b'{"cmd": "ping"}\n')["ok"] is True
        assert second.roundtrip(b'{"cmd": "ping"}\n')["ok"] is True
        third = Conn(path)
        assert third.roundtrip(b'{"cmd": "ping"}\n')["ok"] is True  # the newcomer gets in
        evicted = first.reply()  # the one idle longest is told, and closed
        assert evicted["code"] == EXIT_ERROR and "idle" in evicted["error"]
        assert first.reader.next() is None
        assert second.roundtrip(b'{"cmd": "ping"}\n')["ok"] is True
        third.close()
        first.close()
        # The slot comes back once the server sees the first client gone.
        deadline = time.monotonic() + WAIT
        pause = threading.Event()
        while not ControlClient(path).request("ping")["ok"]:
            assert time.monotonic() < deadline, "the slot of a closed client never came back"
            pause.wait(0.01)
        # Without a session there is nothing to reload.
        assert ControlClient(path).request("reload")["code"] == EXIT_ERROR
        second.close()
    finally:
        server.close()
        runtime.stop()


# -- peer credentials ---------------------------------------------------------------------------
def test_peer_credentials_and_a_different_uid_is_refused(tmp_path: Path) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        peer = peer_credentials(a)
        assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())
        check_peer(peer, os.geteuid())  # ours: accepted
        with pytest.raises(ControlError, match="permission denied") as caught:
            check_peer(peer, os.geteuid() + 1)
        assert caught.value.code == EXIT_ERROR
    finally:
        a.close()
        b.close()

    # A server that belongs to another uid refuses us, with a clear reply, on a real socket.
    path = tmp_path / "ctl.sock"
    runtime = _plain_runtime()
    server = ControlServer(path=path, allowed_uid=os.geteuid() + 1)
    try:
        server.serve(runtime)
        reply = ControlClient(path).request("status")
        assert reply["ok"] is False and reply["code"] == EXIT_ERROR
        assert f"uid {os.geteuid()}" in reply["error"]
    finally:
        server.close()
        runtime.stop()


def test_events_recent_and_followed(bot: Bot) -> None:
    """`events` returns the recent supervision events; with follow, new ones stream in."""
    reply = bot.ask("events", limit=100)
    assert reply["ok"]
    kinds = {(e["kind"], e["actor"]) for e in reply["result"]["events"]}
    assert ("started", "a1") in kinds and ("started", "op") in kinds
    only_a2 = bot.ask("events", limit=100, actor="a2")["result"]["events"]
    assert only_a2 and {e["actor"] for e in only_a2} == {"a2"}
    assert bot.ask("events", actor="ghost")["code"] == EXIT_UNKNOWN_ACTOR
    assert bot.ask("events", limit=-1)["code"] == EXIT_USAGE

    stream = ControlClient(bot.socket, timeout=WAIT).stream(
        "events", {"limit": 0, "follow": True, "actor": "a1"})
    first = next(stream)
    assert first["ok"] and first["result"]["events"] == []
    assert next(stream) == {"ok": True, "following": True}
    assert bot.ask("stop", name="a2")["ok"]  # another actor's event: filtered out
    assert bot.ask("restart", name="a1")["ok"]
    seen = []
    for line in stream:
        seen.append((line["event"]["kind"], line["event"]["actor"]))
        if line["event"]["kind"] == "restarted":
            break
    assert seen == [("stopped", "a1"), ("restarted", "a1")]
    stream.close()
    assert bot.ask("ping")["ok"]  # the server still serves after the follower left
    # ...and notices that the follower left, though no event comes: its slot is free again
    gone = threading.Event()
    deadline = time.monotonic() + WAIT
    while bot.server._conns and time.monotonic() < deadline:
        gone.wait(0.05)
    assert not bot.server._conns
