"""``botvisor new-strategy NAME`` and ``botvisor strategies``: command plug-ins
(``botvisor.commands``) run in the CLI's own process.

``new-strategy`` writes ``NAME.py`` (a strategy on the API) and ``test_NAME.py`` (a pytest
running it through the runner core) into ``--dir``; it refuses to overwrite a file. The
``strategies`` command lists the strategies the config can name by a short name (the
built-ins and the ``botvisor.strategies`` entry points) with their parameters; ``--json``
prints them as JSON. Bad input exits 2 with a message naming what is at fault.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
from pathlib import Path
from typing import Any

from actors.strategies.api import parameters
from actors.strategies.loading import installed, resolve
from actors.strategies.template import class_name, strategy_source, strategy_test_source
from supervisor.host.command_plugins import HostCommand

__all__ = ["ListStrategies", "NewStrategy"]

EXIT_OK, EXIT_USAGE = 0, 2


class NewStrategy(HostCommand):
    """The ``new-strategy`` subcommand."""

    name = "new-strategy"
    help = "write a new strategy and its test from the template (docs/strategies.md)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("strategy", metavar="NAME",
                            help="the strategy's module name (a Python identifier)")
        parser.add_argument("--dir", default=".", metavar="DIR",
                            help="where to write NAME.py and test_NAME.py (default: here)")

    def run(self, args: argparse.Namespace) -> int:
        name: str = args.strategy
        if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
            return _usage("new-strategy", f"NAME {name!r} must be a lower-case Python "
                                          "identifier (it is the module's name)")
        directory = Path(args.dir)
        if not directory.is_dir():
            return _usage("new-strategy", f"--dir {str(directory)!r} is not a directory")
        files = {directory / f"{name}.py": strategy_source(name),
                 directory / f"test_{name}.py": strategy_test_source(name)}
        for path in files:
            if path.exists():
                return _usage("new-strategy", f"{path} exists; not overwritten")
        try:
            for path, text in files.items():
                with path.open("x", encoding="utf-8") as out:
                    out.write(text)
        except OSError as exc:
            return _usage("new-strategy", f"cannot write {exc.filename}: {exc.strerror}")
        for path in files:
            print(f"wrote {path}")
        folder = directory.resolve()
        print(f"run its test: python -m pytest {directory / f'test_{name}.py'}")
        print(f"use it: a strategies entry with  class: {name}:{class_name(name)}  in the "
              f"config, and the folder on the Python path:  PYTHONPATH={folder} botvisor "
              "backtest ...  (docs/strategies.md)")
        return EXIT_OK


class ListStrategies(HostCommand):
    """The ``strategies`` subcommand."""

    name = "strategies"
    help = "list the installed strategies with their parameters (type, default, range)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args: argparse.Namespace) -> int:
        listed: list[dict[str, Any]] = []
        for short, path in installed().items():
            try:
                strategy = resolve(path)
            except ValueError as exc:
                return _usage("strategies", f"strategy {short!r} ({path}): {exc}")
            listed.append({"name": short, "class": path, "doc": _first_line(strategy.__doc__),
                           "params": [{"name": p.name, "type": p.type, "default": p.default,
                                       "low": p.low, "high": p.high, "step": p.step,
                                       "log": p.log, "doc": p.doc}
                                      for p in parameters(strategy)]})
        if args.json:
            print(json.dumps(listed, indent=2))
            return EXIT_OK
        for item in listed:
            print(f"{item['name']}  ({item['class']})")
            if item["doc"]:
                print(f"  {item['doc']}")
            for p in item["params"]:
                span = "" if p["low"] is None else f"  [{p['low']:g}, {p['high']:g}]"
                if p["step"] is not None:
                    span += f" step {p['step']:g}"
                if p["log"]:
                    span += " log"
                doc = f"  {p['doc']}" if p["doc"] else ""
                print(f"    {p['name']}: {p['type']} = {p['default']!r}{span}{doc}")
        return EXIT_OK


def _first_line(doc: str | None) -> str:
    """A docstring's first paragraph on one line, its ``literal`` marks shown plain."""
    return " ".join((doc or "").strip().split("\n\n")[0].replace("``", "").split())


def _usage(command: str, message: str) -> int:
    print(f"botvisor {command}: {message}", file=sys.stderr)
    return EXIT_USAGE
