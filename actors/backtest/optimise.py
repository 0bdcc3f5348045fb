"""The parameter search of ``botvisor optimise``: optuna asks, the real backtest answers.

:func:`search_space` reads each configured strategy's declared ranges
(:func:`~actors.strategies.api.search_space`) as dimensions named ``STRATEGY.PARAM``; the
ones a trader fixes keep the config's value. :func:`run_search` asks optuna's seeded
TPE sampler for trials in batches of :data:`BATCH` (a size that does not depend on
``jobs``), evaluates a batch on the training window (in a process pool of ``jobs``
workers, each loading the config and the candles once), and tells the results in trial
order, so that one seed gives the same trials whatever ``jobs`` is. The best ``top`` are
then run on the held-out window. Every evaluation is :func:`with_params` of the setup
``botvisor backtest`` loads, through the same ``run_backtest`` and ``summarize``.

optuna is imported only here, lazily: without it, :class:`OptunaMissing`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from actors.backtest.data import HistoricalData, load_steps
from actors.backtest.engine import run_backtest
from actors.backtest.metrics import summarize
from actors.backtest.optimise_objective import Objective, objective
from actors.backtest.optimise_windows import Window
from actors.backtest.setup import BacktestSetup
from actors.backtest.table import to_json
from actors.backtest.tree import load_setup
from actors.strategies.api import ParamRange
from actors.strategies.api import search_space as declared_ranges
from actors.strategies.runner import escalation

__all__ = [
    "BATCH",
    "Dimension",
    "Evaluator",
    "Job",
    "OptimiseError",
    "OptunaMissing",
    "Outcome",
    "Search",
    "Trial",
    "check_optuna",
    "run_search",
    "search_space",
    "with_params",
]

BATCH = 8  # trials asked before any is told: fixed, so the trials do not depend on --jobs
INSTALL = "pip install 'botvisor[optimise]'"


class OptimiseError(ValueError):
    """A search that cannot run; the message names the option or parameter at fault."""


class OptunaMissing(OptimiseError):
    """optuna, of the optional extra ``optimise``, is not installed."""


@dataclass(frozen=True, slots=True)
class Dimension:
    """One searched parameter: ``key`` is ``STRATEGY.PARAM`` (the config's strategy name)."""

    key: str
    strategy: str
    range: ParamRange


def search_space(setup: BacktestSetup,
                 fixed: Collection[str] = ()) -> tuple[tuple[Dimension, ...], dict[str, Any]]:
    """The dimensions to search, and the fixed parameters with the config's values; an
    unknown name in ``fixed``, or nothing left to search, is an OptimiseError."""
    dimensions: list[Dimension] = []
    for spec in setup.strategies:
        for name, declared in declared_ranges(spec.strategy).items():
            dimensions.append(Dimension(f"{spec.name}.{name}", spec.name, declared))
    keys = [d.key for d in dimensions]
    unknown = sorted(set(fixed) - set(keys))
    if unknown:
        raise OptimiseError(f"--fix {', '.join(unknown)}: no such searched parameter; the "
                            f"configured strategies have: {', '.join(keys) or 'none'}")
    values = {spec.name: spec.params.model_dump() for spec in setup.strategies}
    kept = {d.key: values[d.strategy][d.range.name] for d in dimensions if d.key in fixed}
    searched = tuple(d for d in dimensions if d.key not in fixed)
    if not searched:
        raise OptimiseError("nothing to search: the configured strategies declare no "
                            "parameter range (param(low=, high=)), or --fix fixes them all")
    return searched, kept


def with_params(setup: BacktestSetup, values: Mapping[str, Any]) -> BacktestSetup:
    """``setup`` with the strategies' params overridden by ``values`` (``STRATEGY.PARAM``
    keys), each strategy's Params validated again (a ValidationError when refused)."""
    specs = []
    for spec in setup.strategies:
        # a strategy's name may hold dots, a parameter's (an identifier) never does
        own = {k.rpartition(".")[2]: v for k, v in values.items()
               if k.rpartition(".")[0] == spec.name}
        specs.append(replace(spec, params=spec.strategy.Params.model_validate(
            {**spec.params.model_dump(), **own})) if own else spec)
    return replace(setup, strategies=tuple(specs))


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker needs to evaluate trials (small, sent to each process)."""

    config: str
    data: str
    train: Window
    test: Window
    objective: str
    min_trades: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """One evaluation: the objective (None: undefined), the result table as ``--json``
    prints it (None when the params were refused), and why it is undefined."""

    value: float | None
    figures: dict[str, Any] | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Trial:
    """Trial ``number``'s params and its outcome on the training window."""

    number: int
    params: dict[str, Any]
    train: Outcome


@dataclass(frozen=True, slots=True)
class Search:
    """Every trial in order, and the best ones (best first) with their held-out outcome."""

    trials: tuple[Trial, ...]
    best: tuple[tuple[Trial, Outcome], ...]


class Evaluator:
    """The setup and both windows' candles, loaded once; evaluates params on a window
    (``"train"`` or ``"test"``) with the real engine."""

    def __init__(self, job: Job, setup: BacktestSetup, train: HistoricalData,
                 test: HistoricalData) -> None:
        self.setup = setup
        self.windows = {"train": train, "test": test}
        self.objective: Objective = objective(job.objective)
        self.min_trades = job.min_trades

    @classmethod
    def load(cls, job: Job) -> Evaluator:
        """Read the config and the candles of both windows (as ``botvisor backtest``)."""
        return cls(job, load_setup(job.config),
                   load_steps(job.data, job.train.since, job.train.until),
                   load_steps(job.data, job.test.since, job.test.until))

    def evaluate(self, params: Mapping[str, Any], window: str) -> Outcome:
        try:
            setup = with_params(self.setup, params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return Outcome(None, None, f"params refused: {where + ': ' if where else ''}"
                                       f"{first['msg']}")
        data: HistoricalData = self.windows[window]
        try:
            result = run_backtest(setup, data.steps(), timeframe_s=data.timeframe_s)
        except Exception as exc:
            said = escalation(exc)
            if said is None:
                raise
            return Outcome(None, None, f"{said}: the run stops there")
        summary = summarize(result)
        value = self.objective.value(summary)
        note = None if value is not None else f"{self.objective.name} is undefined"
        if window == "train" and summary.trades < self.min_trades:
            value, note = None, f"{summary.trades} trade(s), under --min-trades"
        return Outcome(value, to_json(summary), note)


@functools.cache
def _worker(job: Job) -> Evaluator:
    """A worker process's evaluator: its initializer loads it, every trial reuses it (the
    one per-process cache a process pool needs; the parent never calls it)."""
    return Evaluator.load(job)


def _evaluate_in_worker(job: Job, params: dict[str, Any], window: str) -> Outcome:
    return _worker(job).evaluate(params, window)


Evaluate = Callable[[Sequence[tuple[dict[str, Any], str]]], list[Outcome]]


@contextmanager
def _evaluations(job: Job, jobs: int, local: Evaluator) -> Iterator[Evaluate]:
    """Evaluate a batch of (params, window) in order: here with one job, else in a pool of
    ``jobs`` spawned processes (a fork of a process with threads may deadlock)."""
    if jobs <= 1:
        yield lambda batch: [local.evaluate(params, window) for params, window in batch]
        return
    import multiprocessing

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker, initargs=(job,)) as pool:
        def run(batch: Sequence[tuple[dict[str, Any], str]]) -> list[Outcome]:
            futures = [pool.submit(_evaluate_in_worker, job, params, window)
                       for params, window in batch]
            try:
                return [future.result() for future in futures]
            except BrokenProcessPool:
                raise OptimiseError("a worker process died (out of memory?); try fewer "
                                    "--jobs") from None
        try:
            yield run
        except BaseException:  # interrupted, or failed: drop the trials not started
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def check_optuna() -> Any:
    """The optuna module; OptunaMissing says how to install it."""
    try:
        import optuna
    except ImportError:
        raise OptunaMissing(f"optuna is not installed: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _suggest(trial: Any, dimension: Dimension) -> Any:
    r = dimension.range
    assert r.low is not None and r.high is not None  # a searched range has both
    if r.type == "int":
        step = 1 if r.log or r.step is None else round(r.step)
        return trial.suggest_int(dimension.key, round(r.low), round(r.high), step=step,
                                 log=r.log)
    return trial.suggest_float(dimension.key, float(r.low), float(r.high),
                               step=None if r.log else r.step, log=r.log)


def run_search(job: Job, local: Evaluator, space: Sequence[Dimension], *,
               trials: int, jobs: int, seed: int, top: int,
               progress: Callable[[int], None] = lambda done: None) -> Search:
    """Run ``trials`` trials of ``space`` on the training window, then the best ``top``
    (defined objectives only) on the held-out window; ``local`` evaluates in this process
    (one job); ``progress`` gets the trials done. A trial's params are the searched ones."""
    optuna = check_optuna()
    goal = objective(job.objective)
    study = optuna.create_study(direction=goal.direction,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    done: list[Trial] = []
    with _evaluations(job, jobs, local) as evaluate:
        while len(done) < trials:
            asked = [study.ask() for _ in range(min(BATCH, trials - len(done)))]
            params = [{d.key: _suggest(t, d) for d in space} for t in asked]
            outcomes = evaluate([(p, "train") for p in params])
            for trial, values, outcome in zip(asked, params, outcomes, strict=True):
                if outcome.value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, outcome.value)
                done.append(Trial(trial.number, values, outcome))
            progress(len(done))
        ranked = sorted((t for t in done if t.train.value is not None),
                        key=lambda t: (goal.rank_key(t.train.value), t.number))[:top]
        held_out = evaluate([(t.params, "test") for t in ranked])
    return Search(tuple(done), tuple(zip(ranked, held_out, strict=True)))
