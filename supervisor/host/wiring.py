"""Wiring: every peer an actor's settings name is in the tree, and is of the right kind.

Runs on built specs, before any actor starts. A worker built with settings has a
:class:`Configured` factory (its class and validated settings); each settings field marked
with :class:`~supervisor.peers.Peer` names one peer (``str``), an optional one (``None``
is fine) or several (a tuple). A name must be a worker of the tree whose class (and its
fallback's) can be that peer, as the classes' ``accepts``/``publishes`` declare; a class
that declares nothing is taken on its name. The host reads the markers only: it knows no
message type.

After those checks, a settings object may judge its peers' settings itself, with two
optional methods the host only calls (the knowledge stays in the actor):

* ``check_peers(self, peers: Mapping[str, PeerView]) -> list[tuple[str, str]]``: the
  tree's refusals, each ``(key, reason)`` with ``key`` a field of these settings; they are
  reported like the checks above (``tree > exchange > settings.market: ...``);
* ``peer_warnings(self, peers)`` (same shape): what :func:`wiring_warnings` returns for
  ``botvisor run`` to log at WARNING on every start (and ``check-config`` to print).

``peers`` maps each marked field's key (``market``, ``subscribers[1]``) to a
:class:`PeerView` of the worker it names: its tree path and settings, and its fallback's.
A worker whose named peers fail the checks above is not asked; a hook that raises is a
problem naming the settings, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from supervisor.host.logs import printable
from supervisor.peers import Peer
from supervisor.spec import ChildSpec, SupervisorSpec

__all__ = ["Configured", "PeerView", "check_wiring", "wiring_warnings"]


@dataclass(frozen=True, slots=True, eq=False)
class Configured:
    """An actor factory that keeps what it builds from: ``actor(settings)``."""

    actor: type
    settings: Any

    def __call__(self) -> Any:
        return self.actor(self.settings)


@dataclass(frozen=True, slots=True)
class PeerView:
    """One peer as a ``check_peers`` hook sees it: its name, its place in the tree, the
    settings it is built with (None when they cannot be told: built without validated
    settings), and the same of its fallback, which takes its place after failed starts."""

    name: str
    path: str  # "tree > pipeline > market"
    settings: Any
    fallback: PeerView | None = None

    def incarnations(self) -> tuple[PeerView, ...]:
        """This view, then its fallback's: every actor that can stand in this place."""
        return (self,) if self.fallback is None else (self, *self.fallback.incarnations())


@dataclass(frozen=True, slots=True)
class _Worker:
    path: str  # "tree > pipeline > evaluator"
    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class _Tree:
    workers: dict[str, _Worker]
    supervisors: set[str]

    @classmethod
    def of(cls, spec: SupervisorSpec) -> _Tree:
        tree = cls({}, set())
        for worker in _walk(spec, "tree"):
            if worker.spec.supervisor is not None:
                tree.supervisors.add(worker.spec.id)
            else:
                tree.workers[worker.spec.id] = worker
        return tree

    def configured(self) -> Iterator[tuple[str, Any]]:
        """``(key prefix, settings)`` of every worker's (and fallback's) settings."""
        for worker in self.workers.values():
            factories = [("", worker.spec.factory)]
            if worker.spec.fallback is not None:
                factories.append(("fallback.", worker.spec.fallback.factory))
            for prefix, factory in factories:
                if isinstance(factory, Configured):
                    yield f"{worker.path} > {prefix}settings.", factory.settings

    def view(self, name: str) -> PeerView | None:
        worker = self.workers.get(name)
        if worker is None:
            return None
        fallback = None
        if worker.spec.fallback is not None:
            fallback = PeerView(name, f"{worker.path} (fallback)",
                                _settings_of(worker.spec.fallback.factory))
        return PeerView(name, worker.path, _settings_of(worker.spec.factory), fallback)


def check_wiring(spec: SupervisorSpec) -> list[tuple[str, str]]:
    """``(key path, reason)`` for every peer named by a worker's settings that is not in
    the tree, is a supervisor, or cannot be that peer, then for every refusal of a
    settings' ``check_peers``; empty when the wiring is sound."""
    tree = _Tree.of(spec)
    problems: list[tuple[str, str]] = []
    for where, settings in tree.configured():
        refused = [(where + key, reason) for key, name, peer in _peers(settings)
                   if (reason := _refusal(name, peer, tree.workers, tree.supervisors))
                   is not None]
        problems.extend(refused or _ask(settings, "check_peers", where, tree))
    return problems


def wiring_warnings(spec: SupervisorSpec) -> list[tuple[str, str]]:
    """``(key path, warning)`` from every settings' ``peer_warnings``, for a tree that
    :func:`check_wiring` passed (peers it cannot find are left out of the views)."""
    tree = _Tree.of(spec)
    warnings: list[tuple[str, str]] = []
    for where, settings in tree.configured():
        warnings.extend((printable(key), printable(warning, 500))  # bound for a log line
                        for key, warning in _ask(settings, "peer_warnings", where, tree))
    return warnings


def _ask(settings: Any, hook_name: str, where: str, tree: _Tree) -> list[tuple[str, str]]:
    """What the settings' hook says of its peers' views, its keys under ``where``."""
    hook = getattr(settings, hook_name, None)
    if not callable(hook):
        return []
    views: dict[str, PeerView] = {}
    for key, name, _peer in _peers(settings):
        view = tree.view(name)
        if view is not None:
            views[key] = view
    failed = f"{type(settings).__qualname__}.{hook_name} failed"
    try:
        found = hook(views)
    except Exception as exc:  # the actor's bug: named, no traceback
        return [(where.rstrip("."), f"{failed}: {type(exc).__name__}: {exc}")]
    if not isinstance(found, list | tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) for s in p)
            for p in found):
        return [(where.rstrip("."), f"{failed}: it returned {printable(found)}, not a list "
                                    "of (key, reason) pairs")]
    return [(where + key, reason) for key, reason in found]


def _settings_of(factory: Any) -> Any:
    return factory.settings if isinstance(factory, Configured) else None


def _walk(spec: SupervisorSpec, path: str) -> Iterator[_Worker]:
    for child in spec.children:
        here = f"{path} > {child.id}"
        yield _Worker(here, child)
        if child.supervisor is not None:
            yield from _walk(child.supervisor, here)


def _peers(settings: Any) -> Iterator[tuple[str, str, Peer]]:
    """``(key, peer name, marker)`` for each name a settings object's marked fields hold."""
    fields = getattr(type(settings), "model_fields", None)
    if not isinstance(fields, dict):
        return
    for key, info in fields.items():
        for peer in (m for m in getattr(info, "metadata", ()) if isinstance(m, Peer)):
            value = getattr(settings, key, None)
            if isinstance(value, str):
                yield key, value, peer
            elif isinstance(value, tuple | list):
                for i, name in enumerate(value):
                    if isinstance(name, str):
                        yield f"{key}[{i}]", name, peer


def _refusal(name: str, peer: Peer, workers: dict[str, _Worker],
             supervisors: set[str]) -> str | None:
    must = f"(it must {peer.describe()})"
    if name in supervisors:
        return f"{printable(name)!r} is a supervisor, not an actor {must}"
    worker = workers.get(name)
    if worker is None:
        return f"no actor named {printable(name)!r} in the tree {must}"
    kinds = [(f"{printable(name)!r} is", worker.spec.factory)]
    if worker.spec.fallback is not None:
        kinds.append((f"the fallback of {printable(name)!r} is", worker.spec.fallback.factory))
    for label, factory in kinds:
        actor = _actor_class(factory)
        if actor is None:
            continue
        refusal = peer.refusal(actor)
        if refusal is not None:
            return f"{label} {actor.__module__}:{actor.__qualname__}, which {refusal}"
    return None


def _actor_class(factory: Any) -> type | None:
    """The class a factory builds, when it can be told without calling it."""
    if isinstance(factory, Configured):
        return factory.actor
    if isinstance(factory, type):
        return factory
    return None
