"""The control socket: how ``botvisor status``, ``stop NAME``, ``breaker open``... reach a
running bot (the protocol is in :mod:`supervisor.host.control_protocol`).

:class:`ControlServer` is a :class:`~supervisor.host.session.SessionService`. It binds a unix
stream socket private to the bot's user (created with umask 0177, then chmod 0600; its
directory 0700 when the server creates it) and checks every peer's uid with
``SO_PEERCRED`` (invariant 8). A socket file left over from an earlier run is replaced;
one a live bot still answers on is not (this server then logs why and does not serve).
The file is removed when the run stops.

Every connection gets its own thread, up to ``control.max_clients`` at once, so a slow or
silent client holds only its own thread. A connection must send its first whole request
line within ``control.request_timeout``, and each later one within ``control.idle_timeout``
of the previous reply (a request dribbled a byte at a time is cut off too); it is told why
when it is closed. When every slot is taken, a new connection evicts the one idle longest
(waiting for a request, or following events), so the operator always gets in; only when
every connection is in the middle of a command is the new one told to try again. Requests
on one connection are served in order; every request line gets exactly one reply, a
malformed, over-long, too deep or unknown one an error saying what is wrong. Text from a
request (actor names, words, reasons) is escaped before it reaches the log or a reply. Nothing here
blocks an actor: views are read from the runtime without asking anyone, the dynamic child
commands go to the child's supervisor, and operator commands are asked of the actor named
in ``control.targets`` as an :class:`~supervisor.host.control_protocol.OperatorCommand`, with
``control.command_timeout``.

Commands (``{"cmd": ..., "args": {...}}``):

* ``ping``: the bot's pid (used to tell a live socket from a stale one);
* ``status``: the root's state and uptime, actor counts by state, restarts, dead letters,
  and the ``control.status_fields`` read from the actors' published snapshots;
* ``tree``: every actor, nested, with state, restarts, uptime, mailbox depth, incarnation;
* ``stop {"name"}``: terminate a child by hand: it is not restarted, and stopping it does
  not count against its supervisor's restart intensity;
* ``start {"name"}``: start a terminated (or stopped) child again; it counts as a restart
  of that child (its ``restarts`` goes up by one, a ``restarted`` event is published) and
  against its supervisor's restart intensity, like a restart after a crash: one too many
  escalates;
* ``restart {"name"}``: restart a running child in place (counted the same way);
* ``reload``: re-read the config file; replies with what was applied and what was not;
* any group in ``control.targets`` (``breaker``, ``positions``, ``alerts``):
  ``{"command": "open", "args": [...], "reason": "..."}`` forwarded to that actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pwd
import queue
import select
import selectors
import socket
import stat
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.cell import ChildState
from supervisor.errors import (
    ActorNotRunning,
    AskTimeout,
    RuntimeErrorBase,
    UnknownActor,
)
from supervisor.events import SupervisionEvent
from supervisor.host.chaos import ChaosPlan
from supervisor.host.config import ControlModel
from supervisor.host.control_protocol import (
    EXIT_ERROR,
    EXIT_UNKNOWN_ACTOR,
    EXIT_USAGE,
    MAX_REQUEST_BYTES,
    ControlError,
    LineReader,
    OperatorCommand,
    encode,
    socket_path,
    to_jsonable,
)
from supervisor.host.logs import printable
from supervisor.host.secrets import secrets_of
from supervisor.host.session import SessionService

if TYPE_CHECKING:
    from supervisor.host.session import RunSession
    from supervisor.runtime import Runtime

log = logging.getLogger("botvisor")

__all__ = [
    "ControlServer",
    "PeerCredentials",
    "check_peer",
    "operator_name",
    "peer_credentials",
    "snapshot_fields",
]

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_STOP_BUDGET = 2.0  # seconds close() waits for the server's threads
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_MAX_NAME = 200  # characters in an actor's name from a request
_MAX_REASON = 500  # characters of an operator's --reason passed on
# The fields each built-in command takes in "args" (a forwarded group: _FORWARD_ARGS).
_ARGS: dict[str, frozenset[str]] = {
    "ping": frozenset(), "status": frozenset(), "tree": frozenset(), "reload": frozenset(),
    "stop": frozenset({"name"}), "start": frozenset({"name"}), "restart": frozenset({"name"}),
    "events": frozenset({"limit", "actor", "follow"}),
}
_FORWARD_ARGS = frozenset({"command", "args", "reason"})


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


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is at the other end of a unix socket, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


def peer_credentials(conn: socket.socket) -> PeerCredentials:
    """The connected peer's pid, uid and gid (``SO_PEERCRED``)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def check_peer(peer: PeerCredentials, allowed_uid: int) -> None:
    """Refuse (ControlError, exit status 1) any peer whose uid is not ``allowed_uid``."""
    if peer.uid != allowed_uid:
        raise ControlError(
            f"permission denied: the control socket accepts only uid {allowed_uid} "
            f"(the bot's user); this connection is from uid {peer.uid}", EXIT_ERROR)


def operator_name(uid: int) -> str:
    """``cli:<user name>`` for ``uid`` (``cli:uid<N>`` when the name is unknown)."""
    try:
        return f"cli:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"cli:uid{uid}"


def snapshot_fields(snapshot: Any) -> dict[str, Any]:
    """The scalar facts an actor's published snapshot offers, read without knowing its type.

    Two generic sources, the second winning on a clash: the numbers its ``metrics()`` method
    returns (the same ones the metrics endpoint serves), and its public dataclass fields
    that hold a scalar (strings, numbers, booleans, enums as their value, decimals as exact
    strings). Anything else (a snapshot that is no dataclass, nested values) is left out.
    """
    out: dict[str, Any] = {}
    metrics = getattr(snapshot, "metrics", None)
    if callable(metrics):
        try:
            values = metrics()
        except Exception:  # a snapshot's bug must not break `status`
            log.debug("metrics() of %s failed", type(snapshot).__name__, exc_info=True)
            values = {}
        if isinstance(values, Mapping):
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[str(key)] = value
    if dataclasses.is_dataclass(snapshot) and not isinstance(snapshot, type):
        for f in dataclasses.fields(snapshot):
            if f.name.startswith("_"):
                continue
            value = to_jsonable(getattr(snapshot, f.name))
            if value is None or isinstance(value, bool | int | float | str):
                out[f.name] = value
    return out


class ControlServer(SessionService):
    """Owns the control socket, its accept thread and one thread per open connection.

    ``settings`` default to the session's ``control`` section, ``path`` to
    :func:`~supervisor.host.control_protocol.socket_path` of the session's config file, and
    ``allowed_uid`` to this process's effective uid. Without a session, :meth:`serve` runs
    it on any runtime (``reload`` then answers that it cannot reload).
    """

    name = "control"

    def __init__(
        self,
        settings: ControlModel | None = None,
        *,
        path: str | Path | None = None,
        allowed_uid: int | None = None,
    ) -> None:
        self.settings = settings
        self.path: Path | None = Path(path) if path is not None else None
        self.allowed_uid = os.geteuid() if allowed_uid is None else allowed_uid
        self.runtime: Runtime | None = None
        self.session: RunSession | None = None
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._inode: tuple[int, int] | None = None
        self._made_dir = False
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Conn] = {}  # open and not evicted
        self._threads: set[threading.Thread] = set()
        self._accept_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._local = threading.local()  # per connection thread: a follower being set up
        self._serial = 0
        self._commands: dict[str, Callable[[dict[str, Any], str], Any]] = {
            "ping": lambda _a, _w: {"pid": os.getpid()},
            "status": lambda _a, _w: self.status(),
            "tree": lambda _a, _w: self.tree(),
            "stop": self._stop_child,
            "start": self._start_child,
            "restart": self._restart_child,
            "reload": self._reload,
            "events": self._events,
        }

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
        it, a non-socket file is in the way, the path is too long or not writable).
        """
        if self._listener is not None:
            raise RuntimeError("this control server is already serving")
        if path is None:
            path = self.path
        if path is None:
            raise ValueError("a control server without a session needs a socket path")
        self.settings = self.settings or ControlModel()
        self.path = Path(path)
        self.runtime = runtime
        self.session = session
        self._listener = self._bind(self.path)
        self._wake = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="control-accept",
                                               daemon=True)
        self._accept_thread.start()
        log.info("control socket on %s", self.path)
        return self.path

    def _bind(self, path: Path) -> socket.socket:
        if len(os.fsencode(str(path))) > _SUN_PATH_MAX:
            raise ControlError(f"control socket path is too long for a unix socket "
                               f"({_SUN_PATH_MAX} bytes at most): {path}")
        directory = path.parent
        if not directory.exists():
            try:
                directory.mkdir(parents=True, mode=0o700)
                os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
            except OSError as exc:
                raise ControlError(f"cannot create {directory}: {exc.strerror}") from None
            self._made_dir = True
        self._clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # no window in which the socket is open to others
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot bind the control socket {path}: "
                               f"{exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        try:
            os.chmod(path, 0o600)
            st = os.stat(path)
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot set up the control socket {path}: "
                               f"{exc.strerror or exc}") from None
        return sock

    @staticmethod
    def _clear_stale(path: Path) -> None:
        """Remove a socket left by an earlier run; refuse if a live bot answers on it."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"{path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("control: replacing %s, left over from a run that did not clean up", path)
        except OSError as exc:
            raise ControlError(f"cannot tell whether a bot still serves {path}: "
                               f"{exc.strerror or exc}") from None
        else:
            raise ControlError(f"another botvisor is already serving {path}; "
                               "not replacing its socket")
        finally:
            probe.close()
        log.warning("control: replacing the stale socket %s", path)
        path.unlink(missing_ok=True)

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
            _tell_and_close(victim.sock, _error(
                f"closed: this connection was idle and all {settings.max_clients} control "
                "connections were taken", EXIT_ERROR), close=False)
        if refused:
            _tell_and_close(conn, _error(
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
                conn.sendall(encode(_error(exc.message, exc.code)))
                return
            who = operator_name(peer.uid)
            reader = LineReader(conn, MAX_REQUEST_BYTES)
            wait = settings.request_timeout  # for the first request; then idle_timeout
            while not self._closing.is_set():
                try:
                    line = reader.next(deadline=time.monotonic() + wait)
                except TimeoutError:
                    if not entry.evicted:
                        _tell_and_close(conn, _error(
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
                    follower: _Follower | None = getattr(self._local, "follower", None)
                    self._local.follower = None
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
                conn.sendall(encode(_error(f"internal error: {type(exc).__name__}",
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
        try:
            return self._handle(line, who)
        except Exception as exc:
            log.error("control: a request failed: %s: %s", type(exc).__name__, printable(exc))
            log.debug("control: the failure", exc_info=True)
            return _error(f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR)

    def _handle(self, line: bytes | object, who: str) -> dict[str, Any]:
        if not isinstance(line, bytes):
            return _error(f"request too long (more than {MAX_REQUEST_BYTES} bytes)",
                          EXIT_USAGE)
        try:
            request = json.loads(line)
        except UnicodeDecodeError:
            return _error("malformed request: not UTF-8 text", EXIT_USAGE)
        except RecursionError:
            return _error("malformed request: nested too deeply", EXIT_USAGE)
        except json.JSONDecodeError as exc:
            return _error(f"malformed request: not JSON ({exc})", EXIT_USAGE)
        except ValueError as exc:  # an integer over Python's limit for converting text
            return _error(f"malformed request: {str(exc).split(':')[0]}", EXIT_USAGE)
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return _error('malformed request: expected {"cmd": "...", "args": {...}}',
                          EXIT_USAGE)
        unknown = sorted(str(k) for k in request if k not in ("cmd", "args"))
        if unknown:
            return _error(f"malformed request: unknown field(s) {_names(unknown)}; "
                          'expected {"cmd": "...", "args": {...}}', EXIT_USAGE)
        cmd: str = request["cmd"]
        args = request.get("args", {})
        if not isinstance(args, dict):
            return _error("malformed request: 'args' must be an object", EXIT_USAGE)
        try:
            return {"ok": True, "result": self._dispatch(cmd, args, who)}
        except ControlError as exc:
            return _error(exc.message, exc.code)
        except UnknownActor as exc:
            return _error(str(exc), EXIT_UNKNOWN_ACTOR)
        except (ActorNotRunning, AskTimeout, RuntimeErrorBase) as exc:
            return _error(str(exc), EXIT_ERROR)
        except Exception as exc:
            log.error("control: %s failed: %s: %s", printable(cmd, 40), type(exc).__name__,
                      printable(exc))
            log.debug("control: the failure", exc_info=True)
            return _error(f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR)

    def _dispatch(self, cmd: str, args: dict[str, Any], who: str) -> Any:
        settings = self.settings
        assert settings is not None
        handler = self._commands.get(cmd)
        allowed = _ARGS.get(cmd, _FORWARD_ARGS)
        if handler is not None or cmd in settings.targets:
            unknown = sorted(str(k) for k in args if k not in allowed)
            if unknown:
                raise ControlError(f"{cmd}: unknown field(s) in args {_names(unknown)}; "
                                   f"it takes {_names(sorted(allowed)) or 'none'}", EXIT_USAGE)
        if handler is not None:
            return handler(args, who)
        if cmd in settings.targets:
            return self._forward(cmd, args, who)
        known = sorted([*self._commands, *settings.targets])
        raise ControlError(f"unknown command '{printable(cmd, 40)}'; known: "
                           f"{', '.join(known)}", EXIT_USAGE)

    # -- views -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The whole tree in a few numbers, plus the configured snapshot fields."""
        runtime = self._rt()
        root = runtime.tree()
        if root is None:
            raise ControlError("the tree has not started")
        nodes = root.walk()[1:]
        session = self.session
        return {
            "pid": os.getpid(),
            "root": root.name,
            "state": root.state,
            "uptime": root.uptime,
            "actors": len(nodes),
            "workers": sum(1 for n in nodes if n.kind == "worker"),
            "supervisors": sum(1 for n in nodes if n.kind == "supervisor"),
            "by_state": dict(Counter(n.state for n in nodes)),
            "restarts": sum(n.restarts for n in nodes),
            "dead_letters": runtime.dead_letters,
            "stopping": bool(session and session.stop_requested),
            "config": str(session.config_path) if session else None,
            "socket": str(self.path),
            "snapshot": self._snapshot_summary(),
            "chaos": runtime.chaos.summary() if isinstance(runtime.chaos, ChaosPlan)
            else {"enabled": False},
        }

    def _snapshot_summary(self) -> dict[str, Any]:
        settings = self.settings
        assert settings is not None
        runtime = self._rt()
        out: dict[str, Any] = {}
        cache: dict[str, dict[str, Any]] = {}
        for item in settings.status_fields:
            actor, _, field = item.partition(".")
            if actor not in cache:
                cell = runtime.cell_or_none(actor)
                cache[actor] = snapshot_fields(cell.published) if cell is not None else {}
            if field in cache[actor]:
                out[item] = cache[actor][field]
        return out

    def tree(self) -> dict[str, Any]:
        """Every actor, nested as the tree is (see :class:`~supervisor.runtime.TreeNode`)."""
        root = self._rt().tree()
        if root is None:
            raise ControlError("the tree has not started")
        result: dict[str, Any] = to_jsonable(root)
        return result

    # -- changes -----------------------------------------------------------------------------
    def _stop_child(self, args: dict[str, Any], who: str) -> Any:
        name = _name(args)
        log.warning("control: %s stops %s", who, name)
        return to_jsonable(self._child_command(self._rt().terminate_child, name))

    def _start_child(self, args: dict[str, Any], who: str) -> Any:
        name = _name(args)
        cell = self._rt().cell(name)  # UnknownActor: exit 4
        if cell.state in (ChildState.RUNNING, ChildState.STARTING):
            raise ControlError(f"{name} is already running (use `restart {name}` to "
                               "restart it)", EXIT_ERROR)
        log.warning("control: %s starts %s", who, name)
        return to_jsonable(self._child_command(self._rt().restart_child, name))

    def _restart_child(self, args: dict[str, Any], who: str) -> Any:
        name = _name(args)
        log.warning("control: %s restarts %s", who, name)
        return to_jsonable(self._child_command(self._rt().restart_child, name))

    @staticmethod
    def _child_command(command: Callable[[str], Any], name: str) -> Any:
        try:
            return command(name)
        except ValueError as exc:  # the root: the process itself is stopped with a signal
            if isinstance(exc, RuntimeErrorBase):
                raise
            raise ControlError(f"{exc} (SIGTERM, or `systemctl stop botvisor`)",
                               EXIT_USAGE) from None

    def _events(self, args: dict[str, Any], _who: str) -> dict[str, Any]:
        """The most recent supervision events (``limit``, ``actor``); ``follow`` streams on.

        A follower subscribes before the history is read, so no event falls between the
        two (and none is sent twice).
        """
        limit = args.get("limit", 50)
        actor = args.get("actor")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 10_000:
            raise ControlError("'limit' must be an integer from 0 to 10000", EXIT_USAGE)
        if actor is not None:
            actor = _actor_name(actor, "actor")
        if actor is not None and not self._rt().has(actor):
            raise ControlError(f"unknown actor {actor!r}", EXIT_UNKNOWN_ACTOR)
        follow = args.get("follow", False)
        if not isinstance(follow, bool):
            raise ControlError("'follow' must be true or false", EXIT_USAGE)
        follower = _Follower(self._rt(), actor) if follow else None
        recent = [e for e in self._rt().events.recent() if actor is None or e.actor == actor]
        if follower is not None:
            follower.already_sent(recent)
            self._local.follower = follower
        return {
            "events": [event_json(e) for e in recent[-limit:]] if limit else [],
            "follow": follow,
            "actor": actor,
        }

    def _stream_events(self, conn: socket.socket, follower: _Follower) -> None:
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

    def _reload(self, _args: dict[str, Any], who: str) -> dict[str, Any]:
        session = self.session
        settings = self.settings
        assert settings is not None
        if session is None:
            raise ControlError("this control server is not part of a run; nothing to reload")
        if session.stop_requested:
            raise ControlError("the bot is stopping; not reloading")
        log.warning("control: %s reloads the config", who)
        future = session.request_reload()
        try:
            applied, not_applied = future.result(timeout=settings.command_timeout)
        except FutureTimeout:
            raise ControlError(f"the reload did not finish within "
                               f"{settings.command_timeout:g}s") from None
        except RuntimeError as exc:  # the run ended before it got to the reload
            raise ControlError(str(exc)) from None
        return {"applied": list(applied), "not_applied": list(not_applied)}

    def _forward(self, group: str, args: dict[str, Any], who: str) -> Any:
        settings = self.settings
        assert settings is not None
        actor = settings.targets[group]
        command = args.get("command")
        words = args.get("args", [])
        reason = args.get("reason") or ""
        if not isinstance(command, str) or not command:
            raise ControlError(f"{group}: 'command' must be a non-empty string", EXIT_USAGE)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ControlError(f"{group}: 'args' must be a list of strings", EXIT_USAGE)
        if not isinstance(reason, str):
            raise ControlError(f"{group}: 'reason' must be a string", EXIT_USAGE)
        reason = printable(reason, _MAX_REASON)  # it goes on into records and alerts
        message = OperatorCommand(command, tuple(words), who, reason)
        if command != "status":
            log.warning("control: %s: %s %s%s", who, group,
                        printable(" ".join([command, *words])),
                        f" ({reason})" if reason else "")
        try:
            reply = self._rt().ask(actor, message, timeout=settings.command_timeout)
        except (UnknownActor, ActorNotRunning, AskTimeout):
            raise
        except Exception as exc:  # the actor's handler raised (and its supervisor was told)
            raise ControlError(f"{actor} failed handling {group} {printable(command, 40)}: "
                               f"{type(exc).__name__}: {exc}") from None
        if reply is None:
            raise ControlError(f"actor {actor!r} does not answer operator commands")
        if isinstance(reply, Mapping) and "error" in reply:
            code = reply.get("code", EXIT_USAGE)
            if code not in (EXIT_ERROR, EXIT_USAGE, EXIT_UNKNOWN_ACTOR):
                code = EXIT_USAGE
            raise ControlError(str(reply["error"]), code)
        return to_jsonable(reply)

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
            self._remove_socket()
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

    def _remove_socket(self) -> None:
        path = self.path
        if path is None or self._inode is None:
            return
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == self._inode:  # ours, not a newer bot's
                path.unlink()
        except OSError:
            pass
        if self._made_dir:
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only if empty


class _Follower:
    """Owns one ``events --follow`` subscription: the events waiting to be sent."""

    def __init__(self, runtime: Runtime, actor: str | None) -> None:
        self.actor = actor
        self.waiting: queue.Queue[SupervisionEvent] = queue.Queue(maxsize=10_000)
        self.overflow = threading.Event()
        self._skip: set[int] = set()
        self._sent: list[SupervisionEvent] = []
        self._sub = runtime.events.subscribe(self._offer)

    def _offer(self, event: SupervisionEvent) -> None:
        if self.actor is None or event.actor == self.actor:
            try:
                self.waiting.put_nowait(event)
            except queue.Full:
                self.overflow.set()

    def already_sent(self, events: list[SupervisionEvent]) -> None:
        """Events the history reply already carries (held, so their ids stay theirs)."""
        self._sent = events
        self._skip = {id(e) for e in events}

    def next(self, timeout: float) -> SupervisionEvent | None:
        try:
            while True:
                event = self.waiting.get(timeout=timeout)
                if id(event) not in self._skip:
                    return event
        except queue.Empty:
            return None

    def close(self) -> None:
        self._sub.cancel()


def _peer_gone(conn: socket.socket) -> bool:
    """True when the client has closed its end (a follower never sends anything more)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def event_json(event: SupervisionEvent) -> dict[str, Any]:
    """A supervision event as plain JSON values."""
    return {
        "at": event.at,
        "kind": event.kind.value,
        "actor": event.actor,
        "supervisor": event.supervisor,
        "severity": event.severity.name.lower(),
        "reason": event.reason,
        "error": event.error,
        "delay": event.delay,
        "incarnation": event.incarnation,
        "count": event.count,
        "text": event.describe(),
    }


def _name(args: dict[str, Any]) -> str:
    return _actor_name(args.get("name"), "name")


def _actor_name(value: Any, field_name: str) -> str:
    """``value`` if it can be an actor's name (as the config allows them), else a
    ControlError that shows it escaped."""
    if not isinstance(value, str) or not value:
        raise ControlError(f"'{field_name}' must be an actor's name", EXIT_USAGE)
    if len(value) > _MAX_NAME or not _NAME_CHARS.issuperset(value):
        raise ControlError(f"'{field_name}' must be an actor's name (letters, digits, '_', "
                           f"'.', '-'), not '{printable(value, 60)}'", EXIT_USAGE)
    return value


def _names(items: list[str]) -> str:
    return ", ".join(f"'{printable(i, 40)}'" for i in items[:10])


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


def _error(message: str, code: int) -> dict[str, Any]:
    return {"ok": False, "error": printable(message, 2000), "code": code}
