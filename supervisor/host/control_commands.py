"""The control socket's commands, over one runtime: what each does and the reply it gives.

:class:`ControlCommands` serves ``ping``, ``status``, ``tree``, ``stop``/``start``/``restart
{"name"}``, ``reload`` and ``events {"limit", "actor", "follow"}``, and forwards any command
group of its ``targets`` to the actor named there, as an
:class:`~supervisor.host.control_protocol.OperatorCommand` answered within
``control.command_timeout``. Nothing here blocks an actor: views are read from the runtime
without asking anyone, and the child commands go to the child's supervisor. Refusals raise
:class:`~supervisor.host.control_protocol.ControlError` (or the runtime's own errors); text
from a request is escaped before it reaches the log or a reply.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    ControlError,
    OperatorCommand,
    to_jsonable,
)
from supervisor.host.logs import printable
from supervisor.lifecycle import ChildState

if TYPE_CHECKING:
    from supervisor.host.session import RunSession
    from supervisor.runtime import Runtime

log = logging.getLogger("botvisor")

__all__ = ["ARGS", "FORWARD_ARGS", "ControlCommands", "EventFollower", "Handler",
           "event_json", "snapshot_fields"]

Handler = Callable[[dict[str, Any], str], Any]  # (args, who) -> the result
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_MAX_NAME = 200  # characters in an actor's name from a request
_MAX_REASON = 500  # characters of an operator's --reason passed on
# The fields each built-in command takes in "args" (a forwarded group: FORWARD_ARGS).
ARGS: Mapping[str, frozenset[str]] = {
    "ping": frozenset(), "status": frozenset(), "tree": frozenset(), "reload": frozenset(),
    "stop": frozenset({"name"}), "start": frozenset({"name"}), "restart": frozenset({"name"}),
    "events": frozenset({"limit", "actor", "follow"}),
}
FORWARD_ARGS = frozenset({"command", "args", "reason"})


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


class ControlCommands:
    """The built-in commands and the forwarded groups of one served runtime.

    ``targets`` maps each forwarded command group to the actor that answers it,
    ``status_fields`` lists the ``actor.field`` items ``status`` shows, ``socket`` is the
    path ``status`` reports. An ``events`` request with ``follow`` leaves its subscription
    for the connection's thread to pick up with :meth:`take_follower`.
    """

    def __init__(self, runtime: Runtime, settings: ControlModel, *, socket: Path,
                 targets: Mapping[str, str], status_fields: tuple[str, ...],
                 session: RunSession | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.socket = socket
        self.targets = dict(targets)
        self.status_fields = status_fields
        self.session = session
        self._local = threading.local()  # per connection thread: a follower being set up
        self.handlers: dict[str, Handler] = {
            "ping": lambda _a, _w: {"pid": os.getpid()},
            "status": lambda _a, _w: self.status(),
            "tree": lambda _a, _w: self.tree(),
            "stop": self._stop_child,
            "start": self._start_child,
            "restart": self._restart_child,
            "reload": self._reload,
            "events": self._events,
        }

    def take_follower(self) -> EventFollower | None:
        """The subscription the last request on this thread set up, if any (once)."""
        follower: EventFollower | None = getattr(self._local, "follower", None)
        self._local.follower = None
        return follower

    # -- views -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The whole tree in a few numbers, plus the configured snapshot fields."""
        runtime = self.runtime
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
            "socket": str(self.socket),
            "snapshot": self._snapshot_summary(),
            "chaos": runtime.chaos.summary() if isinstance(runtime.chaos, ChaosPlan)
            else {"enabled": False},
        }

    def _snapshot_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cache: dict[str, dict[str, Any]] = {}
        for item in self.status_fields:
            actor, _, field = item.partition(".")
            if actor not in cache:
                cell = self.runtime.cell_or_none(actor)
                cache[actor] = snapshot_fields(cell.published) if cell is not None else {}
            if field in cache[actor]:
                out[item] = cache[actor][field]
        return out

    def tree(self) -> dict[str, Any]:
        """Every actor, nested as the tree is (see :class:`~supervisor.runtime.TreeNode`)."""
        root = self.runtime.tree()
        if root is None:
            raise ControlError("the tree has not started")
        result: dict[str, Any] = to_jsonable(root)
        return result

    # -- changes -----------------------------------------------------------------------------
    def _stop_child(self, args: dict[str, Any], who: str) -> Any:
        name = _name(args)
        log.warning("control: %s stops %s", who, name)
        return to_jsonable(_child_command(self.runtime.terminate_child, name))

    def _start_child(self, args: dict[str, Any], who: str) -> Any:
        name = _name(args)
        cell = self.runtime.cell(name)  # UnknownActor: exit 4
        if cell.state in (ChildState.RUNNING, ChildState.STARTING):
            raise ControlError(f"{name} is already running (use `restart {name}` to "
                               "restart it)", EXIT_ERROR)
        log.warning("control: %s starts %s", who, name)
        return to_jsonable(_child_command(self.runtime.restart_child, name))

    def _restart_child(self, args: dict[str, Any], who: str) -> Any:
        name = _name(args)
        log.warning("control: %s restarts %s", who, name)
        return to_jsonable(_child_command(self.runtime.restart_child, name))

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
        if actor is not None and not self.runtime.has(actor):
            raise ControlError(f"unknown actor {actor!r}", EXIT_UNKNOWN_ACTOR)
        follow = args.get("follow", False)
        if not isinstance(follow, bool):
            raise ControlError("'follow' must be true or false", EXIT_USAGE)
        follower = EventFollower(self.runtime, actor) if follow else None
        recent = [e for e in self.runtime.events.recent() if actor is None or e.actor == actor]
        if follower is not None:
            follower.already_sent(recent)
            self._local.follower = follower
        return {
            "events": [event_json(e) for e in recent[-limit:]] if limit else [],
            "follow": follow,
            "actor": actor,
        }

    def _reload(self, _args: dict[str, Any], who: str) -> dict[str, Any]:
        session = self.session
        settings = self.settings
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

    # -- forwarded groups --------------------------------------------------------------------
    def forward(self, group: str, args: dict[str, Any], who: str) -> Any:
        """Ask the actor that answers ``group`` (one of ``targets``) the operator's command."""
        settings = self.settings
        actor = self.targets[group]
        command = args.get("command")
        words = args.get("args", [])
        reason = args.get("reason") or ""
        if not isinstance(command, str) or not command:
            raise ControlError(f"{group}: 'command' must be a non-empty string", EXIT_USAGE)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ControlError(f"{group}: 'args' must be a list of strings", EXIT_USAGE)
        if not isinstance(reason, str):
            raise ControlError(f"{group}: 'reason' must be a string", EXIT_USAGE)
        reason = printable(reason, _MAX_REASON)  # the actor may record or send it on
        message = OperatorCommand(command, tuple(words), who, reason)
        if command != "status":
            log.warning("control: %s: %s %s%s", who, group,
                        printable(" ".join([command, *words])),
                        f" ({reason})" if reason else "")
        try:
            reply = self.runtime.ask(actor, message, timeout=settings.command_timeout)
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


def _child_command(command: Callable[[str], Any], name: str) -> Any:
    try:
        return command(name)
    except ValueError as exc:  # the root: the process itself is stopped with a signal
        if isinstance(exc, RuntimeErrorBase):
            raise
        raise ControlError(f"{exc} (SIGTERM, or `systemctl stop botvisor`)",
                           EXIT_USAGE) from None


class EventFollower:
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
        "message_type": event.message_type,
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
