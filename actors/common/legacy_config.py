"""The original bot's config keys, carried over into botvisor's tree.

A config translator (entry point ``legacy`` of ``botvisor.config_translators``): each old
key (``circuit_breaker.*``, ``position_sync_interval``, ``max_conflict_history``,
``max_error_history``, ``enable_notifications``) is moved to the setting that now owns it,
found by the actor's import path, so renaming a child does not break the mapping. A key
given both ways with different values is an error naming both. The table of old keys and
their new homes: docs/configuration.md ("Settings from the original bot").
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from supervisor.host.config_translators import Translation

__all__ = ["translate"]

BREAKER = "actors.risk.breaker:BreakerActor"
POSITIONS = "actors.portfolio.positions:PositionActor"
ALERTS = "actors.alerts.alerts:AlertsActor"

_BREAKER_KEYS: dict[str, tuple[str, ...]] = {
    "failure_threshold": ("api_errors", "max_consecutive"),
    "max_drawdown_percent": ("drawdown", "max_percent"),
    "max_daily_loss_percent": ("daily_loss", "max_percent"),
    "recovery_timeout": ("recovery_timeout",),
    "max_recovery_timeout": ("max_recovery_timeout",),
    "half_open_max_calls": ("half_open_max_calls",),
    "success_threshold": ("success_threshold",),
}
_TOP_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "position_sync_interval": (POSITIONS, ("reconcile_interval",)),
    "max_conflict_history": (POSITIONS, ("max_conflict_history",)),
    "enable_notifications": (ALERTS, ("enabled",)),
}


def translate(raw: dict[str, Any]) -> Translation:
    """Move the original bot's keys to their new homes (a new mapping; ``raw`` is untouched)."""
    legacy = {"circuit_breaker", "max_error_history", *_TOP_KEYS}
    if not legacy & raw.keys():
        return Translation(raw)
    out = copy.deepcopy(raw)
    problems: list[tuple[str, str]] = []
    notes: list[str] = []

    def place(old: str, value: Any, actor: str, path: tuple[str, ...]) -> None:
        targets = list(_nodes_running(out, actor))
        if not targets:
            problems.append((old, f"there is no {actor} in tree to apply it to"))
            return
        for where, node in targets:
            settings = node.setdefault("settings", {})
            if not isinstance(settings, dict):
                return  # the tree's own validation reports this
            new_key = f"{where}.settings.{'.'.join(path)}"
            _set(settings, path, value, old, new_key, problems=problems, notes=notes)

    breaker = out.pop("circuit_breaker", None)
    if breaker is not None:
        if not isinstance(breaker, dict):
            problems.append(("circuit_breaker", "must be a mapping"))
        else:
            for key, value in breaker.items():
                path = _BREAKER_KEYS.get(key)
                if path is None:
                    problems.append((f"circuit_breaker.{key}", "unknown key"))
                    continue
                place(f"circuit_breaker.{key}", value, BREAKER, path)
    for key, (actor, path) in _TOP_KEYS.items():
        if key in out:
            place(key, out.pop(key), actor, path)
    if "max_error_history" in out:
        runtime = out.setdefault("runtime", {})
        if isinstance(runtime, dict):
            _set(runtime, ("event_history",), out.pop("max_error_history"),
                 "max_error_history", "runtime.event_history", problems=problems, notes=notes)
    return Translation(out, problems, notes)


def _set(settings: dict[str, Any], path: tuple[str, ...], value: Any, old: str, new: str, *,
         problems: list[tuple[str, str]], notes: list[str]) -> None:
    here = settings
    for part in path[:-1]:
        nxt = here.setdefault(part, {})
        if not isinstance(nxt, dict):
            problems.append((new, "must be a mapping"))
            return
        here = nxt
    last = path[-1]
    if last in here and here[last] != value:
        problems.append((old, f"conflicts with {new} ({value!r} vs {here[last]!r}); "
                              "keep one of them"))
        return
    here[last] = value
    notes.append(f"{old} = {value!r} applied as {new}")


def _nodes_running(raw: dict[str, Any], actor: str) -> Iterator[tuple[str, dict[str, Any]]]:
    tree = raw.get("tree")
    if not isinstance(tree, dict):
        return
    stack: list[tuple[str, Any]] = [("tree", tree)]
    while stack:
        where, node = stack.pop()
        children = node.get("children") if isinstance(node, dict) else None
        if not isinstance(children, list):
            continue
        for i, child in enumerate(children):
            if not isinstance(child, dict):
                continue
            path = f"{where}.children[{i}]"
            if child.get("actor") == actor:
                yield path, child
            stack.append((path, child))
