"""Strategies named in the config (``evaluator.settings.strategies``), checked as
``botvisor check-config`` and ``botvisor run`` check them, in real subprocesses: a bad
entry is named down to its key, exit 2, no traceback. A strategy module outside the
trusted packages is not imported by check-config (its params are checked at run). A
distribution's ``botvisor.strategies`` entry point gives a strategy a short name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.strategies.template import strategy_source
from tests.support.bot_helpers import (
    REPO,
    node,
    redirect_state,
    settings,
    shipped_config,
    write_config,
)

EVALUATOR = "tree.children[5].children[2]"  # where config.yaml has the evaluator


def _cli(*args: str, path: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), path) if p)
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "supervisor.host.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def _config(tmp_path: Path, strategies: list[dict[str, Any]]) -> Path:
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    settings(raw, "evaluator")["strategies"] = strategies
    return write_config(raw, tmp_path / "config.yaml")


def test_the_shipped_config_names_the_evaluator_where_these_tests_look() -> None:
    raw = shipped_config()
    assert node(raw, "evaluator") is raw["tree"]["children"][5]["children"][2]
    assert [s["class"] for s in settings(raw, "evaluator")["strategies"]] == [
        "momentum", "mean_reversion"]


GOOD = {"class": "momentum"}

BAD = [
    pytest.param({"class": "no.such.module:Strategy"}, "strategies[1].class",
                 "cannot import 'no.such.module': No module named 'no'",
                 id="path-does-not-import"),
    pytest.param({"class": "no_such_module:Strategy"}, "strategies[1].class",
                 "is found when that folder is on PYTHONPATH", id="path-hint"),
    pytest.param({"class": "tests.strategies.scripted:NotAStrategy"}, "strategies[1].class",
                 "is not a Strategy class", id="not-a-strategy"),
    pytest.param({"class": "tests.strategies.scripted:NoSuchClass"}, "strategies[1].class",
                 "defines no 'NoSuchClass'", id="no-such-class"),
    pytest.param({"class": "nosuchname"}, "strategies[1].class",
                 "no strategy named 'nosuchname' (installed: mean_reversion, momentum",
                 id="unknown-short-name"),
    pytest.param({"class": "mean_reversion", "params": {"window": 1000}},
                 "strategies[1].params.window", "less than or equal to 300",
                 id="out-of-range"),
    pytest.param({"class": "mean_reversion", "params": {"windw": 10}},
                 "strategies[1].params.windw", "unknown key", id="unknown-param"),
    pytest.param({"class": "mean_reversion", "params": {"k": "wide"}},
                 "strategies[1].params.k", "valid number", id="wrong-type"),
    pytest.param({"class": "momentum", "params": {"lookback": 30}}, "",
                 "strategies[1] is named 'momentum', like strategies[0]", id="same-name"),
    pytest.param({"klass": "momentum"}, "strategies[1].klass", "unknown key",
                 id="unknown-key"),
]


@pytest.mark.parametrize(("entry", "key", "reason"), BAD)
def test_a_bad_strategy_entry_is_named_and_exits_2(
        tmp_path: Path, entry: dict[str, Any], key: str, reason: str) -> None:
    """As `botvisor run` sees it (it imports every strategy; check-config imports only the
    trusted packages', below)."""
    done = _cli("run", "--config", str(_config(tmp_path, [GOOD, entry])), "--duration", "1")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    where = f"  {EVALUATOR}.settings" + (f".{key}" if key else "") + ": "
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith(where)), "")
    assert reason in line, done.stderr
    assert not (tmp_path / "ledger.db").exists()  # refused before anything started


@pytest.mark.parametrize(("entry", "key", "reason"), [
    ({"class": "mean_reversion", "params": {"k": 99}}, "strategies[1].params.k",
     "Input should be less than or equal to 5"),
    ({"class": "nosuchname"}, "strategies[1].class", "no strategy named 'nosuchname'"),
    ({"class": "no.such.module:Strategy"}, "strategies[1].class",
     "cannot find module 'no.such.module' (a module in a folder of your own is found when "
     "that folder is on PYTHONPATH)"),
])
def test_check_config_names_a_bad_strategy_entry_and_exits_2(
        tmp_path: Path, entry: dict[str, Any], key: str, reason: str) -> None:
    done = _cli("check-config", str(_config(tmp_path, [GOOD, entry])))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert f"  {EVALUATOR}.settings.{key}: Value error, {reason}" in done.stderr \
        or f"  {EVALUATOR}.settings.{key}: {reason}" in done.stderr, done.stderr


UNTRUSTED = '''
from actors.strategies.api import Strategy, param

print("the module ran")


class Mine(Strategy):
    class Params(Strategy.Params):
        span: int = param(5, low=2, high=9)
'''


def test_check_config_does_not_run_a_strategy_outside_the_trusted_packages(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_strategies.py").write_text(UNTRUSTED, encoding="utf-8")
    path = _config(tmp_path, [GOOD, {"class": "my_strategies:Mine", "params": {"span": 50}}])
    checked = _cli("check-config", str(path), path=str(site))
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    assert "the module ran" not in checked.stdout + checked.stderr
    # `run` imports it, and its params are checked then
    ran = _cli("run", "--config", str(path), "--duration", "1", path=str(site))
    assert ran.returncode == 2, (ran.stdout, ran.stderr)
    assert f"{EVALUATOR}.settings.strategies[1].params.span: Input should be less" \
        in ran.stderr
    assert "Traceback" not in ran.stderr
    # a path that does not exist is found out without running anything
    missing = _config(tmp_path, [GOOD, {"class": "my_strategies:Yours"}])
    done = _cli("check-config", str(missing), path=str(site))
    assert done.returncode == 2 and "defines no 'Yours'" in done.stderr, done.stderr


def test_a_strategy_an_installed_distribution_registers_is_named_by_its_short_name(
        tmp_path: Path) -> None:
    """A distribution in ``site`` registers ``ema_cross`` in ``botvisor.strategies``: the
    list shows it, the config names it by that name, and its params are checked."""
    site = tmp_path / "site"
    info = site / "demo_strategies-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "ema_cross.py").write_text(strategy_source("ema_cross"), encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo_strategies\n"
                                   "Version: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[botvisor.strategies]\nema_cross = ema_cross:EmaCross\n", encoding="utf-8")
    listed = _cli("strategies", "--json", path=str(site))
    assert listed.returncode == 0, listed.stderr
    (mine,) = [s for s in json.loads(listed.stdout) if s["name"] == "ema_cross"]
    assert mine["class"] == "ema_cross:EmaCross"
    assert [p["name"] for p in mine["params"]] == ["period", "stop_pct"]

    good = _config(tmp_path, [GOOD, {"class": "ema_cross", "params": {"period": 10}}])
    assert _cli("check-config", str(good), path=str(site)).returncode == 0
    bad = _config(tmp_path, [GOOD, {"class": "ema_cross", "params": {"period": 1}}])
    ran = _cli("run", "--config", str(bad), "--duration", "1", path=str(site))
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    assert f"{EVALUATOR}.settings.strategies[1].params.period: Input should be greater " \
        "than or equal to 5" in ran.stderr
