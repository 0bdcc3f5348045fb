"""Loading the plug-ins of one entry-point group: each entry point names a class (made
with no arguments) or an instance of a given base class, with a ``name`` the entry point
repeats. A plug-in that does not load, cannot be made, is of the wrong kind or is misnamed
is a :class:`PluginError` naming its entry point (exit 2: a bad install). Used for the
operator's verbs (``operator_plugins``) and the CLI's subcommands (``command_plugins``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint
from typing import Any

from supervisor.host.control_protocol import EXIT_USAGE, ControlError

__all__ = ["RESERVED", "PluginError", "load_plugins"]

# Names the runtime has itself (the CLI's and the control socket's): no plug-in takes one.
RESERVED = frozenset({"run", "check-config", "ping", "status", "tree", "stop", "start",
                      "restart", "reload", "events"})
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class PluginError(ControlError):
    """A plug-in that cannot be used; exit status 2 (a bad install)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def load_plugins(eps: Iterable[EntryPoint], *, group: str, kind: str, base: type,
                 noun: str, strings: Sequence[str] = ("name", "help"),
                 check: Callable[[Any], str | None] = lambda plugin: None) -> list[Any]:
    """Load ``eps`` in name order as ``base`` plug-ins (``kind`` for messages, ``noun``
    what a name is: "verb", "subcommand"); each attribute in ``strings`` must be a
    non-empty string, and ``check`` says what else is wrong with one (None: nothing)."""
    found: list[Any] = []
    seen: set[str] = set()
    for ep in sorted(eps, key=lambda e: e.name):
        where = f"{kind} plug-in '{ep.name}' ({group}: {ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:  # a missing module or attribute, or its import failing
            raise PluginError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}"
                              ) from None
        try:
            plugin = obj() if isinstance(obj, type) and issubclass(obj, base) else obj
        except Exception as exc:
            raise PluginError(f"{where} cannot be made: {type(exc).__name__}: {exc}") from None
        if not isinstance(plugin, base):
            raise PluginError(f"{where} is a {type(obj).__name__}, not a {base.__name__} "
                              f"({base.__module__})")
        problem = _named(plugin, ep.name, seen, strings, noun) or check(plugin)
        if problem:
            raise PluginError(f"{where}: {problem}")
        seen.add(str(getattr(plugin, "name")))  # noqa: B009 (checked a string above)
        found.append(plugin)
    return found


def _named(plugin: object, ep_name: str, seen: set[str], strings: Sequence[str],
           noun: str) -> str | None:
    for attr in strings:
        value = getattr(plugin, attr, None)
        if not isinstance(value, str) or not value:
            return f"'{attr}' must be a non-empty string"
    name = str(getattr(plugin, "name"))  # noqa: B009
    if name != ep_name:
        return f"its name is '{name}'; the entry point must be named as the {noun}"
    if not _NAME_CHARS.issuperset(name) or not name[0].isalpha():
        return f"'{name}' is not a {noun} (lower-case letters, digits, '_', '-')"
    if name in RESERVED:
        return f"'{name}' is one of botvisor's own commands"
    if name in seen:
        return f"'{name}' is registered twice"
    return None
