"""Command plug-ins: ``botvisor`` subcommands an application adds, run in the CLI's own
process (no control socket, no running bot), such as a tool that prepares data.

Each is an entry point of the group ``botvisor.commands``, named as its subcommand, whose
object is a :class:`HostCommand` subclass (or instance): its ``name`` and one-line
``help``, :meth:`HostCommand.configure` adding its arguments to its argparse parser, and
:meth:`HostCommand.run` doing the work and returning the exit status. A plug-in that
cannot be loaded, is of the wrong type, or takes a name already taken raises
:class:`~supervisor.host.plugin_loading.PluginError` naming its entry point (exit 2).
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import ClassVar

from supervisor.host.plugin_loading import PluginError, load_plugins

__all__ = ["GROUP", "HostCommand", "add_host_commands", "installed_commands", "load_commands"]

GROUP = "botvisor.commands"


class HostCommand(abc.ABC):
    """One subcommand run in the CLI's process: ``name``, ``help``, its arguments and its
    work (:meth:`run` returns the exit status; bad input is the command's to report, with
    exit 2)."""

    name: ClassVar[str]
    help: ClassVar[str]

    @abc.abstractmethod
    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments to ``parser``."""

    @abc.abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the work for the parsed command line ``args``; the exit status."""


def installed_commands() -> list[HostCommand]:
    """The commands installed distributions register, in name order."""
    return load_commands(entry_points(group=GROUP))


def load_commands(eps: Iterable[EntryPoint]) -> list[HostCommand]:
    """Load ``eps`` (entry points of :data:`GROUP`) in name order; PluginError names the
    first that cannot be used."""
    return load_plugins(eps, group=GROUP, kind="command", base=HostCommand,
                        noun="subcommand")


def add_host_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                      commands: Sequence[HostCommand] | None = None) -> None:
    """Register ``commands`` (default: the installed plug-ins'; PluginError names a broken
    one) on the ``botvisor`` parser's subparsers, after its own: a name already taken there
    is refused."""
    plugins = installed_commands() if commands is None else list(commands)
    for command in plugins:
        if command.name in sub.choices:
            raise PluginError(f"command plug-in '{command.name}' ({GROUP}): "
                              f"'{command.name}' is already a botvisor command")
        parser = sub.add_parser(command.name, help=command.help, description=command.help)
        try:
            command.configure(parser)
        except Exception as exc:
            raise PluginError(f"command plug-in '{command.name}' ({GROUP}) cannot add its "
                              f"arguments: {type(exc).__name__}: {exc}") from None
        parser.set_defaults(func=command.run)
