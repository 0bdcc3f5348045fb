"""The optimiser's pure parts: walk-forward windows, the objective table, the search space
read from the strategies' declared ranges, params applied to a setup; and one in-process
search whose every trial is the engine's own backtest of its params."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError, model_validator

from actors.backtest.data import load_steps
from actors.backtest.engine import run_backtest
from actors.backtest.metrics import Summary, summarize
from actors.backtest.optimise import (
    BATCH,
    Evaluator,
    Job,
    OptimiseError,
    run_search,
    search_space,
    with_params,
)
from actors.backtest.optimise_objective import OBJECTIVES, UnknownObjective, objective
from actors.backtest.optimise_windows import (
    Window,
    WindowError,
    explicit_windows,
    split_window,
)
from actors.backtest.setup import BacktestSetup
from actors.backtest.table import to_json
from actors.backtest.tree import load_setup
from actors.strategies.api import Candle, Strategy, View, param
from actors.strategies.builtin import MeanReversion, MomentumBreakout
from actors.strategies.runner import StrategySpec
from tests.support.backtest_data import T0, write_data

M = 60


@pytest.mark.unit
def test_a_split_trains_on_the_first_fraction_of_the_candle_times() -> None:
    train, test = split_window(T0, T0 + 9 * M, M, 0.7)  # ten times
    assert train == Window(T0, T0 + 6 * M) and test == Window(T0 + 7 * M, T0 + 9 * M)
    assert split_window(T0, T0 + 9 * M, M, 0.99)[1] == Window(T0 + 9 * M, T0 + 9 * M)
    with pytest.raises(WindowError, match="leaves the training window empty"):
        split_window(T0, T0 + 9 * M, M, 0.05)
    for fraction in (0.0, 1.0, -0.5, math.nan):
        with pytest.raises(WindowError, match="must be a fraction between 0 and 1"):
            split_window(T0, T0 + 9 * M, M, fraction)


@pytest.mark.unit
def test_explicit_windows_must_not_overlap() -> None:
    assert explicit_windows(None, T0, T0 + M, None) == (Window(None, T0),
                                                       Window(T0 + M, None))
    with pytest.raises(WindowError, match="--test-from must be after --train-until"):
        explicit_windows(None, T0, T0, None)  # both bounds inclusive: one shared candle
    with pytest.raises(WindowError, match="--train-until is needed"):
        explicit_windows(T0, None, T0 + M, None)
    with pytest.raises(WindowError, match="--test-from is needed"):
        explicit_windows(None, T0, None, T0 + M)
    with pytest.raises(WindowError, match="--train-until is before --train-from"):
        explicit_windows(T0 + M, T0, T0 + 2 * M, None)
    with pytest.raises(WindowError, match="--test-until is before --test-from"):
        explicit_windows(None, T0, T0 + 2 * M, T0 + M)


def _summary(**figures: object) -> Summary:
    base: dict[str, object] = dict(
        trades=0, wins=0, losses=0, win_rate=None, total_pnl=Decimal(0), fees=Decimal(0),
        gross_profit=Decimal(0), gross_loss=Decimal(0), profit_factor=None,
        start_cash=Decimal(1000), final_equity=1000.0, total_return=0.0, cagr=None,
        max_drawdown=0.0, max_drawdown_duration_s=0.0, sharpe=None, sortino=None,
        exposure=0.0, breaker_trips=0, steps=1, timeframe_s=60.0, window=(0.0, 0.0),
        candles=1, bad_candles=0, symbols=(), strategies=(), by_symbol=(), by_strategy=())
    base.update(figures)
    return Summary(**base)  # type: ignore[arg-type]


@pytest.mark.unit
def test_each_objective_is_a_summary_figure_with_a_direction() -> None:
    summary = _summary()
    for goal in OBJECTIVES.values():
        assert hasattr(summary, goal.name)
        assert goal.direction == ("minimize" if goal.name.startswith("max_drawdown")
                                  else "maximize")
    assert objective("total_pnl").value(_summary(total_pnl=Decimal("12.5"))) == 12.5
    with pytest.raises(UnknownObjective, match=r"'luck' is not a figure.*sharpe, sortino"):
        objective("luck")


@pytest.mark.unit
def test_an_undefined_figure_is_none_and_ranks_last_either_way() -> None:
    assert objective("sharpe").value(_summary(sharpe=None)) is None
    assert objective("profit_factor").value(_summary(profit_factor=math.inf)) is None
    assert objective("sharpe").value(_summary(sharpe=math.nan)) is None
    for name, values, best_first in (("sharpe", [1.0, None, 3.0], [3.0, 1.0, None]),
                                     ("max_drawdown", [0.2, None, 0.1], [0.1, 0.2, None])):
        goal = objective(name)
        assert sorted(values, key=goal.rank_key) == best_first


@pytest.fixture(scope="module")
def setup(config: Path) -> BacktestSetup:
    return load_setup(config)


def test_the_space_is_every_declared_range_under_the_strategys_name(
        setup: BacktestSetup) -> None:
    space, fixed = search_space(setup)
    names = [spec.name for spec in setup.strategies]
    assert names == ["momentum", "mean_reversion"]
    declared = [f"momentum.{n}" for n in MomentumBreakout.Params.model_fields] + \
        [f"mean_reversion.{n}" for n in MeanReversion.Params.model_fields]
    assert [d.key for d in space] == declared and fixed == {}
    space, fixed = search_space(setup, {"momentum.lookback", "mean_reversion.k"})
    assert "momentum.lookback" not in [d.key for d in space]
    assert fixed == {"momentum.lookback": 20, "mean_reversion.k": 2.0}  # the config's
    with pytest.raises(OptimiseError, match=r"--fix momentum\.nope: no such"):
        search_space(setup, {"momentum.nope"})
    with pytest.raises(OptimiseError, match="nothing to search"):
        search_space(setup, set(declared))
    with pytest.raises(OptimiseError, match="nothing to search"):
        search_space(replace(setup, strategies=()))


def test_params_apply_to_their_strategy_only_and_are_validated(
        setup: BacktestSetup) -> None:
    tuned = with_params(setup, {"momentum.lookback": 55, "mean_reversion.k": 3.5})
    momentum, reversion = tuned.strategies
    assert momentum.params.model_dump() == {"lookback": 55, "exit_lookback": 10,
                                            "atr_stop": 2.0}
    assert reversion.params.model_dump()["k"] == 3.5
    assert setup.strategies[0].params.model_dump()["lookback"] == 20  # untouched
    with pytest.raises(ValidationError, match="lookback"):
        with_params(setup, {"momentum.lookback": 1})
    # a configured name may hold a dot: "mo" must not take "mo.mentum.lookback"
    dotted = replace(setup, strategies=(replace(setup.strategies[0], name="mo.mentum"),
                                        replace(setup.strategies[1], name="mo")))
    space, _ = search_space(dotted)
    assert "mo.mentum.lookback" in [d.key for d in space]
    first, second = with_params(dotted, {"mo.mentum.lookback": 33, "mo.k": 4.0}).strategies
    assert first.params.model_dump()["lookback"] == 33
    assert second.params.model_dump()["k"] == 4.0


def test_every_trial_is_the_engines_backtest_of_its_params(
        config: Path, setup: BacktestSetup, tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", 400)
    train, test = Window(T0, T0 + 299 * M), Window(T0 + 300 * M, None)
    job = Job(str(config), str(data), train, test, "total_return", 0)
    train_data, test_data = (load_steps(data, w.since, w.until) for w in (train, test))
    space, _ = search_space(setup)
    done: list[int] = []
    search = run_search(job, Evaluator(job, setup, train_data, test_data), space,
                        trials=BATCH + 3, jobs=1, seed=5, top=2, progress=done.append)
    assert done == [BATCH, BATCH + 3]  # told after each batch
    assert [t.number for t in search.trials] == list(range(BATCH + 3))
    for trial in search.trials[:3]:
        summary = summarize(run_backtest(with_params(setup, trial.params),
                                         train_data.steps(), timeframe_s=M))
        assert trial.train.figures == to_json(summary)
        assert trial.train.value == summary.total_return
    values = [t.train.value for t in search.trials]
    assert [trial.train.value for trial, _ in search.best] == sorted(
        (v for v in values if v is not None), reverse=True)[:2]
    for trial, held_out in search.best:
        assert held_out.figures is not None
        assert held_out.figures["from"] == T0 + 300 * M
        assert held_out.figures == to_json(summarize(run_backtest(
            with_params(setup, trial.params), test_data.steps(), timeframe_s=M)))


class _Bounded(Strategy):
    """Never trades; its Params refuse ``fast >= slow`` (a rule across two ranges)."""

    name = "bounded"

    class Params(Strategy.Params):
        fast: int = param(5, low=2, high=50, step=1)
        slow: int = param(20, low=3, high=60, step=1)

        @model_validator(mode="after")
        def _fast_under_slow(self) -> _Bounded.Params:
            if self.fast >= self.slow:
                raise ValueError("fast must be under slow")
            return self

    def on_candle(self, candle: Candle, view: View) -> None:
        return None


class _Fragile(Strategy):
    """Raises a MemoryError (escalated by default) on its ``at``-th candle."""

    name = "fragile"

    class Params(Strategy.Params):
        at: int = param(5, low=1, high=50)

    params: Params

    def setup(self) -> None:
        self.seen = 0

    def on_candle(self, candle: Candle, view: View) -> None:
        self.seen += 1
        if self.seen == self.params.at:
            raise MemoryError("out of memory, in a test")


def test_a_strategy_failure_the_handler_escalates_is_a_failed_trial_that_says_why(
        config: Path, setup: BacktestSetup, tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", 60)
    job = Job(str(config), str(data), Window(None, T0 + 29 * M), Window(T0 + 30 * M, None),
              "total_return", 0)
    mine = replace(setup, strategies=(StrategySpec("fragile", _Fragile, _Fragile.Params()),))
    train, test = (load_steps(data, w.since, w.until) for w in (job.train, job.test))
    failed = Evaluator(job, mine, train, test).evaluate({"fragile.at": 3}, "train")
    assert (failed.value, failed.figures) == (None, None)
    assert failed.note is not None and failed.note.startswith("strategy fragile on ")
    assert "raised MemoryError: out of memory, in a test" in failed.note


def test_params_a_strategy_refuses_make_a_failed_trial_that_says_why(
        config: Path, setup: BacktestSetup, tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", 60)
    job = Job(str(config), str(data), Window(None, T0 + 29 * M), Window(T0 + 30 * M, None),
              "total_return", 0)
    mine = replace(setup, strategies=(StrategySpec("bounded", _Bounded, _Bounded.Params()),))
    train, test = (load_steps(data, w.since, w.until) for w in (job.train, job.test))
    evaluator = Evaluator(job, mine, train, test)
    refused = evaluator.evaluate({"bounded.fast": 30, "bounded.slow": 10}, "train")
    assert (refused.value, refused.figures) == (None, None)
    assert refused.note == "params refused: Value error, fast must be under slow"
    taken = evaluator.evaluate({"bounded.fast": 3, "bounded.slow": 10}, "train")
    assert taken.value == 0.0 and taken.figures is not None and taken.figures["trades"] == 0
    space, _ = search_space(mine)
    search = run_search(job, evaluator, space, trials=12, jobs=1, seed=1, top=3)
    notes = {t.train.note for t in search.trials if t.train.value is None}
    assert notes and all(n is not None and "fast must be under slow" in n for n in notes)
    assert all(t.params["bounded.fast"] < t.params["bounded.slow"] for t, _ in search.best)
