"""Strategies named in a config: an import path (``pkg.module:Class``) or a short name of
the entry-point group ``botvisor.strategies``; :class:`StrategyEntry` validates one entry
(the class, its params against the class's ``Params``), :func:`resolve_entries` turns
them into the :class:`~actors.strategies.runner.StrategySpec` the runner takes.

``botvisor check-config`` runs the code of trusted packages only: an entry whose module
is outside them is found without being imported, and its params are checked when the bot
runs (the same rule as for actor classes).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from actors.strategies.api import Strategy
from actors.strategies.runner import StrategySpec
from supervisor.host.config_imports import import_class, locate_class

__all__ = ["BUILTINS", "GROUP", "StrategyEntry", "installed", "resolve", "resolve_entries"]

GROUP = "botvisor.strategies"

# the built-ins, known by these names also when the entry points are not installed
BUILTINS = {"momentum": "actors.strategies.builtin:MomentumBreakout",
            "mean_reversion": "actors.strategies.builtin:MeanReversion"}


def installed() -> dict[str, str]:
    """The short names of the built-ins and of what installed distributions register
    (``botvisor.strategies``), with their import paths, by name."""
    names = dict(BUILTINS)
    names.update({ep.name: ep.value.strip() for ep in entry_points(group=GROUP)})
    return dict(sorted(names.items()))


def _names(info: ValidationInfo) -> dict[str, str] | None:
    """:func:`installed`, read once per validation (kept in its context, when it has one:
    a scan of the entry points costs about 10 ms, and each entry asks several times)."""
    context = info.context
    if not isinstance(context, dict):
        return None
    names = context.get(GROUP)
    if names is None:
        names = context[GROUP] = installed()
    return names


def _path_of(ref: str, names: dict[str, str] | None = None) -> str:
    if ":" in ref:
        return ref
    paths = installed() if names is None else names
    if ref not in paths:
        known = ", ".join(sorted(paths)) or "none"
        raise ValueError(f"no strategy named {ref!r} (installed: {known}; or give an "
                         "import path like 'package.module:Class')")
    return paths[ref]


def resolve(ref: str, names: dict[str, str] | None = None) -> type[Strategy]:
    """The Strategy subclass ``ref`` names (an import path or an installed short name,
    looked up in ``names``, default :func:`installed`); ValueError says what is wrong."""
    cls: type[Strategy] = import_class(_path_of(ref, names), Strategy)
    return cls


def _may_import(path: str, info: ValidationInfo) -> bool:
    imports = (info.context or {}).get("imports")
    return imports is None or bool(imports.may_import(path))


class StrategyEntry(BaseModel):
    """One entry of ``strategies``: ``class`` (an import path or a short name), an
    optional ``name`` (default: the class's ``name``, else its class name; unique, it is
    in signal ids), ``params`` (checked against the class's ``Params``), and ``symbols``
    (the symbols it runs on; default: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    class_: str = Field(alias="class", min_length=1)
    name: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: tuple[str, ...] | None = None

    @field_validator("class_")
    @classmethod
    def _known_class(cls, value: str, info: ValidationInfo) -> str:
        names = _names(info)
        path = _path_of(value, names)
        if _may_import(path, info):
            resolve(value, names)
        else:
            locate_class(path)
        return value

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        ref = info.data.get("class_")
        names = _names(info)
        if ref is None or not _may_import(_path_of(ref, names), info):
            return value  # the class is at fault (reported), or checked when it runs
        strategy = resolve(ref, names)
        strategy.Params.model_validate(value)  # its errors are located under params
        return value

    def default_name(self) -> str:
        """The entry's name in signal ids."""
        if self.name:
            return self.name
        if ":" not in self.class_:
            return self.class_
        strategy = resolve(self.class_)  # an import path: no look-up by name
        return strategy.name or strategy.__name__


def resolve_entries(entries: tuple[StrategyEntry, ...]) -> tuple[StrategySpec, ...]:
    """The runner's specs for validated ``entries`` (their classes imported)."""
    specs = []
    names = installed() if any(":" not in e.class_ for e in entries) else None
    for entry in entries:
        strategy = resolve(entry.class_, names)
        specs.append(StrategySpec(
            entry.default_name(), strategy, strategy.Params.model_validate(entry.params),
            None if entry.symbols is None else frozenset(entry.symbols)))
    return tuple(specs)
