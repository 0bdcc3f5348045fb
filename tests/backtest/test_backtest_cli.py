"""``botvisor backtest`` as a user runs it (real subprocesses, real files): the table, the
``--json`` document (the same figures as the engine run in-process), the report, the
window, and bad input: exit 2, one line, no traceback, naming the thing at fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.backtest.data import load_steps
from actors.backtest.engine import run_backtest
from actors.backtest.metrics import summarize
from actors.backtest.table import to_json
from actors.backtest.tree import load_setup
from tests.support.backtest_data import (
    STEPS,
    T0,
    config_in,
    with_a_bad_candle,
    with_a_gap,
    write_data,
)
from tests.support.bot_helpers import REPO, settings
from tests.support.terminal import run_on_a_terminal


def _botvisor(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) if path is None else f"{REPO}{os.pathsep}{path}"
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "supervisor.host.cli", "backtest", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_it_prints_the_result_table(config: Path, data: Path) -> None:
    done = _botvisor("--config", str(config), "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar off a terminal
    for line in ("Backtest result", f"candles        {3 * STEPS} (0 bad, skipped)",
                 "Per symbol", "Per strategy", "breaker trips"):
        assert line in done.stdout


def test_json_has_the_engines_figures_and_the_report_is_written(
        config: Path, data: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    done = _botvisor("--config", str(config), "--data", str(data), "--json",
                     "--report", str(report))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    steps = load_steps(data, None, None)
    here = to_json(summarize(run_backtest(load_setup(config), steps.steps(),
                                          timeframe_s=steps.timeframe_s)))
    timings = {k: document.pop(k) for k in ("startup_s", "run_s", "candles_per_s")}
    assert document == here
    assert document["trades"] > 0 and document["candles"] == 3 * STEPS
    assert 0 < timings["startup_s"] < 60 and timings["candles_per_s"] > 0
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page and "AAA/USDT" in page


def test_from_and_until_bound_the_window_iso_or_epoch_seconds(config: Path,
                                                               data: Path) -> None:
    since, until = T0 + 600 * 60, T0 + 899 * 60  # 300 steps, both ends included
    for first, last in ((str(since), str(until)),
                        ("2026-01-01T10:00:00Z", "2026-01-01T14:59")):
        done = _botvisor("--config", str(config), "--data", str(data), "--json",
                         "--from", first, "--until", last)
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert (document["candles"], document["steps"]) == (900, 300)
        assert (document["from"], document["until"]) == (since, until)


def _fails(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("botvisor backtest: ")
    for part in parts:
        assert part in done.stderr, done.stderr


def test_a_strategy_path_that_does_not_import(tmp_path: Path, data: Path) -> None:
    path = config_in(tmp_path, lambda raw: settings(raw, "evaluator").update(
        strategies=[{"class": "no.such.module:Mine"}]))
    _fails(_botvisor("--config", str(path), "--data", str(data)),
           "strategies[0].class", "cannot import 'no.such.module'")


def test_params_out_of_range(tmp_path: Path, data: Path) -> None:
    path = config_in(tmp_path, lambda raw: settings(raw, "evaluator").update(
        strategies=[{"class": "momentum", "params": {"lookback": 1}}]))
    _fails(_botvisor("--config", str(path), "--data", str(data)),
           "strategies[0].params.lookback", "greater than or equal to 2")


def test_a_tree_without_the_exits_actor(tmp_path: Path, data: Path) -> None:
    def drop_exits(raw: dict[str, Any]) -> None:
        for group in raw["tree"]["children"]:
            kids = group.get("children")
            if kids:
                group["children"] = [k for k in kids if k["name"] != "exits"]
        settings(raw, "market")["subscribers"] = ["scanner"]  # nobody names it as a peer
    path = config_in(tmp_path, drop_exits)
    _fails(_botvisor("--config", str(path), "--data", str(data)),
           "the tree has no actors.execution.exits:ExitsActor")


BOOM = """
from actors.strategies.api import Strategy


class Boom(Strategy):
    name = "boom"

    def setup(self):
        self.seen = 0

    def on_candle(self, candle, view):
        self.seen += 1
        if self.seen == 5:
            raise ZeroDivisionError("the fifth candle")
        return None
"""


def test_a_strategy_failure_the_handler_escalates_stops_with_one_line(
        tmp_path: Path, data: Path) -> None:
    (tmp_path / "boomer.py").write_text(BOOM, encoding="utf-8")

    def escalate(raw: dict[str, Any]) -> None:
        raw["errors"]["ZeroDivisionError"] = {"severity": "critical", "directive": "escalate"}
        settings(raw, "evaluator").update(strategies=[{"class": "boomer:Boom"}])
    path = config_in(tmp_path, escalate)
    done = _botvisor("--config", str(path), "--data", str(data), path=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    for part in ("botvisor backtest: strategy boom on ", "raised ZeroDivisionError: the "
                 "fifth candle", "the error handler escalates"):
        assert part in done.stderr, done.stderr


def test_a_data_dir_with_no_csv(config: Path, tmp_path: Path) -> None:
    _fails(_botvisor("--config", str(config), "--data", str(tmp_path)),
           str(tmp_path), "has no *.csv file")


def test_a_bad_candle_names_its_file_and_row(config: Path, tmp_path: Path) -> None:
    directory = write_data(tmp_path / "data", 50)
    path = with_a_bad_candle(directory)
    _fails(_botvisor("--config", str(config), "--data", str(directory)),
           f"{path} row 7 (line 8)", "high_below_low")


def test_a_gap_names_its_file_and_row(config: Path, tmp_path: Path) -> None:
    directory = write_data(tmp_path / "data", 50)
    path = with_a_gap(directory)
    _fails(_botvisor("--config", str(config), "--data", str(directory)),
           f"{path} row 20 (line 21)", "gap", "120s after the row before")


def test_an_empty_window(config: Path, data: Path) -> None:
    _fails(_botvisor("--config", str(config), "--data", str(data), "--from", "2027-01-01"),
           "no candle in the window", "--from 2027-01-01T00:00:00Z")


@pytest.mark.parametrize("option", ["--from", "--until"])
def test_a_time_that_does_not_parse(config: Path, data: Path, option: str) -> None:
    _fails(_botvisor("--config", str(config), "--data", str(data), option, "yesterday"),
           f"{option} 'yesterday' is neither epoch seconds nor an ISO 8601")


def test_a_progress_bar_is_drawn_on_a_terminal(config: Path, data: Path) -> None:
    done, drawn = run_on_a_terminal([sys.executable, "-m", "supervisor.host.cli", "backtest",
                                     "--config", str(config), "--data", str(data), "--json"])
    assert done.returncode == 0
    assert json.loads(done.stdout)["candles"] == 3 * STEPS  # stdout stays the document
    assert b"backtest" in drawn and f"{3 * STEPS}/{3 * STEPS}".encode() in drawn
