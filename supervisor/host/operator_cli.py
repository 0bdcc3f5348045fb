"""The operator's commands: ``botvisor status``, ``tree``, ``stop NAME``, ``start NAME``,
``restart NAME``, ``reload`` and ``events [--follow]``, and the verbs installed plug-ins
register (:mod:`supervisor.host.operator_plugins`), each talking to the running bot over
its control socket.

Each takes ``--config PATH`` (the socket is found by the server's rule, see
:func:`~supervisor.host.control_protocol.socket_path`) or ``--socket PATH``, and ``--json``
(print the protocol's reply, ``{"ok": ..., "result"|"error": ...}``, for scripts). Output
is drawn with rich (colours only on a terminal); errors are one line on stderr, never a
traceback. Exit statuses: 0 ok, 1 error (or permission refused), 2 bad usage or config,
3 the bot is not running, 4 no such actor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from supervisor.host.control_protocol import (
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_UNKNOWN_ACTOR,
    EXIT_USAGE,
    ControlClient,
    ControlError,
    socket_path,
)
from supervisor.host.logs import printable
from supervisor.host.operator_plugins import ForwardedCommand, installed_commands
from supervisor.host.operator_render import console as _console
from supervisor.host.operator_render import duration, number, pairs, styled

__all__ = ["add_operator_commands", "run_events_command", "run_operator_command", "seconds"]

DEFAULT_CONFIG = "config.yaml"

Args = argparse.Namespace
Request = Callable[[Args], dict[str, Any]]
Render = Callable[[Console, Any], int]
Status = Callable[[Any], int]


def _ok(_result: Any) -> int:
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class _Operation:
    """One subcommand: the request it sends, how its result is shown, and the exit status
    its result means."""

    cmd: str
    request: Request
    render: Render
    exit_status: Status = _ok


MAX_SECONDS = 10**8  # about three years: more than any timer or socket timeout takes


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, > 0 and at most MAX_SECONDS (``nan``,
    ``inf`` and ``1e300`` would reach a timer or a socket timeout and fail there)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_SECONDS:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0 and at most {MAX_SECONDS}")
    return value


def add_operator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                          commands: Sequence[ForwardedCommand] | None = None) -> None:
    """Register the operator's subcommands on the ``botvisor`` parser's subparsers: the
    runtime's own and ``commands`` (default: the installed plug-ins'; PluginError names a
    broken one)."""
    plugins = installed_commands() if commands is None else list(commands)
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--config", default=DEFAULT_CONFIG, metavar="PATH",
                       help="the running bot's config file, to find its control socket "
                            "(default: %(default)s)")
    where.add_argument("--socket", default=None, metavar="PATH",
                       help="the control socket itself")
    common.add_argument("--json", action="store_true", help="print the reply as JSON")
    common.add_argument("--timeout", type=seconds, default=60.0, metavar="S",
                        help="give up waiting for the bot after S seconds (default: %(default)g)")

    def add(name: str, help_text: str, op: _Operation) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(func=run_operator_command, operation=op)
        return parser

    add("status", "the running bot in a few lines",
        _Operation("status", lambda a: {}, lambda c, r: _render_status(c, r, plugins)))
    add("tree", "every actor with its state, restarts, uptime and mailbox depth",
        _Operation("tree", lambda a: {}, _render_tree))
    for name, help_text in (
        ("stop", "stop an actor by hand: not restarted, not counted against restart "
                 "intensity, until `start NAME`"),
        ("start", "start an actor that was stopped (counts against its supervisor's "
                  "restart intensity)"),
        ("restart", "restart a running actor in place (counts against its supervisor's "
                    "restart intensity)"),
    ):
        parser = add(name, help_text, _Operation(name, _named, _render_child))
        parser.add_argument("name", help="the actor's name, as `botvisor tree` shows it")
    for plugin in plugins:
        plugin.add_arguments(add(plugin.name, plugin.help, _Operation(
            plugin.name, plugin.request, plugin.render, plugin.exit_status)))
    add("reload", "re-read the config file; apply what can change without a restart",
        _Operation("reload", lambda a: {}, _render_reload, _reload_status))
    events = sub.add_parser(
        "events", parents=[common],
        help="the latest supervision events; --follow streams new ones until Ctrl-C",
        description="the latest supervision events; --follow streams new ones until Ctrl-C")
    events.add_argument("--limit", type=int, default=50, metavar="N",
                        help="how many recent events (default: %(default)s)")
    events.add_argument("--actor", default=None, metavar="NAME", help="only this actor's")
    events.add_argument("--follow", "-f", action="store_true",
                        help="keep printing events as they happen")
    events.set_defaults(func=run_events_command)


def run_events_command(args: Args) -> int:
    """``botvisor events``: recent events, then (with --follow) each new one as it comes."""
    request = {"limit": args.limit, "follow": args.follow}
    if args.actor:
        request["actor"] = args.actor
    try:
        if args.timeout <= 0:
            raise ControlError("--timeout must be > 0", EXIT_USAGE)
        client = ControlClient(_socket_of(args), timeout=args.timeout)
        replies = client.stream("events", request) if args.follow else \
            iter([client.request("events", request)])
        first = next(replies)
        if not first["ok"]:
            return _refused(args, first)
        result = first.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("events"), list):
            return _fail(args, "unexpected reply from the bot; try --json", EXIT_ERROR, first)
        for event in result["events"]:
            _print_event(args, event)
        for reply in replies:  # only with --follow: until the bot stops or Ctrl-C
            if isinstance(reply.get("event"), dict):
                _print_event(args, reply["event"])
            elif reply.get("following"):
                print("botvisor: following events (Ctrl-C to stop)", file=sys.stderr,
                      flush=True)
    except ControlError as exc:
        return _fail(args, exc.message, exc.code)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _print_event(args: Args, event: Mapping[str, Any]) -> None:
    if args.json:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(event.get("at") or 0)))
    print(f"{when} {str(event.get('severity', '')).upper():8} "
          f"{printable(event.get('text', ''), 4000)}", flush=True)


def run_operator_command(args: Args) -> int:
    """Send the subcommand's request, show the reply; the exit status."""
    op: _Operation = args.operation
    try:
        request = op.request(args)
    except Exception as exc:  # a plug-in's bug: say so, no traceback
        return _fail(args, f"the {op.cmd} command could not build its request "
                           f"({type(exc).__name__}: {exc})", EXIT_ERROR)
    try:
        if args.timeout <= 0:
            raise ControlError("--timeout must be > 0", EXIT_USAGE)
        client = ControlClient(_socket_of(args), timeout=args.timeout)
        reply = client.request(op.cmd, request)
    except ControlError as exc:
        return _fail(args, exc.message, exc.code)
    if not reply["ok"]:
        return _refused(args, reply)
    result = reply.get("result")
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
        return op.exit_status(result)
    try:
        return op.render(_console(), result)
    except Exception as exc:  # a reply from another version: say so, no traceback
        return _fail(args, f"unexpected reply from the bot ({type(exc).__name__}: {exc}); "
                           "try --json", EXIT_ERROR)


def _socket_of(args: Args) -> Path:
    if args.socket:
        return Path(args.socket)
    config = Path(args.config)
    if not os.environ.get("RUNTIME_DIRECTORY") and not config.is_file():
        raise ControlError(f"config file {config} not found: pass --config PATH (the "
                           "running bot's) or --socket PATH", EXIT_USAGE)
    return socket_path(config)


def _refused(args: Args, reply: Mapping[str, Any]) -> int:
    """Show an ``"ok": false`` reply; its code, if it is one of ours, is the exit status."""
    code = reply.get("code")
    code = code if code in (EXIT_ERROR, EXIT_USAGE, EXIT_NOT_RUNNING,
                            EXIT_UNKNOWN_ACTOR) else EXIT_ERROR
    return _fail(args, str(reply.get("error") or "failed"), code, reply)


def _fail(args: Args, message: str, code: int, reply: Mapping[str, Any] | None = None) -> int:
    if args.json:
        print(json.dumps(dict(reply) if reply is not None else
                         {"ok": False, "error": message, "code": code}, indent=2,
                         ensure_ascii=False))
    else:  # the bot's text, escaped: an actor name or reason cannot drive the terminal
        print(f"botvisor: {printable(message, 4000)}", file=sys.stderr)
    return code


def _reload_status(result: Any) -> int:
    """A reload that failed is an error, though the bot answered."""
    if isinstance(result, Mapping) and any(
            str(item).startswith("reload failed") for item in result.get("not_applied") or []):
        return EXIT_ERROR
    return EXIT_OK


# -- requests ----------------------------------------------------------------------------------
def _named(args: Args) -> dict[str, Any]:
    return {"name": args.name}


# -- renderers ---------------------------------------------------------------------------------
def _render_status(console: Console, r: Mapping[str, Any],
                   plugins: Sequence[ForwardedCommand]) -> int:
    styles = {word: style for p in plugins for word, style in p.state_styles.items()}
    head = Text.assemble("botvisor ", styled(r["state"]),
                         f"  (root {r['root']}, up {duration(r['uptime'])}, pid {r['pid']})")
    if r.get("stopping"):
        head.append("  stopping", style="yellow")
    console.print(head)
    table = pairs()
    states = ", ".join(f"{n} {s}" for s, n in sorted(r["by_state"].items()))
    table.add_row("actors", f"{r['actors']} ({states})")
    table.add_row("restarts", str(r["restarts"]))
    table.add_row("dead letters", str(r["dead_letters"]))
    for key, value in r.get("snapshot", {}).items():
        field = key.split(".", 1)[1]
        shown = next((f for p in plugins if (f := p.format_status(field, value)) is not None),
                     None)
        if shown is None:
            shown = styled(value, styles) if field.endswith("state") else \
                number(value) if isinstance(value, int | float) else str(value)
        table.add_row(key, shown)
    chaos = r.get("chaos") or {}
    if chaos.get("enabled"):
        table.add_row("chaos", Text(f"ON, seed {chaos.get('seed')}, "
                                    f"{chaos.get('faults_injected', 0)} fault(s) injected",
                                    style="bold yellow"))
    if r.get("config"):
        table.add_row("config", str(r["config"]))
    console.print(table)
    return EXIT_OK


def _node_label(node: Mapping[str, Any]) -> Text:
    label = Text.assemble((node["name"], "bold"), "  ", styled(node["state"]))
    if node["kind"] == "supervisor":
        label.append("  supervisor", style="dim")
    label.append(f"  restarts {node['restarts']}")
    label.append(f"  up {duration(node['uptime'])}")
    label.append(f"  mailbox {node['mailbox']}")
    label.append(f"  #{node['incarnation']}", style="dim")
    if node.get("fallback_active"):
        label.append("  on fallback", style="yellow")
    if node.get("busy_for") and node["busy_for"] > 1.0:
        label.append(f"  busy {duration(node['busy_for'])}", style="yellow")
    if node.get("last_error") and node["state"] != "running":
        label.append(f"  last error: {node['last_error']}", style="red")
    return label


def _render_tree(console: Console, root: Mapping[str, Any]) -> int:
    def grow(branch: Tree, node: Mapping[str, Any]) -> None:
        for child in node.get("children", []):
            grow(branch.add(_node_label(child)), child)

    tree = Tree(_node_label(root))
    grow(tree, root)
    console.print(tree)
    return EXIT_OK


def _render_child(console: Console, info: Mapping[str, Any]) -> int:
    line = Text.assemble((info["id"], "bold"), ": ", styled(info["state"]),
                         f"  (restarts {info['restarts']}, incarnation {info['incarnation']})")
    if info["state"] == "terminated":
        line.append(f"  not restarted until `botvisor start {info['id']}`", style="dim")
    console.print(line)
    return EXIT_OK


def _render_reload(console: Console, r: Mapping[str, Any]) -> int:
    applied, pending = r.get("applied") or [], r.get("not_applied") or []
    if not applied and not pending:
        console.print("reloaded: nothing changed")
        return EXIT_OK
    for item in applied:
        console.print(Text.assemble(("applied ", "green"), item))
    for item in pending:
        console.print(Text.assemble(("not applied ", "yellow"), item,
                                    (" (needs a restart)", "dim")))
    return _reload_status(r)
