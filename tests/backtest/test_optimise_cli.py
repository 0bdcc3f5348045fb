"""``botvisor optimise`` as a user runs it (real subprocesses, real files, real process
pools): the table, the walk-forward windows, determinism across ``--jobs``, the held-out
figures equal to a plain ``botvisor backtest`` of the best params, the CSV report, and bad
input: exit 2, one line, no traceback, naming the thing at fault."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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

N = 5  # trials of a search whose rows, not its sampler, are tested
TRIALS = ("--trials", str(N), "--seed", "7")
MINUTE = 60


def _run(*args: str, prelude: str = "",
         path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) if path is None else f"{REPO}{os.pathsep}{path}"
    env.pop("COLUMNS", None)
    code = (f"import sys\n{prelude}\nfrom supervisor.host.cli import main\n"
            "raise SystemExit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _optimise(*args: str, prelude: str = "",
              path: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run("optimise", *args, prelude=prelude, path=path)


def _document(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_it_prints_the_best_trials(config: Path, data: Path) -> None:
    done = _optimise("--config", str(config), "--data", str(data), *TRIALS, "--top", "3")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar off a terminal
    for line in ("Optimisation result", "objective   sharpe (maximize), seed 7",
                 f"trials      {N} (", "Best 3 trials, best first", "momentum.lookback=",
                 "The best trial's params", "  momentum: {lookback: "):
        assert line in done.stdout, done.stdout


def test_the_same_seed_gives_the_same_trials_whatever_the_jobs(config: Path,
                                                               data: Path) -> None:
    runs = [_document(_optimise("--config", str(config), "--data", str(data), "--json",
                                "--trials", "12", "--seed", "11", "--jobs", jobs))
            for jobs in ("1", "2")]
    for document in runs:
        document.pop("run_s")
    assert [d.pop("jobs") for d in runs] == [1, 2]
    assert runs[0] == runs[1]
    assert len(runs[0]["all"]) == 12 and runs[0]["best"]
    # (12 trials: past TPE's 10 random start-up trials, so the sampler's own choices are
    # compared too); another seed's first trials are other params
    other = _document(_optimise("--config", str(config), "--data", str(data), "--json",
                                "--trials", str(N), "--seed", "12"))
    assert [t["params"] for t in other["all"]] != [t["params"] for t in runs[0]["all"][:N]]


def test_the_split_holds_out_later_candles_it_never_trained_on(config: Path,
                                                                data: Path) -> None:
    document = _document(_optimise("--config", str(config), "--data", str(data), "--json",
                                   *TRIALS, "--split", "0.6"))
    train, test = document["train"], document["test"]
    cut = int(0.6 * STEPS)
    assert (train["from"], train["until"]) == (T0, T0 + (cut - 1) * MINUTE)
    assert (test["from"], test["until"]) == (T0 + cut * MINUTE, T0 + (STEPS - 1) * MINUTE)
    assert (train["candles"], test["candles"]) == (3 * cut, 3 * (STEPS - cut))
    for best in document["best"]:
        assert best["train"]["figures"]["until"] < best["test"]["figures"]["from"]
        assert best["test"]["figures"]["candles"] == test["candles"]


def test_explicit_windows_and_an_overlap_refused(config: Path, data: Path) -> None:
    document = _document(_optimise(
        "--config", str(config), "--data", str(data), "--json", *TRIALS,
        "--train-from", "2026-01-01T01:00Z", "--train-until", "2026-01-01T12:59Z",
        "--test-from", "2026-01-01T13:00Z", "--test-until", str(T0 + 20 * 3600)))
    assert (document["train"]["from"], document["train"]["until"]) == (
        T0 + 3600, T0 + 13 * 3600 - MINUTE)
    assert (document["test"]["from"], document["test"]["until"]) == (
        T0 + 13 * 3600, T0 + 20 * 3600)
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--train-until", "2026-01-01T12:00Z", "--test-from", "2026-01-01T12:00Z"),
           "held-out window overlaps the training one", "--test-from", "--train-until")
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--split", "0.5", "--test-from", "2026-01-01T12:00Z"),
           "give --split", "not both")
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS, "--split", "1.5"),
           "--split 1.5 must be a fraction between 0 and 1")


def test_the_best_held_out_figures_are_a_plain_backtest_of_its_params(
        config: Path, data: Path, tmp_path: Path) -> None:
    document = _document(_optimise("--config", str(config), "--data", str(data), "--json",
                                   *TRIALS, "--objective", "total_return",
                                   "--fix", "mean_reversion.window"))
    best = document["best"][0]
    assert "mean_reversion.window" not in best["params"]
    assert document["fixed"] == {"mean_reversion.window": 30}  # the config's value
    by_strategy: dict[str, dict[str, Any]] = {}
    for key, value in best["params"].items():
        strategy, name = key.split(".")
        by_strategy.setdefault(strategy, {})[name] = value

    def use_best(raw: dict[str, Any]) -> None:
        for entry in settings(raw, "evaluator")["strategies"]:
            entry["params"].update(by_strategy[entry["class"]])

    tuned = config_in(tmp_path, use_best)
    test = document["test"]
    plain = _document(_run("backtest", "--config", str(tuned), "--data", str(data), "--json",
                           "--from", str(test["from"]), "--until", str(test["until"])))
    for key in ("startup_s", "run_s", "candles_per_s"):
        plain.pop(key)
    assert best["test"]["figures"] == plain
    assert best["test"]["objective"] == plain["total_return"]
    assert plain["trades"] > 0


def test_undefined_objectives_rank_last_and_are_not_reported(config: Path,
                                                              data: Path) -> None:
    document = _document(_optimise("--config", str(config), "--data", str(data), "--json",
                                   *TRIALS, "--min-trades", "100000"))
    assert document["best"] == []
    assert all(t["objective"] is None and "under --min-trades" in t["note"]
               for t in document["all"])
    done = _optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--min-trades", "100000")
    assert "no trial had a defined objective" in done.stdout


def test_the_report_has_every_trial(config: Path, data: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "trials.csv"
    done = _optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert f"report: {report}" in done.stdout
    rows = list(csv.DictReader(report.read_text(encoding="utf-8").splitlines()))
    assert [int(r["trial"]) for r in rows] == list(range(N))
    assert {"objective", "trades", "momentum.lookback", "mean_reversion.k"} <= set(rows[0])


def _fails(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("botvisor optimise: "), \
        done.stderr
    for part in parts:
        assert part in done.stderr, done.stderr


def test_a_strategy_path_that_does_not_import(tmp_path: Path, data: Path) -> None:
    path = config_in(tmp_path, lambda raw: settings(raw, "evaluator").update(
        strategies=[{"class": "no.such.module:Mine"}]))
    _fails(_optimise("--config", str(path), "--data", str(data), *TRIALS),
           "strategies[0].class", "cannot import 'no.such.module'")


def test_params_out_of_range(tmp_path: Path, data: Path) -> None:
    path = config_in(tmp_path, lambda raw: settings(raw, "evaluator").update(
        strategies=[{"class": "momentum", "params": {"lookback": 1}}]))
    _fails(_optimise("--config", str(path), "--data", str(data), *TRIALS),
           "strategies[0].params.lookback", "greater than or equal to 2")


def test_a_gap_in_the_data(config: Path, tmp_path: Path) -> None:
    directory = write_data(tmp_path / "data", 50)
    path = with_a_gap(directory)
    _fails(_optimise("--config", str(config), "--data", str(directory), *TRIALS),
           f"{path} row 20 (line 21)", "gap")


def test_a_bad_candle(config: Path, tmp_path: Path) -> None:
    directory = write_data(tmp_path / "data", 50)
    path = with_a_bad_candle(directory)
    _fails(_optimise("--config", str(config), "--data", str(directory), *TRIALS),
           f"{path} row 7 (line 8)", "high_below_low")


def test_an_empty_window(config: Path, data: Path) -> None:
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--train-until", "2026-01-01T12:00Z", "--test-from", "2027-01-01"),
           "the held-out window:", "no candle in the window")
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--from", "2027-01-01"),
           "the span to split:", "no candle in the window")


def test_an_unknown_objective_lists_the_choices(config: Path, data: Path) -> None:
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--objective", "luck"),
           "--objective 'luck' is not a figure to optimise", "sharpe", "max_drawdown")


def test_an_unknown_fixed_parameter_lists_the_searched_ones(config: Path,
                                                            data: Path) -> None:
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--fix", "momentum.lookback,momentum.nope"),
           "--fix momentum.nope: no such searched parameter", "momentum.atr_stop")


def test_a_time_that_does_not_parse(config: Path, data: Path) -> None:
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     "--train-until", "noon", "--test-from", "2026-01-01T12:00Z"),
           "--train-until 'noon' is neither epoch seconds nor an ISO 8601")


def test_without_optuna_it_says_what_to_install(config: Path, data: Path) -> None:
    # optuna made unimportable in that process (None in sys.modules: ImportError)
    _fails(_optimise("--config", str(config), "--data", str(data), *TRIALS,
                     prelude="sys.modules['optuna'] = None"),
           "optuna is not installed", "pip install 'botvisor[optimise]'")


def test_a_progress_bar_is_drawn_on_a_terminal(config: Path, data: Path) -> None:
    done, drawn = run_on_a_terminal([sys.executable, "-m", "supervisor.host.cli", "optimise",
                                     "--config", str(config), "--data", str(data), "--json",
                                     *TRIALS])
    assert done.returncode == 0
    assert len(json.loads(done.stdout)["all"]) == N  # stdout stays the document
    assert b"optimise" in drawn and f"{N}/{N}".encode() in drawn


def test_a_new_strategy_from_the_docs_is_optimised_in_worker_processes(
        data: Path, tmp_path: Path) -> None:
    # as a new user would: new-strategy writes the docs' example, the config names it by
    # its import path, and the spawned workers import it from PYTHONPATH as the CLI does
    code = tmp_path / "mine"
    code.mkdir()
    made = _run("new-strategy", "ema_cross", "--dir", str(code))
    assert made.returncode == 0, made.stderr
    config = config_in(tmp_path, lambda raw: settings(raw, "evaluator").update(
        strategies=[{"class": "ema_cross:EmaCross", "params": {"period": 10}}]))
    runs = [_document(_optimise("--config", str(config), "--data", str(data), "--json",
                                "--trials", "4", "--seed", "3", "--jobs", jobs,
                                path=code))
            for jobs in ("1", "2")]
    for document in runs:
        document.pop("run_s")
        document.pop("jobs")
    assert runs[0] == runs[1]
    assert runs[0]["space"] == {
        "ema_cross.period": {"type": "int", "low": 5, "high": 200, "step": 1, "log": False},
        "ema_cross.stop_pct": {"type": "float", "low": 0.2, "high": 10.0, "step": None,
                               "log": True}}
    assert runs[0]["best"][0]["test"]["figures"]["strategies"] == ["ema_cross"]
