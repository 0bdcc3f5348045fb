"""``botvisor backtest``: the configured bot over historical candles, and its result table.

A command plug-in (``botvisor.commands``). It reads ``--config`` as ``botvisor run`` does
(:mod:`actors.backtest.tree`), the candles of ``--data`` in the window ``--from`` ..
``--until`` (:func:`~actors.backtest.data.load_steps`), runs the engine
(:func:`~actors.backtest.engine.run_backtest`; a progress bar on a terminal only), prints
the result table or, with ``--json``, its JSON document with the run's timings, and with
``--report`` writes the HTML page. Bad input exits 2 with one line naming the thing at
fault (docs/backtesting.md, "Running a backtest").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from actors.backtest.data import load_steps
from actors.backtest.engine import run_backtest
from actors.backtest.metrics import summarize
from actors.backtest.progress import progress
from actors.backtest.report import ReportError, write_report
from actors.backtest.table import print_summary, to_json
from actors.backtest.tree import load_setup
from actors.common import when
from actors.common.process_age import process_age
from actors.strategies.runner import escalation
from supervisor.host.command_plugins import HostCommand
from supervisor.host.config_errors import ConfigError
from supervisor.host.logs import printable

__all__ = ["BacktestCommand", "parse_when"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input: the message names the thing at fault; exit 2."""


def parse_when(text: str, option: str) -> float:
    """``text`` as seconds since the epoch (:func:`actors.common.when.parse_when`: epoch
    seconds or ISO 8601, UTC unless it says otherwise); UsageError names ``option``."""
    try:
        return when.parse_when(text, option)
    except when.WhenError as exc:
        raise UsageError(str(exc)) from None


class BacktestCommand(HostCommand):
    """The ``backtest`` subcommand."""

    name = "backtest"
    help = "run the configured strategies, sizing, exits, fees and breaker over CSV candles"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", default="config.yaml", metavar="PATH",
                            help="the bot's config, as `botvisor run` reads it "
                                 "(default: %(default)s)")
        parser.add_argument("--data", required=True, metavar="DIR",
                            help="folder of SYMBOL.csv candles (the replay's layout, as "
                                 "download-data writes it)")
        parser.add_argument("--from", dest="since", default=None, metavar="TIME",
                            help="first candle time: ISO 8601 (UTC) or epoch seconds")
        parser.add_argument("--until", default=None, metavar="TIME",
                            help="last candle time (inclusive): ISO 8601 (UTC) or epoch "
                                 "seconds")
        parser.add_argument("--report", default=None, metavar="PATH",
                            help="write the HTML report (equity, drawdown, every trade)")
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        try:
            return _backtest(args)
        except UsageError as exc:
            print(f"botvisor backtest: {printable(str(exc), 800)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("botvisor backtest: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            said = escalation(exc)
            if said is None:
                raise
            print(f"botvisor backtest: {printable(said, 800)}: the backtest stops there "
                  "(live, the evaluator's supervisor takes it)", file=sys.stderr)
            return EXIT_FAILED


def _backtest(args: argparse.Namespace) -> int:
    since = None if args.since is None else parse_when(args.since, "--from")
    until = None if args.until is None else parse_when(args.until, "--until")
    if since is not None and until is not None and until < since:
        raise UsageError(f"--until {args.until!r} is before --from {args.since!r}")
    try:
        setup = load_setup(args.config)
    except ConfigError as exc:
        where = "; ".join(f"{key}: {reason}" for key, reason in exc.problems)
        raise UsageError(f"invalid configuration in {exc.source}: {where}") from None
    except (ValueError, OSError) as exc:  # a TreeError; a file that cannot be read
        raise UsageError(str(exc)) from None
    try:
        data = load_steps(args.data, since, until)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    started = time.monotonic()
    startup = process_age()
    with progress("backtest", "candles", data.candles) as advance:
        result = run_backtest(setup, data.steps(), timeframe_s=data.timeframe_s,
                              progress=advance)
    run_s = time.monotonic() - started
    summary = summarize(result)
    if args.report is not None:
        try:
            write_report(result, summary, args.report)
        except ReportError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        document: dict[str, Any] = to_json(summary)
        document.update(startup_s=round(startup, 3), run_s=round(run_s, 3),
                        candles_per_s=round(result.candles / run_s) if run_s > 0 else None)
        print(json.dumps(document, allow_nan=False))
    else:
        print_summary(summary, sys.stdout)
        if args.report is not None:
            print(f"report: {args.report}")
    return EXIT_OK
