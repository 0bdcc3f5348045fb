"""Issue 15, item 8: control-socket requests that used to escape (no reply, a thread's
traceback, raw text in the log, a locked-out operator), on a real server and unix socket."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor import Runtime
from supervisor.host.config import ControlModel
from supervisor.host.control import ControlServer
from supervisor.host.control_protocol import EXIT_USAGE, ControlClient
from tests.host.test_control import Conn, _plain_runtime

WAIT = 10.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Runtime]]:
    path = tmp_path / "ctl.sock"
    runtime = _plain_runtime()
    server = ControlServer(ControlModel(targets={"thing": "a1"}), path=path)
    server.serve(runtime)
    try:
        yield path, runtime
    finally:
        server.close()
        runtime.stop()


def _still_serves(path: Path, conn: Conn | None = None) -> None:
    if conn is not None:
        assert conn.roundtrip(b'{"cmd": "status"}\n')["ok"] is True
    assert ControlClient(path, timeout=WAIT).request("status")["ok"] is True


@pytest.mark.parametrize("line", [
    b"[" * 1000 + b"]" * 1000,
    b'{"cmd": "status", "args": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    b'{"cmd": "status", "args": {"n": ' + b"7" * 5000 + b"}}",
    b"9" * 5000,
    b'{"cmd": "stop", "args": {"name": "\\ud800"}}',
    b'{"cmd": "\\udfff"}',
    b"\xff\xfe{}",
])
def test_deep_huge_or_broken_json_gets_an_error_reply(
        served: tuple[Path, Runtime], line: bytes) -> None:
    path, _runtime = served
    conn = Conn(path)
    try:
        reply = conn.roundtrip(line + b"\n")
        assert reply["ok"] is False and reply["code"] == EXIT_USAGE, reply
        _still_serves(path, conn)
    finally:
        conn.close()


def test_unknown_fields_are_refused_by_name(served: tuple[Path, Runtime]) -> None:
    path, _runtime = served
    conn = Conn(path)
    try:
        reply = conn.roundtrip(b'{"cmd": "status", "extra": 1}\n')
        assert reply["code"] == EXIT_USAGE and "'extra'" in reply["error"]
        reply = conn.roundtrip(b'{"cmd": "stop", "args": {"nmae": "a1"}}\n')
        assert reply["code"] == EXIT_USAGE and "'nmae'" in reply["error"]
        reply = conn.roundtrip(b'{"cmd": "thing", "args": {"command": "x", "who": "root"}}\n')
        assert reply["code"] == EXIT_USAGE and "'who'" in reply["error"]
        reply = conn.roundtrip(b'{"cmd": "events", "args": {"follow": "no"}}\n')
        assert reply["code"] == EXIT_USAGE and "follow" in reply["error"]
        _still_serves(path, conn)
    finally:
        conn.close()


def test_names_from_a_request_reach_the_log_and_replies_escaped(
        served: tuple[Path, Runtime], caplog: pytest.LogCaptureFixture) -> None:
    path, _runtime = served
    evil = "a1\u202e\x00\x1b[31m"
    client = ControlClient(path, timeout=WAIT)
    with caplog.at_level(logging.DEBUG, logger="botvisor"):
        for cmd in ("stop", "start", "restart"):
            reply = client.request(cmd, {"name": evil})
            assert reply["code"] == EXIT_USAGE
            assert "a1\\u202e\\x00\\x1b[31m" in reply["error"]
        reply = client.request("events", {"actor": evil})
        assert reply["code"] == EXIT_USAGE
        reply = client.request("thing", {"command": "go\u202e", "args": ["\x00"],
                                         "reason": "because\u2067\x07"})
        reply = client.request(f"nope{evil}")
        assert reply["code"] == EXIT_USAGE and "\x00" not in reply["error"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for raw in ("\u202e", "\x00", "\x1b", "\u2067", "\x07"):
        assert raw not in logged
    assert "go\\u202e \\x00" in logged and "because\\u2067\\x07" in logged
    _still_serves(path)


def test_64_idle_connections_do_not_lock_the_operator_out(
        served: tuple[Path, Runtime]) -> None:
    path, _runtime = served
    idle = []
    try:
        for _ in range(64):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            idle.append(sock)
        for _ in range(3):  # again and again: each newcomer evicts the one idle longest
            reply = ControlClient(path, timeout=WAIT).request("status")
            assert reply["ok"] is True, reply
        # Each eviction was sent before the newcomer was served: the ones told are there
        # to read now, the oldest first.
        told = []
        for i, sock in enumerate(idle):
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            assert b"idle" in data
            told.append(i)
        assert told and told == list(range(len(told)))
    finally:
        for sock in idle:
            sock.close()


def test_a_request_that_trickles_in_is_cut_off_with_a_reply(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    runtime = _plain_runtime()
    server = ControlServer(ControlModel(request_timeout=0.3, idle_timeout=0.6), path=path)
    server.serve(runtime)
    try:
        silent = Conn(path)  # says nothing at all
        reply = silent.reply()
        assert reply["code"] == EXIT_USAGE and "0.3s" in reply["error"]
        assert silent.reader.next() is None
        slow = Conn(path)
        slow.send(b'{"cmd"')  # half a request, the rest never comes
        reply = slow.reply()
        assert reply["code"] == EXIT_USAGE and "no complete request" in reply["error"]
        served_once = Conn(path)
        assert served_once.roundtrip(b'{"cmd": "ping"}\n')["ok"] is True
        reply = served_once.reply()  # then idle past idle_timeout
        assert "0.6s" in reply["error"]
        for conn in (silent, slow, served_once):
            conn.close()
        _still_serves(path)
    finally:
        server.close()
        runtime.stop()


def test_an_over_long_request_gets_one_reply_and_the_next_is_served(
        served: tuple[Path, Runtime]) -> None:
    path, _runtime = served
    conn = Conn(path)
    try:
        reply = conn.roundtrip(b'{"cmd": "' + b"x" * 200_000 + b'"}\n')
        assert reply["code"] == EXIT_USAGE and "too long" in reply["error"]
        _still_serves(path, conn)
    finally:
        conn.close()
