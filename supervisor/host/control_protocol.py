"""The control socket's protocol, shared by the server (``supervisor.host.control``) and the
operator's client (``supervisor.host.operator_cli``).

A unix stream socket (:func:`socket_path`: ``$RUNTIME_DIRECTORY/botvisor.sock``, else
``run/botvisor.sock`` beside the config file) carries any number of requests, one at a
time: one line of JSON, ``{"cmd": "status", "args": {...}}``, answered by one line,
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "...", "code": N}``, ``N`` the
exit status the CLI ends with (the ``EXIT_*`` constants). :class:`OperatorCommand` is the
one message the runtime sends an application's actor on an operator's behalf. The whole
protocol: ``docs/operations.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_ERROR",
    "EXIT_NOT_RUNNING",
    "EXIT_OK",
    "EXIT_UNKNOWN_ACTOR",
    "EXIT_USAGE",
    "MAX_REQUEST_BYTES",
    "SOCKET_NAME",
    "TOO_LONG",
    "ControlClient",
    "ControlError",
    "LineReader",
    "NotRunning",
    "OperatorCommand",
    "encode",
    "socket_path",
    "to_jsonable",
]

# Exit statuses, after the LSB convention for status-like commands.
EXIT_OK = 0
EXIT_ERROR = 1  # the command failed, or permission was refused
EXIT_USAGE = 2  # bad usage or a bad config
EXIT_NOT_RUNNING = 3  # no bot answers on the control socket
EXIT_UNKNOWN_ACTOR = 4  # no actor by that name in the tree

SOCKET_NAME = "botvisor.sock"
MAX_REQUEST_BYTES = 64 * 1024  # one request line, newline excluded
MAX_REPLY_BYTES = 64 * 1024 * 1024  # what the client accepts as one reply line
TOO_LONG = object()  # LineReader's marker for a line over its limit


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """A command an operator sent to an actor through the control socket.

    ``command`` is the action (``"status"``, ``"show"``...), ``args`` any further
    words, ``who`` the operator as the server saw them (``"cli:<user>"``, from the peer's
    uid, never from the client's say-so) and ``reason`` the ``--reason`` text, if any.

    The actor answers with a JSON-able dict. A refused command is answered with
    ``{"error": "why", "code": N}`` rather than by raising, so that an operator's typo never
    counts as the actor failing (``code`` defaults to 2, bad usage).
    """

    command: str
    args: tuple[str, ...] = ()
    who: str = "operator"
    reason: str = ""


class ControlError(Exception):
    """A request that cannot be served; ``code`` is the exit status for the CLI."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotRunning(ControlError):
    """Nothing answers on the control socket: the bot is not running (or not here)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_RUNNING)


def socket_path(config_path: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where the control socket of the bot run with ``config_path`` lives.

    ``$RUNTIME_DIRECTORY/botvisor.sock`` when ``RUNTIME_DIRECTORY`` is set and not empty
    (systemd's ``RuntimeDirectory=``; of a colon-separated list, the first), else
    ``<directory of the config file>/run/botvisor.sock``.
    """
    env = os.environ if environ is None else environ
    runtime_dir = (env.get("RUNTIME_DIRECTORY") or "").split(":")[0]
    if runtime_dir:
        return Path(runtime_dir) / SOCKET_NAME
    return Path(config_path).resolve().parent / "run" / SOCKET_NAME


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: decimals as exact strings, enums as their values,
    dataclasses as dicts, tuples and sets as lists, anything else unknown as ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name))
                for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return str(value)


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line: compact JSON and a newline (never a newline inside)."""
    return json.dumps(to_jsonable(message), separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"


class LineReader:
    """Reads newline-terminated lines from a stream socket, each at most ``limit`` bytes.

    :meth:`next` returns the next line (without its newline), ``None`` at the end of the
    stream, or :data:`TOO_LONG` once for a line over the limit (the rest of that line is
    skipped, so the next call returns the line after it). Socket timeouts propagate; with a
    ``deadline`` (``time.monotonic()``), so does a line not complete by then, however the
    bytes trickle in.
    """

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.limit = limit
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line already reported

    def next(self, deadline: float | None = None) -> bytes | object | None:
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                line = bytes(self._buf[:newline])
                del self._buf[: newline + 1]
                if self._skipping:
                    self._skipping = False
                    continue
                return TOO_LONG if len(line) > self.limit else line
            if len(self._buf) > self.limit:
                self._buf.clear()
                if not self._skipping:
                    self._skipping = True
                    return TOO_LONG
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no complete line by the deadline")
                self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk


def _send(sock: socket.socket, payload: bytes) -> None:
    """Send a request; a server that answered at once and closed (e.g. "too many clients")
    makes the send fail, but its answer is still there to read."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(payload)


class ControlClient:
    """Talks to a running bot over its control socket: one connection per request.

    Raises :class:`NotRunning` when nothing answers at ``path``, :class:`ControlError` with
    exit status 1 for a permission problem, a timeout or a garbled reply. Replies with
    ``"ok": false`` are returned as they are; the caller turns them into an exit status.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def request(self, cmd: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        sock = self._connect()
        try:
            _send(sock, encode({"cmd": cmd, "args": dict(args or {})}))
            line = LineReader(sock, MAX_REPLY_BYTES).next()
        except TimeoutError:
            raise ControlError(f"no reply from the bot within {self.timeout:g}s") from None
        except OSError as exc:
            raise ControlError(f"the connection to {self.path} failed: "
                               f"{exc.strerror or exc}") from None
        finally:
            sock.close()
        if line is None:
            raise ControlError("the bot closed the connection without answering")
        return _parse_reply(line)

    def stream(self, cmd: str, args: Mapping[str, Any] | None = None
               ) -> Iterator[dict[str, Any]]:
        """Send one request and yield every reply line until the bot closes the connection.

        The first reply answers the request (within the timeout); later lines (a followed
        event stream) may take any time.
        """
        sock = self._connect()
        try:
            _send(sock, encode({"cmd": cmd, "args": dict(args or {})}))
            reader = LineReader(sock, MAX_REPLY_BYTES)
            first = True
            while True:
                try:
                    line = reader.next()
                except TimeoutError:
                    raise ControlError(f"no reply from the bot within {self.timeout:g}s"
                                       ) from None
                if line is None:
                    if first:
                        raise ControlError("the bot closed the connection without answering")
                    return
                if first:
                    sock.settimeout(None)
                    first = False
                yield _parse_reply(line)
        except OSError as exc:
            raise ControlError(f"the connection to {self.path} failed: "
                               f"{exc.strerror or exc}") from None
        finally:
            sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, NotADirectoryError):
            sock.close()
            raise NotRunning(f"the bot is not running (no control socket at {self.path})"
                             ) from None
        except ConnectionRefusedError:
            sock.close()
            raise NotRunning(f"the bot is not running (nothing answers on {self.path}; "
                             "a socket left over from an earlier run?)") from None
        except PermissionError:
            sock.close()
            raise ControlError(f"permission denied on {self.path}: run this as the user "
                               "the bot runs as") from None
        except TimeoutError:
            sock.close()
            raise ControlError(f"no answer on {self.path} within {self.timeout:g}s") from None
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to {self.path}: {exc.strerror or exc}"
                               ) from None
        return sock


def _parse_reply(line: bytes | object) -> dict[str, Any]:
    if not isinstance(line, bytes):
        raise ControlError("the bot's reply is too large")
    try:
        reply = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError("the bot's reply is not valid JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError("the bot's reply is not a control-protocol reply")
    return reply
