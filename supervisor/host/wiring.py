"""Wiring: every peer an actor's settings name is in the tree, and is of the right kind.

Runs on built specs, before any actor starts. A worker built with settings has a
:class:`Configured` factory (its class and validated settings); each settings field marked
with :class:`~supervisor.peers.Peer` names one peer (``str``), an optional one (``None``
is fine) or several (a tuple). A name must be a worker of the tree whose class (and its
fallback's) can be that peer, as the classes' ``accepts``/``publishes`` declare; a class
that declares nothing is taken on its name. The host reads the markers only: it knows no
message type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from supervisor.host.logs import printable
from supervisor.peers import Peer
from supervisor.spec import ChildSpec, SupervisorSpec

__all__ = ["Configured", "check_wiring"]


@dataclass(frozen=True, slots=True, eq=False)
class Configured:
    """An actor factory that keeps what it builds from: ``actor(settings)``."""

    actor: type
    settings: Any

    def __call__(self) -> Any:
        return self.actor(self.settings)


@dataclass(frozen=True, slots=True)
class _Worker:
    path: str  # "tree > pipeline > evaluator"
    spec: ChildSpec


def check_wiring(spec: SupervisorSpec) -> list[tuple[str, str]]:
    """``(key path, reason)`` for every peer named by a worker's settings that is not in
    the tree, is a supervisor, or cannot be that peer; empty when the wiring is sound."""
    workers: dict[str, _Worker] = {}
    supervisors: set[str] = set()
    for worker in _walk(spec, "tree"):
        if worker.spec.supervisor is not None:
            supervisors.add(worker.spec.id)
        else:
            workers[worker.spec.id] = worker
    problems: list[tuple[str, str]] = []
    for worker in workers.values():
        factories = [("", worker.spec.factory)]
        if worker.spec.fallback is not None:
            factories.append(("fallback.", worker.spec.fallback.factory))
        for prefix, factory in factories:
            if not isinstance(factory, Configured):
                continue
            for key, name, peer in _peers(factory.settings):
                where = f"{worker.path} > {prefix}settings.{key}"
                reason = _refusal(name, peer, workers, supervisors)
                if reason is not None:
                    problems.append((where, reason))
    return problems


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
