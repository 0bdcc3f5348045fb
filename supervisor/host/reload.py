"""Reloading the config of a running tree (SIGHUP, ``botvisor reload``).

What can change live does: a worker's ``settings`` (and its fallback's), by restarting the
worker with them as a requested restart (not counted against restart intensity);
``runtime.log_level`` and ``runtime.log_format``, by redoing the log handler;
``runtime.ask_timeout``, for every ask from then on. Everything else (adding, removing or
reordering children, strategies, intensity, backoff, restart types, timeouts, error rules,
the root's name) is named, key by key, as needing a restart of the process. A new config
that does not validate changes nothing: the old one keeps running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.host.config import BotConfig, NodeModel, load_config
from supervisor.host.logs import setup_logging
from supervisor.host.secrets import secrets_of
from supervisor.spec import ChildSpec, SupervisorSpec

if TYPE_CHECKING:
    from supervisor.host.session import RunSession

log = logging.getLogger("botvisor")

__all__ = ["ConfigReloader", "ReloadPlan", "plan_reload"]

_LIVE_RUNTIME_KEYS = ("log_level", "log_format", "ask_timeout")


@dataclass(frozen=True)
class ReloadPlan:
    """What a new config changes: applied live, or waiting for a restart."""

    settings: tuple[str, ...]  # workers whose settings changed (restarted with them)
    runtime_keys: tuple[str, ...]  # runtime.* keys applied live
    needs_restart: tuple[str, ...]  # key paths that only a restart applies


def plan_reload(old: BotConfig, new: BotConfig) -> ReloadPlan:
    """Compare two configs: which changes can be applied live and which cannot."""
    needs: list[str] = []
    live_runtime: list[str] = []
    for key, before in old.runtime.model_dump().items():
        if getattr(new.runtime, key) == before:
            continue
        (live_runtime if key in _LIVE_RUNTIME_KEYS else needs).append(f"runtime.{key}")
    if old.errors != new.errors:
        needs.append("errors")
    for section in type(old).model_fields:  # metrics, control, and any later section
        if section not in ("runtime", "errors", "tree") and \
                getattr(old, section) != getattr(new, section):
            needs.append(section)
    root_old = old.tree.model_dump(exclude={"children"})
    root_new = new.tree.model_dump(exclude={"children"})
    needs.extend(f"tree.{k}" for k in root_old if root_old[k] != root_new[k])
    settings: list[str] = []
    _compare(old.tree.children, new.tree.children, "tree.children", settings, needs)
    return ReloadPlan(tuple(settings), tuple(live_runtime), tuple(needs))


def _compare(old: list[NodeModel], new: list[NodeModel], where: str,
             settings: list[str], needs: list[str]) -> None:
    if [n.name for n in old] != [n.name for n in new]:
        needs.append(f"{where} (children added, removed or reordered: "
                     f"{[n.name for n in old]} -> {[n.name for n in new]})")
        return
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        here = f"{where}[{i}]"
        shape_a = a.model_dump(exclude={"settings", "children", "fallback"})
        shape_b = b.model_dump(exclude={"settings", "children", "fallback"})
        needs.extend(f"{here}.{k}" for k in shape_a if shape_a[k] != shape_b[k])
        fb_a = a.fallback.model_dump(exclude={"settings"}) if a.fallback else None
        fb_b = b.fallback.model_dump(exclude={"settings"}) if b.fallback else None
        if fb_a != fb_b:
            needs.append(f"{here}.fallback")
        if a.children is not None and b.children is not None:
            _compare(a.children, b.children, f"{here}.children", settings, needs)
        elif a.actor is not None and b.actor is not None and shape_a == shape_b:
            fb_settings_a = a.fallback.settings if a.fallback else None
            fb_settings_b = b.fallback.settings if b.fallback else None
            if a.settings != b.settings or fb_settings_a != fb_settings_b:
                settings.append(a.name)


def _find(spec: SupervisorSpec, name: str) -> ChildSpec | None:
    for child in spec.children:
        if child.id == name:
            return child
        if child.supervisor is not None and (found := _find(child.supervisor, name)):
            return found
    return None


class ConfigReloader:
    """Owns nothing but the config's path: reads it again and applies what can change live."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, session: RunSession) -> tuple[list[str], list[str]]:
        config, spec = load_config(self.path)  # ConfigError: nothing changes
        plan = plan_reload(session.config, config)
        runtime = session.runtime
        applied: list[str] = []
        failed: list[str] = []
        if plan.runtime_keys:
            setup_logging(config.runtime.log_level, config.runtime.log_format,
                          filters=(secrets_of(runtime),))  # masked from its first record
            runtime.ask_timeout = config.runtime.ask_timeout
            applied.extend(plan.runtime_keys)
        for name in plan.settings:
            child = _find(spec, name)
            if child is None or not runtime.has(name):
                continue
            try:
                runtime.replace_child(child)
            except Exception as exc:
                failed.append(f"reload failed for {name}: its new settings did not start "
                              f"({exc}); it is being restarted by its supervisor")
                continue
            applied.append(f"{name}.settings")
        if not plan.needs_restart:
            session.config, session.spec = config, spec
        else:
            # Keep the old config as the reference, with the parts applied live merged in,
            # so the next reload does not restart the same actors again.
            session.config = _merged(session.config, config, plan)
        for item in applied:
            log.info("reload: applied %s", item)
        for item in plan.needs_restart:
            log.warning("reload: %s changed; it takes effect after a restart", item)
        return applied, [*plan.needs_restart, *failed]


def _merged(old: BotConfig, new: BotConfig, plan: ReloadPlan) -> BotConfig:
    runtime = old.runtime.model_copy(
        update={k.split(".", 1)[1]: getattr(new.runtime, k.split(".", 1)[1])
                for k in plan.runtime_keys}
    )
    changed = set(plan.settings)
    fresh = {n.name: n for n in _walk(new.tree.children)}

    def node(n: NodeModel) -> NodeModel:
        update: dict[str, Any] = {}
        if n.name in changed:
            update["settings"] = fresh[n.name].settings
            update["fallback"] = fresh[n.name].fallback
        if n.children is not None:
            update["children"] = [node(c) for c in n.children]
        return n.model_copy(update=update) if update else n

    tree = old.tree.model_copy(update={"children": [node(c) for c in old.tree.children]})
    merged = old.model_copy(update={"runtime": runtime, "tree": tree})
    merged._notes.extend(old.notes)
    return merged


def _walk(nodes: list[NodeModel]) -> list[NodeModel]:
    out: list[NodeModel] = []
    for n in nodes:
        out.append(n)
        if n.children:
            out.extend(_walk(n.children))
    return out
