"""Config translators: plug-ins that rewrite a raw config before it is validated.

An application keeps an older config format working (its users' files carry over) without
the runtime knowing that application: it declares a translator as an entry point of the
group ``botvisor.config_translators`` (this repository's ``pyproject.toml`` registers one,
``legacy``). A translator takes the raw mapping (the YAML as loaded) and returns a
:class:`Translation`: the rewritten mapping, the problems it found (key path, reason), and
notes saying what it moved where. Translators run in name order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["GROUP", "Translation", "Translator", "apply_translators", "entry_point_values",
           "installed_translators"]

GROUP = "botvisor.config_translators"


@dataclass(frozen=True)
class Translation:
    """What a translator made of a raw config."""

    raw: dict[str, Any]
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Translator = Callable[[dict[str, Any]], Translation]


@functools.cache
def _entry_points(group: str) -> tuple[EntryPoint, ...]:
    # What is installed does not change under a running process, and reading every
    # distribution's metadata costs milliseconds per config load: read once, keep.
    return tuple(sorted(entry_points(group=group), key=lambda e: e.name))


def entry_point_values(group: str) -> tuple[str, ...]:
    """The object references (``module:attr``) of the entry points in ``group``, by name."""
    return tuple(ep.value for ep in _entry_points(group))


def installed_translators() -> list[tuple[str, Translator]]:
    """The translators installed as entry points, by name."""
    found: list[tuple[str, Translator]] = []
    for ep in _entry_points(GROUP):
        try:
            found.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plug-in must not hide the user's real problem
            log.warning("config translator %s could not be loaded: %s", ep.name, exc)
    return found


def apply_translators(
    raw: dict[str, Any], translators: list[tuple[str, Translator]] | None = None
) -> Translation:
    """Run every translator over ``raw``; problems and notes are collected from all."""
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    for name, translate in translators if translators is not None else installed_translators():
        try:
            result = translate(raw)
        except Exception as exc:  # a plug-in's bug is a config error, never a traceback
            log.debug("config translator %s failed", name, exc_info=True)
            problems.append((f"(config translator {name})",
                             f"failed on this file: {type(exc).__name__}: {exc}"))
            continue
        raw = result.raw
        problems.extend(result.problems)
        notes.extend(result.notes)
    return Translation(raw, problems, notes)
