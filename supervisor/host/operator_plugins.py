"""Operator command plug-ins: ``botvisor`` verbs an application adds, each forwarded over the
control socket to one of its actors as an
:class:`~supervisor.host.control_protocol.OperatorCommand`.

Each is an entry point of the group ``botvisor.operator_commands``, named as its verb,
whose object is a :class:`ForwardedCommand` subclass (or instance). Its ``target`` and
``status_fields`` apply unless the config sets ``control.targets`` or
``control.status_fields`` (:func:`targets_of`, :func:`status_fields_of`). A plug-in that
cannot be loaded, is of the wrong type, or takes a name already taken raises
:class:`PluginError` naming its entry point. How a bot registers a verb: ``docs/operations.md``.
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from supervisor.host.control_protocol import EXIT_OK
from supervisor.host.plugin_loading import RESERVED, PluginError, load_plugins

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from supervisor.host.config import ControlModel

__all__ = [
    "GROUP",
    "RESERVED",
    "ForwardedCommand",
    "PluginError",
    "installed_commands",
    "load_commands",
    "status_fields_of",
    "targets_of",
]

GROUP = "botvisor.operator_commands"


class ForwardedCommand(abc.ABC):
    """One operator verb, forwarded to the actor that answers it.

    ``name`` is the verb and the control command group, ``help`` its one-line help,
    ``target`` the actor that answers it by default, ``status_fields`` the fields of that
    actor's published snapshot that ``botvisor status`` shows, ``state_styles`` rich styles
    for the state words its replies carry. :meth:`request` builds the forwarded args
    (``{"command": ..., "args": [...], "reason": ...}``); :meth:`render` draws a reply and
    returns the exit status; :meth:`exit_status` is that status for ``--json`` output.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    target: ClassVar[str]
    status_fields: ClassVar[tuple[str, ...]] = ()
    state_styles: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the verb's own arguments (none by default)."""
        return None

    @abc.abstractmethod
    def request(self, args: argparse.Namespace) -> dict[str, Any]:
        """The args forwarded to the target for the parsed command line ``args``."""

    @abc.abstractmethod
    def render(self, console: Console, result: Any) -> int:
        """Draw the target's reply on ``console``; the exit status."""

    def exit_status(self, result: Any) -> int:
        """The exit status a reply means (a reply can still report a failure)."""
        return EXIT_OK

    def format_status(self, field: str, value: Any) -> str | Text | None:
        """How ``botvisor status`` shows snapshot ``field``, or None for the default."""
        return None


def installed_commands() -> list[ForwardedCommand]:
    """The commands installed distributions register, in name order."""
    return load_commands(entry_points(group=GROUP))


def load_commands(eps: Iterable[EntryPoint]) -> list[ForwardedCommand]:
    """Load ``eps`` (entry points of :data:`GROUP`) in name order; PluginError names the
    first that cannot be used."""
    return load_plugins(eps, group=GROUP, kind="operator command", base=ForwardedCommand,
                        noun="verb", strings=("name", "help", "target"), check=_problem)


def _problem(command: ForwardedCommand) -> str | None:
    fields = command.status_fields
    if not isinstance(fields, tuple) or not all(isinstance(f, str) and f for f in fields):
        return "'status_fields' must be a tuple of field names"
    return None


def targets_of(settings: ControlModel, commands: Sequence[ForwardedCommand]) -> dict[str, str]:
    """Command group -> answering actor: ``control.targets`` when the config sets it, else
    each plug-in's own ``target``."""
    if "targets" in settings.model_fields_set:
        return dict(settings.targets)
    return {c.name: c.target for c in commands}


def status_fields_of(settings: ControlModel, commands: Sequence[ForwardedCommand]
                     ) -> tuple[str, ...]:
    """The ``actor.field`` items ``status`` shows: ``control.status_fields`` when the config
    sets it, else each plug-in's fields, on the actor that answers it."""
    if "status_fields" in settings.model_fields_set:
        return tuple(settings.status_fields)
    targets = targets_of(settings, commands)
    return tuple(f"{targets[c.name]}.{f}" for c in commands if c.name in targets
                 for f in c.status_fields)
