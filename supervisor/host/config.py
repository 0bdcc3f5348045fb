"""Loading ``config.yaml``: typed models, one clear message per bad key, specs out.

Every key is validated; an error names the key's path (``tree.children[1].restart``) and
the reason. Children are named by import path (``package.module:Class``); an actor class
that declares a pydantic ``Settings`` model gets its ``settings`` validated at load time,
and every peer its settings name is checked against the tree
(:mod:`supervisor.host.wiring`), so ``botvisor check-config`` finds a bad actor setting
before anything starts. The work is split by job: reading the YAML
(:mod:`~supervisor.host.config_yaml`), the models (:mod:`~supervisor.host.config_models`),
imports (:mod:`~supervisor.host.config_imports`) and building the specs
(:mod:`~supervisor.host.config_build`); this module puts them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from supervisor.host.config_build import build_tree, deadlines, observers
from supervisor.host.config_errors import ConfigError, validation_problems
from supervisor.host.config_imports import (
    ACTOR_PACKAGES_GROUP,
    RUN_IMPORTS,
    Imports,
    trusted_packages,
)
from supervisor.host.config_models import (
    CONTROL_COMMANDS,
    MAX_NUMBER,
    BackoffModel,
    BotConfig,
    ControlModel,
    FallbackModel,
    HealthModel,
    IntensityModel,
    MetricsModel,
    NodeModel,
    RuleModel,
    RuntimeModel,
    TreeModel,
)
from supervisor.host.config_translators import apply_translators
from supervisor.host.config_yaml import MAX_DEPTH, MAX_VALUES, count_values, read_document
from supervisor.host.wiring import check_wiring
from supervisor.spec import SupervisorSpec

__all__ = [
    "ACTOR_PACKAGES_GROUP",
    "CONTROL_COMMANDS",
    "MAX_DEPTH",
    "MAX_NUMBER",
    "MAX_VALUES",
    "RUN_IMPORTS",
    "BackoffModel",
    "BotConfig",
    "ConfigError",
    "ControlModel",
    "FallbackModel",
    "HealthModel",
    "Imports",
    "IntensityModel",
    "MetricsModel",
    "NodeModel",
    "RuleModel",
    "RuntimeModel",
    "TreeModel",
    "build_tree",
    "load_config",
    "observers",
    "parse_config",
    "trusted_packages",
]


def load_config(path: str | Path, *, imports: Imports = RUN_IMPORTS
                ) -> tuple[BotConfig, SupervisorSpec]:
    """Read, validate and build; raises ConfigError naming every bad key.

    ``imports`` says which actor modules may be imported (all, for a run; see
    :class:`Imports` for ``check-config``).
    """
    source = str(path)
    raw = read_document(path)
    if raw is None:
        raise ConfigError(source, [("(file)", "is empty: a config needs at least "
                                              "tree.children")])
    config, spec = parse_config(raw, source, imports=imports)
    if not config.tree.children:  # a file, unlike a test's mapping, is meant to run a bot
        raise ConfigError(source, [("tree.children", "the tree has no actors")])
    return config, spec


def parse_config(raw: Any, source: str = "<config>", *, imports: Imports = RUN_IMPORTS
                 ) -> tuple[BotConfig, SupervisorSpec]:
    if not isinstance(raw, dict):
        raise ConfigError(source, [("(top level)", "must be a mapping of keys to values")])
    if count_values(raw) > MAX_VALUES:
        raise ConfigError(source, [("(file)", f"holds more than {MAX_VALUES} values once its "
                                              "aliases are expanded (or an alias refers to "
                                              "itself)")])
    # Keys starting with "x-" hold YAML anchors shared by several sections (as in compose files).
    raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    translated = apply_translators(raw)  # older formats, via installed plug-ins
    if translated.problems:
        raise ConfigError(source, translated.problems)
    raw = translated.raw
    try:
        config = BotConfig.model_validate(raw, context={"imports": imports})
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc)) from None
    except RecursionError:
        raise ConfigError(source, [("(file)", "nested too deeply")]) from None
    config._notes.extend(translated.notes)
    problems: list[tuple[str, str]] = []
    spec = build_tree(config, problems, imports=imports, notes=config._notes)
    if not problems:
        problems.extend(check_wiring(spec))
    if not problems:
        problems.extend(config.chaos.problems([config.runtime.name, *spec.all_ids()],
                                              deadlines(spec)))
    if problems:
        raise ConfigError(source, problems)
    return config, spec

