"""The backtest's setup from a config (actors/backtest/tree.py): each core's settings are
the ones the tree's actor is built with, found by actor class (a subclass counts)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from actors.backtest.tree import TreeError, load_setup, setup_from_tree
from actors.execution.exit_rules import ExitRules
from actors.execution.exits import ExitsActor
from supervisor.host.config import load_config
from tests.support.bot_helpers import (
    node,
    redirect_state,
    settings,
    shipped_config,
    write_config,
)


def test_the_shipped_config_gives_its_actors_settings(tmp_path: Path) -> None:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "exits").update(stop_loss_pct=4.5, time_stop_seconds=7200)
    settings(raw, "exchange").update(fee_bps=7, slippage_bps=3)
    settings(raw, "scanner").update(top=3)
    setup = load_setup(write_config(raw, tmp_path / "config.yaml"))
    assert [spec.name for spec in setup.strategies] == ["momentum", "mean_reversion"]
    assert setup.exits == ExitRules(4.5, 6.0, 2.0, 1.5, 7200.0, 300.0)
    assert (setup.pricing.fee_bps, setup.pricing.slippage_bps) == (Decimal(7), Decimal(3))
    assert setup.ranking.top == 3
    assert setup.breaker.recovery_timeout == 120.0
    assert setup.starting_cash == Decimal(10000)
    assert setup.limits.max_open_positions == 4
    assert setup.handler is not None


class MyExits(ExitsActor):
    """An application's own exits actor: the backtest reads it as the exits actor."""


def test_a_subclass_of_an_actor_counts_and_a_missing_one_is_named(tmp_path: Path) -> None:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    node(raw, "exits")["actor"] = f"{__name__}:MyExits"
    settings(raw, "exits")["trailing_pct"] = 2.5
    _, spec = load_config(write_config(raw, tmp_path / "config.yaml"))
    assert setup_from_tree(spec).exits.trailing_pct == 2.5
    for group in raw["tree"]["children"]:
        if group.get("children"):
            group["children"] = [c for c in group["children"] if c["name"] != "exits"]
    settings(raw, "market")["subscribers"] = ["scanner"]
    _, spec = load_config(write_config(raw, tmp_path / "other.yaml"))
    with pytest.raises(TreeError, match=re.escape(
            "other.yaml: the tree has no actors.execution.exits:ExitsActor")):
        setup_from_tree(spec, "other.yaml")
