"""The control socket's server: how ``botvisor status``, ``stop NAME`` and the plug-ins'
verbs reach a running bot.

:class:`ControlServer` is a :class:`~supervisor.host.session.SessionService`: a unix socket
private to the bot's user (a peer of another uid is refused), one thread per connection up
to ``control.max_clients`` (a newcomer evicts the connection idle longest), every request
line answered in order, within ``control.request_timeout``/``idle_timeout``. The protocol is
in :mod:`~supervisor.host.control_protocol`, the socket file and its peers in
:mod:`~supervisor.host.control_socket`, one request's handling in
:mod:`~supervisor.host.control_requests`, the commands in
:mod:`~supervisor.host.control_commands`. The limits, and why: ``docs/operations.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.host.config import ControlModel
from supervisor.host.control_commands import ControlCommands, EventFollower, event_json
from supervisor.host.control_protocol import (
    EXIT_ERROR,
    EXIT_USAGE,
    MAX_REQUEST_BYTES,
    ControlError,
    LineReader,
    encode,
    socket_path,
)
from supervisor.host.control_requests import RequestHandler, error_reply
from supervisor.host.control_socket import (
    BoundSocket,
    bind_private,
    check_peer,
    operator_name,
    peer_credentials,
)
from supervisor.host.logs import printable
from supervisor.host.operator_plugins import (
    ForwardedCommand,
    installed_commands,
    status_fields_of,
    targets_of,
)
from supervisor.host.secrets import secrets_of
from supervisor.host.session import SessionService

if TYPE_CHECKING:
    from supervisor.host.session import RunSession
    from supervisor.runtime import Runtime

log = logging.getLogger("botvisor")

__all__ = ["ControlServer"]

_STOP_BUDGET = 2.0  # seconds close() waits for the server's threads


@dataclass(eq=False)
class _Conn:
    """One open connection, as the server tracks it (under its lock): when it was last
    active, and whether it is serving a command (never evicted then) or following."""

    sock: socket.socket
    thread: threading.Thread | None = None
    last_active: float = field(default_factory=time.monotonic)
    busy: bool = False
    following: bool = False
    evicted: bool = False


class ControlServer(SessionService):
    """Owns the control socket, its accept thread and one thread per open connection.

    ``settings`` default to the session's ``control`` section, ``path`` to
    :func:`~supervisor.host.control_protocol.socket_path` of the session's config file,
    ``allowed_uid`` to this process's effective uid, and ``plugins`` (whose targets and
    status fields apply unless the settings name their own) to the installed operator
    command plug-ins. Without a session, :meth:`serve` runs it on any runtime (``reload`` then
    answers that it cannot reload).
    """

    name = "control"

    def __init__(
        self,
        settings: ControlModel | None = None,
        *,
        path: str | Path | None = None,
        allowed_uid: int | None = None,
        plugins: Sequence[ForwardedCommand] | None = None,
    ) -> None:
        self.settings = settings
        self.path: Path | None = Path(path) if path is not None else None
        self.allowed_uid = os.geteuid() if allowed_uid is None else allowed_uid
        self.runtime: Runtime | None = None
        self.session: RunSession | None = None
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._bound: BoundSocket | None = None
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Conn] = {}  # open and not evicted
        self._threads: set[threading.Thread] = set()
        self._accept_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._serial = 0
        self._plugins = None if plugins is None else list(plugins)
        self._requests: RequestHandler | None = None
        self._commands: ControlCommands | None = None

    # -- the session's hooks -----------------------------------------------------------------
    def start(self, session: RunSession) -> None:
        settings = self.settings or session.config.control
        if not settings.enabled:
            log.info("control socket disabled (control.enabled: false)")
            return
        self.settings = settings
        path = self.path or socket_path(session.config_path)
        try:
            self.serve(session.runtime, path, session=session)
        except ControlError as exc:
            log.error("control socket not started: %s", exc.message)

    def stopping(self, reason: str) -> None:
        self.close()  # a stopping bot takes no more commands

    def stop(self) -> None:
        self.close()

    # -- serving -----------------------------------------------------------------------------
    def serve(self, runtime: Runtime, path: str | Path | None = None, *,
              session: RunSession | None = None) -> Path:
        """Bind the socket and start serving ``runtime``; returns the socket's path.

        Raises ControlError when the socket cannot be made (a live bot already answers on
        it, a non-socket file is in the way, the path is too long or not writable, an
        operator command plug-in cannot be loaded).
        """
        if self._listener is not None:
            raise RuntimeError("this control server is already serving")
        if path is None:
            path = self.path
        if path is None:
            raise ValueError("a control server without a session needs a socket path")
        settings = self.settings = self.settings or ControlModel()
        plugins = installed_commands() if self._plugins is None else self._plugins
        self.path = Path(path)
        self.runtime = runtime
        self.session = session
        self._commands = ControlCommands(
            runtime, settings, socket=self.path, targets=targets_of(settings, plugins),
            status_fields=status_fields_of(settings, plugins), session=session)
        self._requests = RequestHandler(self._commands)
        self._bound = bind_private(self.path)
        self._listener = self._bound.sock
        self._wake = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="control-accept",
                                               daemon=True)
        self._accept_thread.start()
        log.info("control socket on %s", self.path)
        return self.path

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake
        assert listener is not None and wake is not None
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ, "accept")
            sel.register(wake[0], selectors.EVENT_READ, "wake")
            while not self._closing.is_set():
                for key, _ in sel.select():
                    if key.data == "wake":
                        return
                    try:
                        conn, _addr = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:
                        log.warning("control: accept failed: %s", exc)
                        continue
                    self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        settings = self.settings
        assert settings is not None
        victim: _Conn | None = None
        with self._lock:
            if self._closing.is_set():
                conn.close()
                return
            if len(self._conns) >= settings.max_clients:
                victim = self._evictable()
                if victim is None:
                    refused = True
                else:
                    refused = False
                    victim.evicted = True
                    del self._conns[victim.sock]
            else:
                refused = False
            if not refused:
                self._serial += 1
                entry = _Conn(conn)
                entry.thread = threading.Thread(target=self._serve_conn, args=(entry,),
                                                name=f"control-{self._serial}", daemon=True)
                self._conns[conn] = entry
                self._threads.add(entry.thread)
        if victim is not None:
            log.info("control: closing the connection idle longest to let a new one in")
            _tell_and_close(victim.sock, error_reply(
                f"closed: this connection was idle and all {settings.max_clients} control "
                "connections were taken", EXIT_ERROR), close=False)
        if refused:
            _tell_and_close(conn, error_reply(
                f"too many control connections ({settings.max_clients}), all in the middle "
                "of a command; try again", EXIT_ERROR))
            return
        assert entry.thread is not None
        entry.thread.start()

    def _evictable(self) -> _Conn | None:
        """The connection to close for a new one (lock held): not serving a command; one
        waiting for a request before one following events; the longest idle first."""
        idle = [c for c in self._conns.values() if not c.busy]
        return min(idle, key=lambda c: (c.following, c.last_active), default=None)

    def _serve_conn(self, entry: _Conn) -> None:
        settings = self.settings
        assert settings is not None
        conn = entry.sock
        try:
            conn.settimeout(settings.request_timeout)
            try:
                peer = peer_credentials(conn)
                check_peer(peer, self.allowed_uid)
            except ControlError as exc:
                log.warning("control: refused a connection: %s", exc.message)
                conn.sendall(encode(error_reply(exc.message, exc.code)))
                return
            who = operator_name(peer.uid)
            reader = LineReader(conn, MAX_REQUEST_BYTES)
            wait = settings.request_timeout  # for the first request; then idle_timeout
            while not self._closing.is_set():
                try:
                    line = reader.next(deadline=time.monotonic() + wait)
                except TimeoutError:
                    if not entry.evicted:
                        _tell_and_close(conn, error_reply(
                            f"no complete request line within {wait:g}s; closing",
                            EXIT_USAGE))
                    return
                if line is None:
                    return
                conn.settimeout(settings.idle_timeout)  # for the reply (or the stream)
                with self._lock:
                    if entry.evicted:
                        return
                    entry.busy = True
                try:
                    reply = self.handle(line, who)
                    follower = self._commands.take_follower() if self._commands else None
                    try:
                        self._send(conn, reply)
                        if follower is not None:
                            with self._lock:
                                entry.busy, entry.following = False, True
                            self._stream_events(conn, follower)
                            return
                    finally:
                        if follower is not None:
                            follower.close()
                finally:
                    with self._lock:
                        entry.busy = False
                        entry.last_active = time.monotonic()
                wait = settings.idle_timeout
        except OSError as exc:  # the client went away, timed out, or the server is closing
            log.debug("control: connection ended: %s", exc)
        except Exception as exc:  # never a thread's traceback on stderr; the client is told
            log.error("control: serving a connection failed: %s: %s", type(exc).__name__,
                      printable(exc))
            log.debug("control: the failure", exc_info=True)
            with contextlib.suppress(OSError):
                conn.sendall(encode(error_reply(f"internal error: {type(exc).__name__}",
                                                EXIT_ERROR)))
        finally:
            with self._lock:
                if self._conns.get(conn) is entry:
                    del self._conns[conn]
                self._threads.discard(threading.current_thread())
            conn.close()

    # -- one request -------------------------------------------------------------------------
    def handle(self, line: bytes | object, who: str) -> dict[str, Any]:
        """The reply to one request line (``TOO_LONG`` for a line over the limit); never
        raises."""
        requests = self._requests
        if requests is None:
            return error_reply("the control server is not serving a runtime", EXIT_ERROR)
        return requests.handle(line, who)

    def _stream_events(self, conn: socket.socket, follower: EventFollower) -> None:
        """Send each new supervision event as one line until the client or server goes.

        A client that goes away is noticed within half a second even when no event comes;
        one that stops reading is dropped after ``idle_timeout`` (a send that long blocked)
        or when more than 10,000 events wait for it.
        """
        self._send(conn, {"ok": True, "following": True})
        while not self._closing.is_set() and not follower.overflow.is_set():
            event = follower.next(timeout=0.5)
            if event is None:
                if _peer_gone(conn):
                    return
                continue
            self._send(conn, {"ok": True, "event": event_json(event)})

    def _send(self, conn: socket.socket, reply: dict[str, Any]) -> None:
        """One reply line, with every known secret masked (errors and reasons can carry
        one: an exception's text, say)."""
        line = encode(reply).decode("utf-8")
        conn.sendall(secrets_of(self._rt()).scrub(line).encode("utf-8"))

    def _rt(self) -> Runtime:
        runtime = self.runtime
        if runtime is None:
            raise ControlError("the control server is not serving a runtime")
        return runtime

    # -- stopping ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting, end open connections, remove the socket file (idempotent)."""
        with self._lock:
            if self._closing.is_set():
                return
            self._closing.set()
        listener, self._listener = self._listener, None
        wake, self._wake = self._wake, None
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(_STOP_BUDGET)
        if listener is not None:
            listener.close()
            if self._bound is not None:
                self._bound.remove_file()
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting in recv
        for thread in threads:
            thread.join(_STOP_BUDGET / max(len(threads), 1))
        if wake is not None:
            wake[0].close()
            wake[1].close()

def _peer_gone(conn: socket.socket) -> bool:
    """True when the client has closed its end (a follower never sends anything more)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _tell_and_close(conn: socket.socket, reply: dict[str, Any], *, close: bool = True) -> None:
    """Send ``reply`` if the socket takes it at once (never waits on a client that does
    not read), then shut the connection down; ``close``: and close it (not when another
    thread still uses it: that thread sees the end and closes it)."""
    with contextlib.suppress(OSError):
        conn.send(encode(reply), socket.MSG_DONTWAIT)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    if close:
        conn.close()
