"""One control request line to its one reply: parsing, the fields check, dispatch to a
command, and every failure turned into an error reply with its exit status.

A request is ``{"cmd": ..., "args": {...}}``. A malformed, over-long, too deep or unknown
one, or one with fields its command does not take, is answered with what is wrong
(exit status 2); an unknown actor with 4; any other failure with 1. :meth:`RequestHandler.handle`
never raises.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from supervisor.errors import ActorNotRunning, AskTimeout, RuntimeErrorBase, UnknownActor
from supervisor.host.control_commands import ARGS, FORWARD_ARGS, ControlCommands
from supervisor.host.control_protocol import (
    EXIT_ERROR,
    EXIT_UNKNOWN_ACTOR,
    EXIT_USAGE,
    MAX_REQUEST_BYTES,
    ControlError,
)
from supervisor.host.logs import printable

log = logging.getLogger("botvisor")

__all__ = ["RequestHandler", "error_reply"]


def error_reply(message: str, code: int) -> dict[str, Any]:
    """The protocol's ``"ok": false`` reply, its text escaped."""
    return {"ok": False, "error": printable(message, 2000), "code": code}


class RequestHandler:
    """Routes each request to one of ``commands``: a built-in, or a forwarded group."""

    def __init__(self, commands: ControlCommands) -> None:
        self.commands = commands

    def handle(self, line: bytes | object, who: str) -> dict[str, Any]:
        """The reply to one request line (``TOO_LONG`` for a line over the limit); never
        raises."""
        try:
            return self._handle(line, who)
        except Exception as exc:
            log.error("control: a request failed: %s: %s", type(exc).__name__, printable(exc))
            log.debug("control: the failure", exc_info=True)
            return error_reply(f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR)

    def _handle(self, line: bytes | object, who: str) -> dict[str, Any]:
        if not isinstance(line, bytes):
            return error_reply(f"request too long (more than {MAX_REQUEST_BYTES} bytes)",
                               EXIT_USAGE)
        try:
            request = json.loads(line)
        except UnicodeDecodeError:
            return error_reply("malformed request: not UTF-8 text", EXIT_USAGE)
        except RecursionError:
            return error_reply("malformed request: nested too deeply", EXIT_USAGE)
        except json.JSONDecodeError as exc:
            return error_reply(f"malformed request: not JSON ({exc})", EXIT_USAGE)
        except ValueError as exc:  # an integer over Python's limit for converting text
            return error_reply(f"malformed request: {str(exc).split(':')[0]}", EXIT_USAGE)
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return error_reply('malformed request: expected {"cmd": "...", "args": {...}}',
                               EXIT_USAGE)
        unknown = sorted(str(k) for k in request if k not in ("cmd", "args"))
        if unknown:
            return error_reply(f"malformed request: unknown field(s) {_names(unknown)}; "
                               'expected {"cmd": "...", "args": {...}}', EXIT_USAGE)
        cmd: str = request["cmd"]
        args = request.get("args", {})
        if not isinstance(args, dict):
            return error_reply("malformed request: 'args' must be an object", EXIT_USAGE)
        try:
            return {"ok": True, "result": self._dispatch(cmd, args, who)}
        except ControlError as exc:
            return error_reply(exc.message, exc.code)
        except UnknownActor as exc:
            return error_reply(str(exc), EXIT_UNKNOWN_ACTOR)
        except (ActorNotRunning, AskTimeout, RuntimeErrorBase) as exc:
            return error_reply(str(exc), EXIT_ERROR)
        except Exception as exc:
            log.error("control: %s failed: %s: %s", printable(cmd, 40), type(exc).__name__,
                      printable(exc))
            log.debug("control: the failure", exc_info=True)
            return error_reply(f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR)

    def _dispatch(self, cmd: str, args: dict[str, Any], who: str) -> Any:
        commands = self.commands
        handler = commands.handlers.get(cmd)
        allowed = ARGS.get(cmd, FORWARD_ARGS)
        if handler is not None or cmd in commands.targets:
            unknown = sorted(str(k) for k in args if k not in allowed)
            if unknown:
                raise ControlError(f"{cmd}: unknown field(s) in args {_names(unknown)}; "
                                   f"it takes {_names(sorted(allowed)) or 'none'}", EXIT_USAGE)
        if handler is not None:
            return handler(args, who)
        if cmd in commands.targets:
            return commands.forward(cmd, args, who)
        known = sorted([*commands.handlers, *commands.targets])
        raise ControlError(f"unknown command '{printable(cmd, 40)}'; known: "
                           f"{', '.join(known)}", EXIT_USAGE)


def _names(items: list[str]) -> str:
    return ", ".join(f"'{printable(i, 40)}'" for i in items[:10])
