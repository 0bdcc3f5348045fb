"""A :class:`~actors.backtest.setup.BacktestSetup` from a config file's tree, as the actors
of ``botvisor run`` would build their cores from it.

The config is parsed by the host's own code (:func:`supervisor.host.config.load_config`,
every key validated, a bad one a ``ConfigError``); the children are then found by actor
class (a subclass counts), by name, without this package importing any actor module: the
scanner, the evaluator, the executor, the exits actor, the breaker, the position actor and
the paper exchange. A tree without one of them, or with two, is a :class:`TreeError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.backtest.setup import BacktestSetup
from actors.market.ranking import RankingRules
from actors.risk.settings import BreakerRules
from actors.strategies.loading import resolve_entries
from supervisor.host.config import load_config
from supervisor.host.wiring import Configured
from supervisor.spec import SupervisorSpec

__all__ = ["ROLES", "TreeError", "load_setup", "setup_from_tree"]

# what the backtest reads from each actor of the tree, by the actor's class
ROLES = {
    "scanner": "actors.market.scanner:ScannerActor",
    "evaluator": "actors.strategies.evaluator:EvaluatorActor",
    "executor": "actors.execution.executor:ExecutorActor",
    "exits": "actors.execution.exits:ExitsActor",
    "breaker": "actors.risk.breaker:BreakerActor",
    "positions": "actors.portfolio.positions:PositionActor",
    "exchange": "actors.venues.paper_exchange:PaperExchange",
}


class TreeError(ValueError):
    """The tree lacks (or doubles) an actor the backtest builds a core from."""


def _workers(spec: SupervisorSpec, path: str) -> Iterator[tuple[str, type, Any]]:
    for child in spec.children:
        where = f"{path} > {child.id}" if path else child.id
        if child.supervisor is not None:
            yield from _workers(child.supervisor, where)
        elif isinstance(child.factory, Configured):
            yield where, child.factory.actor, child.factory.settings


def _role(cls: type) -> str | None:
    names = {f"{c.__module__}:{c.__qualname__}" for c in cls.__mro__}
    for role, name in ROLES.items():
        if name in names:
            return role
    return None


def setup_from_tree(spec: SupervisorSpec, source: str = "<config>") -> BacktestSetup:
    """The cores' settings from the validated tree ``spec`` (see the module docstring)."""
    found: dict[str, tuple[str, Any]] = {}
    for where, cls, settings in _workers(spec, ""):
        role = _role(cls)
        if role is None:
            continue
        if role in found:
            raise TreeError(f"{source}: the tree has two {ROLES[role]} ({found[role][0]} and "
                            f"{where}); a backtest runs one")
        found[role] = (where, settings)
    missing = [ROLES[r] for r in ROLES if r not in found]
    if missing:
        raise TreeError(f"{source}: the tree has no {', '.join(missing)}; a backtest builds "
                        "its cores from the settings of each")
    scanner, evaluator = found["scanner"][1], found["evaluator"][1]
    executor, exits = found["executor"][1], found["exits"][1]
    breaker, positions, exchange = (found["breaker"][1], found["positions"][1],
                                    found["exchange"][1])
    ranking = scanner if isinstance(scanner, RankingRules) else \
        RankingRules.model_validate(scanner.model_dump(include=set(RankingRules.model_fields)))
    rules = breaker if isinstance(breaker, BreakerRules) else \
        BreakerRules.model_validate(breaker.model_dump(include=set(BreakerRules.model_fields)))
    return BacktestSetup(
        ranking=ranking,
        strategies=resolve_entries(evaluator.strategies),
        entry_timeout_bars=evaluator.entry_timeout_bars,
        limits=executor.limits(),
        exits=exits.rules(),
        breaker=rules,
        pricing=exchange.pricing(),
        starting_cash=positions.starting_cash,
        allow_short=positions.allow_short,
    )


def load_setup(path: str | Path) -> BacktestSetup:
    """Read ``path`` as ``botvisor run`` does and build the setup; a ``ConfigError`` or a
    :class:`TreeError` says what is wrong. The evaluator's strategy failures are classified
    by the config's error handler, as the evaluator child's are."""
    config, spec = load_config(path)
    setup = setup_from_tree(spec, str(path))
    return BacktestSetup(setup.ranking, setup.strategies, setup.entry_timeout_bars,
                         setup.limits, setup.exits, setup.breaker, setup.pricing,
                         setup.starting_cash, setup.allow_short, config.error_handler())
