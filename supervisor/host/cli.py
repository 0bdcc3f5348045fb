"""The ``botvisor`` command: the process entry point and the operator's tool."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from supervisor.host.command_plugins import add_host_commands
from supervisor.host.config import (
    BotConfig,
    ConfigError,
    Imports,
    load_config,
    observers,
    trusted_packages,
)
from supervisor.host.control import ControlServer
from supervisor.host.health import HealthPolicy
from supervisor.host.logs import setup_logging
from supervisor.host.metrics import MetricsService
from supervisor.host.operator_cli import add_operator_commands, seconds
from supervisor.host.operator_plugins import PluginError
from supervisor.host.reload import ConfigReloader
from supervisor.host.sd_notify import SystemdService
from supervisor.host.session import RunSession, SessionService
from supervisor.host.state_lock import StateLock, StateLocked
from supervisor.host.wiring import wiring_warnings
from supervisor.runtime import Runtime
from supervisor.spec import SupervisorSpec

log = logging.getLogger("botvisor")

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "config.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
    except PluginError as exc:  # a broken install: named, no traceback
        print(f"botvisor: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand's own usage, not the top-level one
        command_parser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (``| head``): nothing left to tell it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not raise
        return EXIT_ERROR
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botvisor",
        description="Run a tree of supervised actors from a config file, and steer it.",
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the tree in the foreground until SIGINT/SIGTERM")
    run.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    run.add_argument("--duration", type=seconds, default=None,
                     help="stop by itself after this many seconds")
    run.add_argument("--report", default=None, metavar="PATH",
                     help="write an HTML report of the run here when it ends")
    run.add_argument("--chaos", action="store_true",
                     help="inject faults (the config's chaos: section, or its defaults)")
    run.add_argument("--chaos-seed", type=int, default=None, metavar="N",
                     help="seed of the injected faults (implies --chaos)")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", nargs="?", default=DEFAULT_CONFIG)
    check.set_defaults(func=_cmd_check_config)
    add_operator_commands(sub)  # status, tree, stop, start, ... over the control socket
    add_host_commands(sub)  # the application's own, run here (botvisor.commands)
    for command_parser in sub.choices.values():  # so that main names its usage on an error
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def _load(path: str) -> tuple[object, object] | None:
    """The config at ``path`` checked without running code outside the trusted packages
    (see :class:`~supervisor.host.config.Imports`); None once the problems are printed."""
    try:
        return load_config(path, imports=Imports(execute=False, trusted=trusted_packages()))
    except ConfigError as exc:
        print(f"botvisor: {exc}", file=sys.stderr)
        return None


def _cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args.path)
    if loaded is None:
        return EXIT_USAGE
    config, spec = loaded
    print(f"{args.path}: ok ({len(spec.all_ids())} actors)")  # type: ignore[attr-defined]
    for note in config.notes:  # type: ignore[attr-defined]
        print(f"  {note}")
    for key, warning in wiring_warnings(spec):  # type: ignore[arg-type]
        print(f"  warning: {key}: {warning}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        print("botvisor: --duration must be > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.chaos_seed is not None and not 0 <= args.chaos_seed < 2**63:
        print("botvisor: --chaos-seed must be between 0 and 2**63 - 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, spec = load_config(args.config)
    except ConfigError as exc:
        print(f"botvisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:  # before anything opens a state file: one bot per state directory
        lock = StateLock.acquire(Path(config.runtime.state_dir))
    except StateLocked as exc:
        print(f"botvisor: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return _run_locked(args, config, spec)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, config: BotConfig, spec: SupervisorSpec) -> int:
    setup_logging(config.runtime.log_level, config.runtime.log_format)
    # A fatal signal (SIGBUS from a memory-mapped file on a failing disk, SIGSEGV) still
    # leaves its cause on stderr, with every thread's stack, instead of nothing.
    with contextlib.suppress(ValueError, OSError):  # a stderr with no file descriptor
        faulthandler.enable(all_threads=True)
    for note in config.notes:
        log.info("config: %s", note)
    for key, warning in wiring_warnings(spec):  # every start with an override says so
        log.warning("wiring: %s: %s", key, warning)
    chaos = config.chaos_plan(force=args.chaos or args.chaos_seed is not None,
                              seed=args.chaos_seed)
    runtime = Runtime(
        error_handler=config.error_handler(),
        ask_timeout=config.runtime.ask_timeout,
        monitor_interval=config.runtime.monitor_interval,
        event_history=config.runtime.event_history,
        chaos=chaos,
    )
    if chaos is not None:
        log.warning("chaos: fault injection is ON (seed %d): faults will be injected "
                    "into the tree", chaos.seed)
    path = Path(args.config).resolve()
    session = RunSession(config, spec, runtime, config_path=path, duration=args.duration,
                         reloader=ConfigReloader(path))
    session.services.extend(_services(session, args))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        session.request_stop(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, lambda _s, _f: session.signal_reload())
    log.info("starting tree from %s", session.config_path)
    return session.run()


def _services(session: RunSession, args: argparse.Namespace) -> list[SessionService]:
    """The services that ride along with a run, in start order (stopped in reverse)."""
    services: list[SessionService] = []
    if session.config.metrics.enabled:
        services.append(MetricsService(session.config.metrics.host, session.config.metrics.port))
    services.append(ControlServer())  # the operator's control socket (control: section)
    services.extend(observers(session.config.runtime, report=args.report))  # live view, summary
    health = session.config.health
    policy = HealthPolicy(down_grace=health.down_grace, max_restarts=health.max_restarts,
                          restart_window=health.restart_window)
    services.append(SystemdService(policy=policy))  # last: READY=1 once the rest is up
    return services


if __name__ == "__main__":
    sys.exit(main())
