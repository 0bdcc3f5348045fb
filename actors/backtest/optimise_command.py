"""``botvisor optimise``: search the configured strategies' declared parameter ranges on a
training window and report the best trials on a held-out window (walk-forward).

A command plug-in (``botvisor.commands``). It loads the config and the candles as
``botvisor backtest`` does, cuts the windows (:mod:`actors.backtest.optimise_windows`),
runs the search (:func:`~actors.backtest.optimise.run_search`; a progress bar on a terminal
only) and prints the best trials, or with ``--json`` the document
(:mod:`actors.backtest.optimise_table`); ``--report`` writes a CSV of every trial. Bad
input exits 2 with one line naming the thing at fault (docs/optimise.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.backtest.data import HistoricalData, load_steps
from actors.backtest.optimise import (
    Evaluator,
    Job,
    OptimiseError,
    check_optuna,
    run_search,
    search_space,
)
from actors.backtest.optimise_objective import OBJECTIVES, UnknownObjective, objective
from actors.backtest.optimise_table import Run, print_best, to_document, write_trials_csv
from actors.backtest.optimise_windows import Window, WindowError, explicit_windows, split_window
from actors.backtest.progress import progress
from actors.backtest.setup import BacktestSetup
from actors.backtest.tree import load_setup
from actors.common.when import WhenError, parse_when
from supervisor.host.command_plugins import HostCommand
from supervisor.host.config_errors import ConfigError
from supervisor.host.logs import printable

__all__ = ["OptimiseCommand"]

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_SPLIT = 0.7
_EXPLICIT = ("train_from", "train_until", "test_from", "test_until")


class UsageError(Exception):
    """Bad input: the message names the thing at fault; exit 2."""


def _count(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is under {low}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


class OptimiseCommand(HostCommand):
    """The ``optimise`` subcommand."""

    name = "optimise"
    help = ("search the strategies' parameter ranges on a training window, report the best "
            "on a held-out one")

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--config", default="config.yaml", metavar="PATH",
            help="the bot's config, as `botvisor run` reads it (default: %(default)s)")
        add("--data", required=True, metavar="DIR",
            help="folder of SYMBOL.csv candles, as for `botvisor backtest`")
        add("--objective", default="sharpe", metavar="FIGURE",
            help=f"the result-table figure to optimise: {', '.join(OBJECTIVES)} "
                 "(max_drawdown* minimised, the rest maximised; default: %(default)s)")
        add("--trials", type=_count(1), default=50, metavar="N",
            help="trials to run (default: %(default)s)")
        add("--jobs", type=_count(1), default=1, metavar="N",
            help="worker processes evaluating trials (default: %(default)s)")
        add("--seed", type=_count(0), default=None, metavar="N",
            help="the sampler's seed: the same seed gives the same trials, whatever --jobs "
                 "(default: a random one, printed)")
        add("--top", type=_count(1), default=5, metavar="N",
            help="best trials run on the held-out window (default: %(default)s)")
        add("--fix", action="append", default=[], metavar="STRATEGY.PARAM[,...]",
            help="keep these parameters at the config's value (repeatable)")
        add("--min-trades", type=_count(0), default=1, metavar="N",
            help="a trial trading fewer times on the training window counts as undefined "
                 "(default: %(default)s)")
        add("--split", type=_fraction, default=None, metavar="FRACTION",
            help=f"train on the first FRACTION of --from..--until, hold out the rest "
                 f"(default: {DEFAULT_SPLIT} when no --train-*/--test-* is given)")
        add("--from", dest="since", default=None, metavar="TIME",
            help="with --split: the span's first candle time (ISO 8601 UTC or epoch s)")
        add("--until", default=None, metavar="TIME",
            help="with --split: the span's last candle time (inclusive)")
        add("--train-from", default=None, metavar="TIME", help="training window's start")
        add("--train-until", default=None, metavar="TIME",
            help="training window's end (inclusive)")
        add("--test-from", default=None, metavar="TIME",
            help="held-out window's start (after --train-until)")
        add("--test-until", default=None, metavar="TIME",
            help="held-out window's end (inclusive)")
        add("--report", default=None, metavar="PATH", help="write every trial as CSV")
        add("--json", action="store_true", help="print the result as one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        try:
            return _optimise(args)
        except (UsageError, OptimiseError, UnknownObjective, WindowError, WhenError) as exc:
            print(f"botvisor optimise: {printable(str(exc), 800)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("botvisor optimise: interrupted", file=sys.stderr)
            return 130


def _when(args: argparse.Namespace, key: str) -> float | None:
    text = getattr(args, key)
    option = "--" + {"since": "from"}.get(key, key).replace("_", "-")
    return None if text is None else parse_when(text, option)


def _setup(path: str) -> BacktestSetup:
    try:
        return load_setup(path)
    except ConfigError as exc:
        where = "; ".join(f"{key}: {reason}" for key, reason in exc.problems)
        raise UsageError(f"invalid configuration in {exc.source}: {where}") from None
    except (ValueError, OSError) as exc:  # a TreeError; a file that cannot be read
        raise UsageError(str(exc)) from None


def _steps(data: str, window: Window, which: str) -> HistoricalData:
    try:
        return load_steps(data, window.since, window.until)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{which}: {exc}") from None


def _windows(args: argparse.Namespace) -> tuple[HistoricalData, HistoricalData]:
    explicit = [key for key in _EXPLICIT if getattr(args, key) is not None]
    if explicit and (args.split is not None or args.since or args.until):
        raise UsageError("give --split (with --from/--until) or the --train-*/--test-* "
                         "windows, not both")
    if explicit:
        train, test = explicit_windows(*(_when(args, key) for key in _EXPLICIT))
    else:
        span = _steps(args.data, Window(_when(args, "since"), _when(args, "until")),
                      "the span to split")
        fraction = DEFAULT_SPLIT if args.split is None else args.split
        train, test = split_window(*span.window, span.timeframe_s, fraction)
    return (_steps(args.data, train, "the training window"),
            _steps(args.data, test, "the held-out window"))


def _optimise(args: argparse.Namespace) -> int:
    goal = objective(args.objective)
    check_optuna()
    setup = _setup(args.config)
    fixed_keys = [key.strip() for text in args.fix for key in text.split(",") if key.strip()]
    space, fixed = search_space(setup, fixed_keys)
    train, test = _windows(args)
    seed = random.SystemRandom().randrange(2**31) if args.seed is None else args.seed
    job = Job(str(Path(args.config).resolve()), str(Path(args.data).resolve()),
              Window(*train.window), Window(*test.window), goal.name, args.min_trades)
    started = time.monotonic()
    with progress("optimise", "trials", args.trials) as advance:
        search = run_search(job, Evaluator(job, setup, train, test), space,
                            trials=args.trials, jobs=args.jobs, seed=seed, top=args.top,
                            progress=advance)
    run = Run(goal, seed, args.trials, args.jobs, args.min_trades, train, test, space, fixed)
    if args.report is not None:
        try:
            write_trials_csv(search, Path(args.report))
        except OSError as exc:
            raise UsageError(f"cannot write the report {args.report}: "
                             f"{exc.strerror or exc}") from None
    if args.json:
        document: dict[str, Any] = to_document(run, search)
        document["run_s"] = round(time.monotonic() - started, 3)
        print(json.dumps(document, allow_nan=False))
    else:
        print_best(run, search, sys.stdout)
        if args.report is not None:
            print(f"report: {args.report}")
    return EXIT_OK
