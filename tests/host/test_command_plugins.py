"""Command plug-ins (``botvisor.commands``): the host loads them as subcommands of its own
CLI, knowing nothing of what they do; a broken one is named and exits 2."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from supervisor.host import command_plugins
from supervisor.host.cli import main
from supervisor.host.command_plugins import (
    GROUP,
    HostCommand,
    add_host_commands,
    installed_commands,
    load_commands,
)
from supervisor.host.operator_plugins import PluginError


class Echo(HostCommand):
    name = "echo"
    help = "print the words given and exit with the code given"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("words", nargs="*")
        parser.add_argument("--code", type=int, default=0)

    def run(self, args: argparse.Namespace) -> int:
        print(" ".join(args.words))
        code: int = args.code
        return code


class Shadow(Echo):
    name = "run"


class Clumsy(Echo):
    name = "clumsy"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        raise RuntimeError("no arguments today")


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, GROUP)


def test_the_bot_registers_download_data() -> None:
    assert [c.name for c in installed_commands()] == [
        "backtest", "download-data", "new-strategy", "optimise", "strategies"]


def test_a_plugin_runs_as_a_subcommand_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(command_plugins, "entry_points",
                        lambda group: [_ep("echo", "tests.host.test_command_plugins:Echo")])
    assert main(["echo", "hello", "there", "--code", "3"]) == 3
    assert capsys.readouterr().out == "hello there\n"


@pytest.mark.parametrize(("name", "value", "why"), [
    ("gone", "tests.host.test_command_plugins:Missing", "cannot be loaded: AttributeError"),
    ("len", "builtins:len", "not a HostCommand"),
    ("base", "supervisor.host.command_plugins:HostCommand", "cannot be made: TypeError"),
    ("other", "tests.host.test_command_plugins:Echo", "its name is 'echo'"),
])
def test_an_unusable_plugin_is_named(name: str, value: str, why: str) -> None:
    with pytest.raises(PluginError) as caught:
        load_commands([_ep("echo", "tests.host.test_command_plugins:Echo"), _ep(name, value)])
    assert f"command plug-in '{name}' ({GROUP}: {value})" in caught.value.message
    assert why in caught.value.message
    assert caught.value.code == 2


@pytest.mark.parametrize(("command", "why"), [
    (Shadow(), "'run' is already a botvisor command"),
    (Clumsy(), "cannot add its arguments: RuntimeError: no arguments today"),
])
def test_a_plugin_that_does_not_fit_the_cli_is_named(command: HostCommand, why: str) -> None:
    sub = argparse.ArgumentParser().add_subparsers()
    sub.add_parser("run")
    with pytest.raises(PluginError, match=why):
        add_host_commands(sub, [command])


def test_a_broken_plugin_exits_2_naming_its_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(group: str) -> list[Any]:
        return [_ep("nope", "no.such.module:Thing")]

    monkeypatch.setattr(command_plugins, "entry_points", broken)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"botvisor: command plug-in 'nope' ({GROUP}: no.such.module:Thing) "
                          "cannot be loaded: ModuleNotFoundError")
    assert "Traceback" not in err
