"""Building the tree's specs from a validated config, and the observer it names.

Each child becomes a ChildSpec; an actor class that declares a pydantic ``Settings`` model
gets its ``settings`` validated here (a :class:`~supervisor.host.wiring.Configured`
factory keeps both, for the wiring check). Every problem is appended with its key path;
what could not be checked without importing goes to the notes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from supervisor.actor import SupervisedActor
from supervisor.backoff import Backoff
from supervisor.error_handler import ErrorHandler
from supervisor.host.config_errors import validation_problems
from supervisor.host.config_imports import RUN_IMPORTS, Imports, import_class, locate_class
from supervisor.host.config_models import (
    BackoffModel,
    BotConfig,
    IntensityModel,
    NodeModel,
    RuntimeModel,
)
from supervisor.host.logs import printable
from supervisor.host.session import SessionService
from supervisor.host.wiring import Configured
from supervisor.spec import (
    ActorFactory,
    ChildSpec,
    Fallback,
    Intensity,
    RestartType,
    Strategy,
    SupervisorSpec,
)

__all__ = ["build_tree", "deadlines", "observers"]


def observers(runtime: RuntimeModel, **options: Any) -> list[SessionService]:
    """The observer service (none when ``runtime.observer`` is unset), built with
    ``options`` (``report``: the --report path or None)."""
    if runtime.observer is None:
        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            logging.getLogger("botvisor").warning(
                "runtime.observer is not set: ignoring the %s option", ", ".join(given))
        return []
    service: type[SessionService] = import_class(runtime.observer, SessionService)
    return [service(**options)]


def _check_observer(runtime: RuntimeModel, imports: Imports,
                    problems: list[tuple[str, str]]) -> None:
    if runtime.observer is None:
        return
    try:
        if imports.may_import(runtime.observer):
            import_class(runtime.observer, SessionService)
        else:
            locate_class(runtime.observer)
    except ValueError as exc:
        problems.append(("runtime.observer", str(exc)))


def build_tree(config: BotConfig, problems: list[tuple[str, str]], *,
               imports: Imports = RUN_IMPORTS, notes: list[str] | None = None
               ) -> SupervisorSpec:
    """The root's SupervisorSpec; every problem found is appended to ``problems`` (and
    what could not be checked without importing, to ``notes``)."""
    tree = config.tree
    _check_observer(config.runtime, imports, problems)
    handler = config.error_handler()
    seen: dict[str, str] = {config.runtime.name: "runtime.name"}
    _check_names(tree.children, "tree.children", seen, problems)
    build = _Build(handler, problems, imports, notes if notes is not None else [])
    children = tuple(
        c for i, node in enumerate(tree.children)
        if (c := _child(node, f"tree.children[{i}]", build)) is not None
    )
    spec = SupervisorSpec(
        strategy=Strategy(tree.strategy),
        intensity=Intensity(tree.intensity.max_restarts, tree.intensity.within_seconds),
        backoff=Backoff(**tree.backoff.model_dump()),
        children=children if not problems else (),
        error_handler=handler,
    )
    return spec


@dataclass(frozen=True, slots=True)
class _Build:
    """What building one tree's specs shares: the error handler, where problems and notes
    go, and which modules may be imported."""

    handler: ErrorHandler
    problems: list[tuple[str, str]]
    imports: Imports
    notes: list[str]


def _check_names(
    nodes: list[NodeModel], where: str, seen: dict[str, str], problems: list[tuple[str, str]]
) -> None:
    for i, node in enumerate(nodes):
        key = f"{where}[{i}].name"
        if node.name in seen:
            problems.append((key, f"{node.name!r} is already used at {seen[node.name]}"))
        else:
            seen[node.name] = key
        if node.children:
            _check_names(node.children, f"{where}[{i}].children", seen, problems)


def _child(node: NodeModel, where: str, build: _Build) -> ChildSpec | None:
    problems = build.problems
    is_sup = node.children is not None
    if is_sup == (node.actor is not None):
        problems.append((where, "needs exactly one of 'actor' (a worker) or 'children' "
                                "(a supervisor)"))
        return None
    if not is_sup:
        for key in ("strategy", "intensity", "backoff"):
            if getattr(node, key) is not None:
                problems.append((f"{where}.{key}", "only a supervisor (with 'children') "
                                                   "takes this key"))
        factory = _factory(node.actor or "", node.settings, f"{where}", build)
        fallback = None
        if node.fallback is not None:
            fb = node.fallback
            fb_factory = _factory(fb.actor, fb.settings, f"{where}.fallback", build)
            if fb_factory is not None:
                fallback = Fallback(fb_factory, fb.after, fb.retry_primary_after,
                                    fb.description or fb.actor)
        if node.urgent and node.thread is None:
            problems.append((f"{where}.urgent", "urgent needs a shared thread (thread: NAME)"))
            return None
        if factory is None:
            return None
        return _spec(where, problems, lambda: ChildSpec(
            id=node.name,
            factory=factory,
            restart=RestartType(node.restart),
            shutdown=node.shutdown,
            linger=node.linger,
            start_timeout=node.start_timeout,
            handler_deadline=node.handler_deadline,
            mailbox_limit=node.mailbox_limit,
            fallback=fallback,
            drain_on_stop=node.drain_on_stop,
            thread=node.thread,
            urgent=node.urgent,
            settings=dict(node.settings),
        ))
    if node.fallback is not None:
        problems.append((f"{where}.fallback", "a supervisor cannot have a fallback"))
    if node.thread is not None:
        problems.append((f"{where}.thread", "a supervisor runs on its own thread"))
    if node.urgent:
        problems.append((f"{where}.urgent", "a supervisor runs on its own thread"))
    kids = tuple(
        c for i, sub in enumerate(node.children or [])
        if (c := _child(sub, f"{where}.children[{i}]", build)) is not None
    )
    if problems:
        return None  # a supervisor's spec checks its children again: nothing more to say
    intensity = node.intensity or IntensityModel()
    backoff = node.backoff or BackoffModel()
    return _spec(where, problems, lambda: ChildSpec(
        id=node.name,
        supervisor=SupervisorSpec(
            strategy=Strategy(node.strategy or "one_for_one"),
            intensity=Intensity(intensity.max_restarts, intensity.within_seconds),
            backoff=Backoff(**backoff.model_dump()),
            children=kids,
            error_handler=build.handler,
        ),
        restart=RestartType(node.restart),
        shutdown=node.shutdown,
        start_timeout=node.start_timeout,
    ))


def _spec(where: str, problems: list[tuple[str, str]],
          make: Callable[[], ChildSpec]) -> ChildSpec | None:
    """``make()``, with a spec's own refusal (ValueError) as a problem at ``where``."""
    try:
        return make()
    except ValueError as exc:
        problems.append((where, str(exc)))
        return None


def _factory(path: str, settings: dict[str, Any], where: str, build: _Build
             ) -> ActorFactory | None:
    problems = build.problems
    if not build.imports.may_import(path):
        try:
            locate_class(path)
        except ValueError as exc:
            problems.append((f"{where}.actor", str(exc)))
            return None
        build.notes.append(f"{where}.actor: {printable(path)} is outside the trusted "
                           "packages, so it was not imported; its settings are checked "
                           "when it runs")
        return _not_imported(path)
    try:
        cls: type[SupervisedActor] = import_class(path, SupervisedActor)
    except ValueError as exc:
        problems.append((f"{where}.actor", str(exc)))
        return None
    settings_model = getattr(cls, "Settings", None)
    if isinstance(settings_model, type) and issubclass(settings_model, BaseModel):
        try:
            validated = settings_model.model_validate(settings, context={"imports": build.imports})
        except ValidationError as exc:
            problems.extend(validation_problems(exc, prefix=f"{where}.settings."))
            return None
        except RecursionError:
            problems.append((f"{where}.settings", "nested too deeply"))
            return None
        except Exception as exc:  # a Settings validator's own bug
            problems.append((f"{where}.settings", f"could not be checked: "
                                                  f"{type(exc).__name__}: {exc}"))
            return None
        return Configured(cls, validated)
    if settings:
        problems.append((f"{where}.settings", f"{path} takes no settings"))
        return None
    return cls


def _not_imported(path: str) -> ActorFactory:
    def factory() -> SupervisedActor:
        raise RuntimeError(f"{path} was only located by check-config, not imported")
    return factory


def deadlines(spec: SupervisorSpec) -> dict[str, float | None]:
    """Every worker's handler deadline, by name (for the chaos section's checks)."""
    out: dict[str, float | None] = {}
    for child in spec.children:
        if child.supervisor is not None:
            out.update(deadlines(child.supervisor))
        else:
            out[child.id] = child.handler_deadline
    return out
