"""``botvisor download-data``: candle history from a ccxt venue into the CSV replay's files.

A command plug-in (``botvisor.commands``). For each symbol it pages through
``fetch_ohlcv`` within the venue's rate limit (ccxt's own throttle, ``enableRateLimit``),
retries rate limits and network errors with backoff (:class:`~supervisor.retry.Retrier`),
and appends closed candles to ``DIR/SYMBOL.csv`` (``BTC_USDT.csv``; the layout
:class:`~actors.market.data.CsvReplay` reads). A second run resumes after the last row a
file has. Gaps and candles the bad-bar rules refuse are reported on stderr and in the
summary, not written (:mod:`actors.market.history` decides), and the exit is then 1.
Bad input exits 2 with a message naming what is at fault.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import yaml

from actors.market.history import (
    CSV_HEADER,
    Sorter,
    csv_name,
    format_ms,
    format_row,
    last_timestamp,
    parse_time,
    timeframe_ms,
)
from supervisor.backoff import Backoff
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity
from supervisor.host.command_plugins import HostCommand
from supervisor.retry import Retrier

__all__ = ["DownloadData"]

EXIT_OK, EXIT_REPORTED, EXIT_USAGE = 0, 1, 2
PAGE_LIMIT = 1000


class UsageError(Exception):
    """Bad input or an unreachable venue: the message names the thing at fault; exit 2."""


class DownloadData(HostCommand):
    """The ``download-data`` subcommand; ``clock`` is the wall time in seconds (which
    candle is still forming), given by a test."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    name = "download-data"
    help = "download closed candles from a ccxt venue into CSV files the replay reads"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--exchange", required=True, metavar="ID",
                            help="a ccxt exchange id (binance, kraken, ...)")
        parser.add_argument("--symbols", required=True, metavar="A/B,C/D",
                            help="comma-separated symbols, as the venue lists them")
        parser.add_argument("--timeframe", default="1m", help="candle length (default: 1m)")
        parser.add_argument("--since", required=True, metavar="TIME",
                            help="first candle's open time: ISO 8601 (UTC) or ms")
        parser.add_argument("--until", default=None, metavar="TIME",
                            help="end, exclusive: ISO 8601 (UTC) or ms (default: now)")
        parser.add_argument("--dir", required=True, metavar="DIR",
                            help="folder of SYMBOL.csv files (created if missing)")
        parser.add_argument("--ccxt-options", default=None, metavar="PATH",
                            help="a YAML mapping passed to the ccxt exchange's constructor "
                                 "(urls, options, ...)")
        parser.add_argument("--page-limit", type=int, default=PAGE_LIMIT, metavar="N",
                            help="candles asked per request (default: %(default)s)")
        parser.add_argument("--retries", type=int, default=6, metavar="N",
                            help="attempts per request on a rate limit or network error "
                                 "(default: %(default)s)")

    def run(self, args: argparse.Namespace) -> int:
        try:
            return _download(args, sys.stdout, sys.stderr, self.clock)
        except UsageError as exc:
            print(f"botvisor download-data: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("botvisor download-data: interrupted; the files hold whole rows, "
                  "a second run resumes", file=sys.stderr)
            return 130


def _download(args: argparse.Namespace, out: IO[str], err: IO[str],
              clock: Callable[[], float]) -> int:
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        raise UsageError("--symbols names no symbol")
    try:
        tf = timeframe_ms(args.timeframe)
        since = parse_time(args.since, "--since")
        now = int(clock() * 1000)
        until = now if args.until is None else parse_time(args.until, "--until")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if since >= until:
        raise UsageError(f"--since {format_ms(since)} is not before --until {format_ms(until)}")
    if args.page_limit < 1 or args.retries < 1:
        raise UsageError("--page-limit and --retries must be at least 1")
    directory = _writable_dir(Path(args.dir))
    sorters = {}
    for symbol in symbols:
        path = directory / csv_name(symbol)
        try:
            last = last_timestamp(path)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        sorters[symbol] = Sorter.resuming(symbol, since, min(until, now), tf, last)
    ccxt = _import_ccxt()
    ex = _exchange(ccxt, args.exchange, _ccxt_options(args.ccxt_options))
    retrier = _retrier(ccxt, args.retries)
    fetch = _guarded(ccxt, args.exchange, retrier)
    fetch(ex.load_markets)
    if args.timeframe not in (ex.timeframes or {}):
        raise UsageError(f"{args.exchange} has no timeframe {args.timeframe!r}; it has "
                         f"{', '.join(ex.timeframes or {}) or 'none'}")
    unknown = [s for s in symbols if s not in ex.markets]
    if unknown:
        raise UsageError(f"{args.exchange} does not list {', '.join(unknown)}")
    with _progress(err, sorters) as (advance, say):
        for symbol, sorter in sorters.items():
            _one(ex, fetch, sorter, path=directory / csv_name(symbol), args=args,
                 advance=advance, say=say, clock=clock)
    _summary(out, sorters, directory)
    # a gap or a bad candle: the files are written, and the run does not read as clean
    return EXIT_REPORTED if any(s.gaps or s.bad for s in sorters.values()) else EXIT_OK


def _one(ex: Any, fetch: Callable[..., Any], sorter: Sorter, *, path: Path,
         args: argparse.Namespace, advance: Callable[[Sorter, int], None],
         say: Callable[[str], None], clock: Callable[[], float]) -> None:
    """Page through one symbol, appending what is written after each page."""
    while (plan := sorter.request(args.page_limit)) is not None:
        start, limit = plan
        candles = fetch(ex.fetch_ohlcv, sorter.symbol, args.timeframe, start, limit)
        page = sorter.sort(candles, int(clock() * 1000))
        for report in page.reports:
            say(f"botvisor download-data: {report}")
        if page.rows:
            _append(path, [format_row(r) for r in page.rows])
        advance(sorter, len(page.rows))
        if page.done:
            return


def _append(path: Path, lines: list[str]) -> None:
    fresh = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8", newline="") as handle:
        if fresh:
            handle.write(",".join(CSV_HEADER) + "\n")
        handle.write("\n".join(lines) + "\n")


def _writable_dir(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".download-data-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--dir {str(directory)!r} is not a writable folder: "
                         f"{exc.strerror or exc}") from None
    return directory


def _import_ccxt() -> ModuleType:
    try:
        import ccxt
    except ImportError:
        raise UsageError("the ccxt package is not installed; install botvisor[live]"
                         ) from None
    module: ModuleType = ccxt
    return module


def _ccxt_options(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--ccxt-options {path!r} cannot be read: {exc.strerror or exc}"
                         ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--ccxt-options {path!r} is not YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"--ccxt-options {path!r} is not a mapping")
    return loaded


def _exchange(ccxt: ModuleType, exchange_id: str, options: dict[str, Any]) -> Any:
    if exchange_id not in ccxt.exchanges:
        close = [e for e in ccxt.exchanges if e.startswith(exchange_id[:3].lower())][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--exchange {exchange_id!r} is not a ccxt exchange id{hint}")
    try:
        return getattr(ccxt, exchange_id)(options | {"enableRateLimit": True})
    except Exception as exc:
        raise UsageError(f"--ccxt-options do not suit {exchange_id}: "
                         f"{type(exc).__name__}: {exc}") from None


def _retrier(ccxt: ModuleType, attempts: int) -> Retrier:
    """Rate limits and network errors are retried with backoff; anything else is not."""
    network = f"{ccxt.NetworkError.__module__}.{ccxt.NetworkError.__qualname__}"
    handler = ErrorHandler({network: Rule(Severity.WARNING, Directive.RESUME, retryable=True)},
                           include_defaults=False,
                           default=Rule(Severity.ERROR, Directive.RESUME, retryable=False))
    return Retrier(handler, attempts=attempts,
                   backoff=Backoff(initial=0.25, maximum=10.0, jitter=0.1))


def _guarded(ccxt: ModuleType, exchange_id: str, retrier: Retrier) -> Callable[..., Any]:
    """``retrier.call``, with what still fails after the retries as a UsageError naming the
    venue: unreachable, refusing a symbol, or answering nonsense."""

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return retrier.call(fn, *args)
        except ccxt.NetworkError as exc:
            raise UsageError(f"{exchange_id} cannot be reached ({type(exc).__name__}): "
                             f"{_short(exc)}") from None
        except ccxt.BaseError as exc:
            raise UsageError(f"{exchange_id} refused {fn.__name__}"
                             f"{tuple(a for a in args[:1])!r} ({type(exc).__name__}): "
                             f"{_short(exc)}") from None

    return call


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."


@contextmanager
def _progress(err: IO[str], sorters: dict[str, Sorter]
              ) -> Iterator[tuple[Callable[[Sorter, int], None], Callable[[str], None]]]:
    """(advance, say): a rich progress bar per symbol on a terminal, with reports printed
    above it; a plain line per page otherwise."""
    if not err.isatty():
        def line(sorter: Sorter, added: int) -> None:
            print(f"{sorter.symbol}: +{added} candles, {sorter.written} written, up to "
                  f"{format_ms(sorter.expected)}", file=err, flush=True)

        def plain(text: str) -> None:
            print(text, file=err, flush=True)
        yield line, plain
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(file=err)) as bar:
        tasks = {s: bar.add_task(s, total=max(1, (x.until - x.expected) // x.tf))
                 for s, x in sorters.items()}
        start = {s: x.expected for s, x in sorters.items()}

        def advance(sorter: Sorter, added: int) -> None:
            bar.update(tasks[sorter.symbol],
                       completed=(sorter.expected - start[sorter.symbol]) // sorter.tf)

        def above(text: str) -> None:
            bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        yield advance, above


def _summary(out: IO[str], sorters: dict[str, Sorter], directory: Path) -> None:
    for symbol, s in sorters.items():
        print(f"{symbol}: {s.written} candles written to {directory / csv_name(symbol)}, "
              f"{s.gaps} gaps, {s.bad} bad candles", file=out)
        for report in s.reports:
            print(f"  {report}", file=out)
