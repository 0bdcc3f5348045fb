"""The ``botvisor`` command: the process entry point and the operator's tool."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from supervisor.config import ConfigError, load_config
from supervisor.errors import StartFailed
from supervisor.logs import setup_logging
from supervisor.runtime import Runtime

log = logging.getLogger("botvisor")

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "config.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    code: int = args.func(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botvisor",
        description="A supervised actor runtime for a trading bot.",
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the tree in the foreground until SIGINT/SIGTERM")
    run.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    run.add_argument("--duration", type=float, default=None,
                     help="stop by itself after this many seconds")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", nargs="?", default=DEFAULT_CONFIG)
    check.set_defaults(func=_cmd_check_config)
    return parser


def _load(path: str) -> tuple[object, object] | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"botvisor: {exc}", file=sys.stderr)
        return None


def _cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args.path)
    if loaded is None:
        return EXIT_USAGE
    _, spec = loaded
    print(f"{args.path}: ok ({len(spec.all_ids())} actors)")  # type: ignore[attr-defined]
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        print("botvisor: --duration must be > 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, spec = load_config(args.config)
    except ConfigError as exc:
        print(f"botvisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config.runtime.log_level, config.runtime.log_format)
    runtime = Runtime(
        error_handler=config.error_handler(),
        ask_timeout=config.runtime.ask_timeout,
        monitor_interval=config.runtime.monitor_interval,
        event_history=config.runtime.event_history,
    )
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("starting tree from %s", Path(args.config).resolve())
    try:
        runtime.start(spec, name=config.runtime.name, shutdown=config.tree.shutdown)
    except StartFailed as exc:
        log.critical("could not start: %s", exc)
        runtime.stop()
        return EXIT_ERROR
    log.info("tree is up: %s", ", ".join(runtime.names()))
    _wait(runtime, stop, args.duration)
    if received:
        log.info("received %s; stopping the tree in reverse order", received[0])
    code = runtime.exit_code if runtime.exit_code is not None else EXIT_OK
    reason = runtime.exit_reason
    runtime.stop()
    if code != EXIT_OK:
        log.critical("exiting with status %d: %s", code, reason)
    else:
        log.info("stopped cleanly")
    return code


def _wait(runtime: Runtime, stop: threading.Event, duration: float | None) -> None:
    """Block the main thread until a signal, the root ending, or the duration passing."""
    deadline = None if duration is None else runtime.clock.now() + duration
    while not stop.is_set() and not runtime.wait(timeout=0):
        remaining = None if deadline is None else deadline - runtime.clock.now()
        if remaining is not None and remaining <= 0:
            return
        # Short waits keep the main thread responsive to signals.
        stop.wait(0.2 if remaining is None else min(0.2, remaining))


if __name__ == "__main__":
    sys.exit(main())
