"""Operator command plug-ins: registered through real entry points (a test distribution on
the path, with its dist-info's entry_points.txt), offered by `botvisor --help`, answered by
their target over the real control socket of a real `botvisor run`; a broken one is named.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from supervisor.host.config import ControlModel, parse_config
from supervisor.host.control_protocol import EXIT_OK
from supervisor.host.operator_plugins import (
    GROUP,
    ForwardedCommand,
    PluginError,
    installed_commands,
    load_commands,
    status_fields_of,
    targets_of,
)
from tests.conftest import REPO, BotProcess

ME = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
NO_RUNTIME_DIR = {"RUNTIME_DIRECTORY": ""}

# A plug-in as an application would ship it: its own package, its own entry point.
GREET_MODULE = '''
from supervisor.host.operator_plugins import ForwardedCommand


class GreetCommand(ForwardedCommand):
    name = "greet"
    help = "say a word to the demo actor"
    target = "op"
    status_fields = ("label",)

    def add_arguments(self, parser):
        parser.add_argument("word")
        parser.add_argument("--reason", default="")

    def request(self, args):
        return {"command": "hello", "args": [args.word], "reason": args.reason}

    def render(self, console, result):
        console.print(f"greeted by {result['who']}: {result['command']} "
                      f"{' '.join(result['args'])} ({result['reason']})")
        return 0

    def format_status(self, field, value):
        return f"<{value}>" if field == "label" else None
'''


def distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> Path:
    """An installed distribution in ``site``: its modules and a dist-info with entry points."""
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{entry_points}\n")
    return site


def env_with(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO),
                                          os.environ.get("PYTHONPATH", "")]), **NO_RUNTIME_DIR}


def botvisor(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **env_with(site))
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "supervisor.host.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def greet_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return distribution(site, "demo_greet", "greet = demo_greet_ops:GreetCommand",
                        {"demo_greet_ops": GREET_MODULE})


def test_a_plugin_verb_is_offered_and_reaches_its_target_over_the_socket(
        greet_site: Path, tmp_path: Path) -> None:
    helped = botvisor(greet_site, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "greet" in helped.stdout and "say a word to the demo actor" in helped.stdout
    assert "breaker" in helped.stdout  # the bot's own plug-ins are still there
    usage = botvisor(greet_site, "greet", "--help")
    assert usage.returncode == 0 and "word" in usage.stdout and "--reason" in usage.stdout

    config = tmp_path / "bot.yaml"  # no control section: the plug-in's target and fields
    config.write_text(f"""
runtime: {{state_dir: {tmp_path / "state"}}}
tree:
  children:
    - name: op
      actor: tests.host.test_control:Operated
""")
    bot = BotProcess("run", "--config", str(config), env=env_with(greet_site))
    try:
        bot.wait_for_line(r"control socket on .*botvisor\.sock")
        said = botvisor(greet_site, "greet", "world", "--reason", "testing",
                        "--config", str(config))
        assert said.returncode == 0, said.stderr
        assert f"greeted by {ME}: hello world (testing)" in said.stdout
        reply = json.loads(botvisor(greet_site, "greet", "again", "--json",
                                    "--config", str(config)).stdout)
        assert reply == {"ok": True, "result": {"command": "hello", "args": ["again"],
                                                "who": ME, "reason": ""}}
        status = botvisor(greet_site, "status", "--config", str(config))
        assert status.returncode == 0, status.stderr
        assert "op.label" in status.stdout and "<ready>" in status.stdout
        # Without the plug-in the same bot does not know the verb.
        other = tmp_path / "empty-site"
        other.mkdir()
        unknown = botvisor(other, "greet", "world", "--config", str(config))
        assert unknown.returncode == 2 and "invalid choice: 'greet'" in unknown.stderr
    finally:
        bot.kill()


def test_a_broken_entry_point_exits_2_naming_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    distribution(site, "demo_broken", "snap = demo_no_such_module:SnapCommand", {})
    for args in (("--help",), ("status",), ("run", "--config", str(tmp_path / "x.yaml"))):
        done = botvisor(site, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "operator command plug-in 'snap'" in done.stderr
        assert "demo_no_such_module:SnapCommand" in done.stderr
        assert "ModuleNotFoundError" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout


# -- loading, in-process, from real EntryPoint objects ----------------------------------------
class Shadow(ForwardedCommand):
    """A plug-in that takes one of the runtime's own verbs."""

    name = "status"
    help = "shadows status"
    target = "op"

    def request(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"command": "status"}

    def render(self, console: Console, result: Any) -> int:
        return EXIT_OK


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, GROUP)


@pytest.mark.parametrize(("name", "value", "why"), [
    ("gone", "tests.host.test_operator_plugins:Missing", "cannot be loaded: AttributeError"),
    ("len", "builtins:len", "not a ForwardedCommand"),
    ("base", "supervisor.host.operator_plugins:ForwardedCommand", "cannot be made: TypeError"),
    ("halt", "actors.risk.operator:BreakerCommand", "its name is 'breaker'"),
    ("status", "tests.host.test_operator_plugins:Shadow", "one of botvisor's own commands"),
])
def test_an_unusable_plugin_is_named(name: str, value: str, why: str) -> None:
    with pytest.raises(PluginError) as caught:
        load_commands([_ep("alerts", "actors.alerts.operator:AlertsCommand"), _ep(name, value)])
    assert f"operator command plug-in '{name}' ({GROUP}: {value})" in caught.value.message
    assert why in caught.value.message
    assert caught.value.code == 2


def test_the_bot_registers_the_defaults_config_used_to_name() -> None:
    commands = installed_commands()
    assert [c.name for c in commands] == ["alerts", "breaker", "positions"]
    unset = ControlModel()
    assert targets_of(unset, commands) == {
        "alerts": "alerts", "breaker": "breaker", "positions": "positions"}
    assert status_fields_of(unset, commands) == (
        "breaker.state", "breaker.reason", "positions.equity", "positions.cash",
        "positions.realized_pnl", "positions.unrealized_pnl", "positions.open_positions")
    # A config's own targets replace the plug-ins' (an empty mapping too); the status fields
    # follow the targets until the config names its own.
    moved = parse_config({"control": {"targets": {"breaker": "risk"}}})[0].control
    assert targets_of(moved, commands) == {"breaker": "risk"}
    assert status_fields_of(moved, commands) == ("risk.state", "risk.reason")
    none = parse_config({"control": {"targets": {}, "status_fields": ["a.b"]}})[0].control
    assert targets_of(none, commands) == {}
    assert status_fields_of(none, commands) == ("a.b",)
