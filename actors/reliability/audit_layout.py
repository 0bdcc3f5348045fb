"""Where a run's state is: the files an audit reads, found through the run's config.

Owns :class:`StateLayout` and :func:`find_layout` (the ledger's settings and path, the paper
exchange's and the breaker's databases, the breaker's probe count, the state directory's
lock, and each source with its class, settings and file; relative paths under a base
directory, as ``botvisor run`` resolves them), and :func:`running_holder`, the live
process a lock file names. Raises :class:`AuditInputError` when the config is unusable.
Reads the config only; opens no state file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from actors.portfolio.positions import PositionActor
from actors.portfolio.sources import SourceActor, SourceSettings
from actors.reliability.audit_report import AuditInputError
from actors.venues.paper_exchange import PaperExchange

__all__ = ["StateLayout", "find_layout", "running_holder"]

_BREAKER_CLASS = "actors.risk.breaker:BreakerActor"


@dataclass(frozen=True)
class StateLayout:
    """The state files of one run (and what the audit needs to know of their actors)."""

    ledger: PositionActor.Settings
    ledger_path: Path
    exchange: Path | None  # None: no paper exchange (a live venue keeps its own record)
    breaker: Path | None
    probes: int  # exposure-increasing orders a HALF_OPEN stretch lets through
    lock: Path | None  # the state directory's lock file (runtime.state_dir), if configured
    sources: dict[str, tuple[type[SourceActor], SourceSettings, Path]]


def find_layout(config_path: Path, base: Path) -> StateLayout:
    """The state files of the run ``config_path`` configures (relative paths under ``base``)."""
    from supervisor.host.config import ConfigError, NodeModel, load_config

    try:
        config, _spec = load_config(config_path)
    except ConfigError as exc:
        raise AuditInputError(str(exc)) from None
    nodes: dict[str, NodeModel] = {}

    def walk(children: list[NodeModel]) -> None:
        for child in children:
            nodes[child.name] = child
            walk(child.children or [])

    walk(config.tree.children)

    def resolve(path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else base / p

    def cls_of(node: NodeModel) -> type[Any] | None:
        if not node.actor or ":" not in node.actor:
            return None
        module, _, name = node.actor.partition(":")
        found = getattr(import_module(module), name, None)
        return found if isinstance(found, type) else None

    ledger: PositionActor.Settings | None = None
    exchange = breaker = None
    probes = 1
    for node in nodes.values():
        cls = cls_of(node)
        if cls is None:
            continue
        if issubclass(cls, PositionActor):
            ledger = PositionActor.Settings.model_validate(node.settings)
        elif issubclass(cls, PaperExchange):
            exchange = resolve(PaperExchange.Settings.model_validate(node.settings).database)
        elif node.actor == _BREAKER_CLASS or cls.__name__ == "BreakerActor":
            breaker = resolve(str(node.settings.get("database", "state/breaker.db")))
            probes = int(node.settings.get("half_open_max_calls", 1))
    if ledger is None:
        raise AuditInputError(f"{config_path}: the tree has no position actor (no ledger)")
    sources: dict[str, tuple[type[SourceActor], SourceSettings, Path]] = {}
    for name in ledger.sources:
        found = nodes.get(name)
        cls = cls_of(found) if found is not None else None
        if found is None or cls is None or not issubclass(cls, SourceActor):
            raise AuditInputError(f"{config_path}: source {name!r} is not a source actor")
        src = SourceSettings.model_validate(found.settings)
        sources[name] = (cls, src, resolve(src.path))
    state_dir = getattr(config.runtime, "state_dir", None)
    lock = resolve(state_dir) / "botvisor.lock" if isinstance(state_dir, str) else None
    return StateLayout(ledger, resolve(ledger.database), exchange, breaker, probes, lock, sources)


def running_holder(lock: Path | None) -> int | None:
    """The pid the lock file names, if that process exists. The lock itself is never
    taken: even a shared lock for a moment could make a bot starting then refuse to."""
    if lock is None:
        return None
    try:
        pid = int(lock.read_text(encoding="utf-8").split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid
