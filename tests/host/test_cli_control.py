"""The operator's commands as real processes: `botvisor run` from a copy of config.yaml
(state files in a temporary directory), driven by `botvisor status`, `tree`, `stop`...
each one its own process, talking over the real control socket.

The tests share one running bot and run in file order; the last one stops it.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, BotProcess
from tests.support.bot_helpers import redirect_state, settings, shipped_config, write_config

ME = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
NO_RUNTIME_DIR = {"RUNTIME_DIRECTORY": ""}  # the socket beside the config, whatever the host


@dataclass
class Bot:
    """The running `botvisor run` and the config copy it was started with."""

    config: Path
    process: BotProcess

    @property
    def socket(self) -> Path:
        return self.config.parent / "run" / "botvisor.sock"


def botvisor(*args: str) -> subprocess.CompletedProcess[str]:
    """Run one `botvisor` command to its end (a real process, as an operator would)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(NO_RUNTIME_DIR)
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "supervisor.host.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def ok(*args: str) -> str:
    done = botvisor(*args)
    assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    assert done.stderr == ""
    return done.stdout


def as_json(*args: str) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(ok(*args, "--json"))
    assert reply["ok"] is True
    return reply


def node(tree: dict[str, Any], name: str) -> dict[str, Any]:
    if tree["name"] == name:
        return tree
    for child in tree["children"]:
        try:
            return node(child, name)
        except KeyError:
            continue
    raise KeyError(name)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    directory = tmp_path_factory.mktemp("cli-control")
    raw = shipped_config()
    redirect_state(raw, directory / "state")
    # Changed from the shipped file: no market crash (it would trip the breaker by itself
    # half a minute in), and a slower market, to leave the CPU to the commands under test.
    settings(raw, "market").update(crash_at_bar=None, speed=60)
    config = write_config(raw, directory / "config.yaml")
    process = BotProcess("run", "--config", str(config), env=NO_RUNTIME_DIR)
    try:
        process.wait_for_line(r"control socket on .*botvisor\.sock")
        yield Bot(config, process)
    finally:
        process.kill()


def test_status_plain_and_json(bot: Bot) -> None:
    out = ok("status", "--config", str(bot.config))
    assert "botvisor running" in out
    assert "breaker.state" in out and "positions.equity" in out
    r = as_json("status", "--config", str(bot.config))["result"]
    assert r["state"] == "running" and r["actors"] == 15
    assert r["pid"] == bot.process.proc.pid
    assert r["socket"] == str(bot.socket)
    assert r["snapshot"]["breaker.state"] in ("closed", "open", "half_open", "halted")
    assert "positions.equity" in r["snapshot"]


def test_socket_is_private(bot: Bot) -> None:
    assert oct(bot.socket.stat().st_mode & 0o777) == oct(0o600)
    assert oct(bot.socket.parent.stat().st_mode & 0o777) == oct(0o700)


def test_tree_plain_and_json(bot: Bot) -> None:
    out = ok("tree", "--socket", str(bot.socket))
    for name in ("root", "ledger", "positions", "pipeline", "scanner", "executor"):
        assert name in out
    assert "restarts 0" in out and "mailbox" in out and "up " in out
    tree = as_json("tree", "--config", str(bot.config))["result"]
    scanner = node(tree, "scanner")
    assert scanner["state"] == "running" and scanner["kind"] == "worker"
    assert node(tree, "pipeline")["kind"] == "supervisor"


def test_stop_start_restart_an_actor(bot: Bot) -> None:
    cfg = ("--config", str(bot.config))
    out = ok("stop", "scanner", *cfg)
    assert "scanner: terminated" in out and "botvisor start scanner" in out
    scanner = node(as_json("tree", *cfg)["result"], "scanner")
    assert scanner["state"] == "terminated" and scanner["restarts"] == 0
    assert node(as_json("tree", *cfg)["result"], "evaluator")["state"] == "running"

    started = as_json("start", "scanner", *cfg)["result"]
    assert (started["state"], started["restarts"]) == ("running", 1)  # a start counts
    again = botvisor("start", "scanner", *cfg)
    assert again.returncode == 1 and "already running" in again.stderr
    out = ok("restart", "scanner", *cfg)
    assert "scanner: running" in out and "restarts 2" in out
    status = as_json("status", *cfg)["result"]
    assert status["state"] == "running" and status["by_state"] == {"running": 15}


def test_breaker_open_status_halt_close(bot: Bot) -> None:
    cfg = ("--config", str(bot.config))
    out = ok("breaker", "open", "--reason", "cli test", *cfg)
    assert "breaker open" in out and "forced open: cli test" in out and ME in out
    status = as_json("breaker", "status", *cfg)["result"]
    assert (status["state"], status["by"], status["manual"]) == ("open", ME, True)
    assert as_json("status", *cfg)["result"]["snapshot"]["breaker.state"] == "open"
    halted = as_json("breaker", "halt", "--reason", "maintenance", *cfg)["result"]
    assert (halted["state"], halted["reason"]) == ("halted", "halted: maintenance")
    out = ok("breaker", "close", *cfg)
    assert "breaker closed" in out and "forced closed: no reason given" in out


def test_positions(bot: Bot) -> None:
    out = ok("positions", "--config", str(bot.config))
    assert "equity" in out and "realized PnL" in out and "cash" in out
    r = as_json("positions", "--config", str(bot.config))["result"]
    assert {"equity", "cash", "realized_pnl", "unrealized_pnl", "fees", "positions"} <= set(r)
    assert r["starting_cash"] == "10000"
    for p in r["positions"]:
        assert {"symbol", "quantity", "avg_price", "mark", "exposure"} <= set(p)


def test_alerts_test_and_status(bot: Bot) -> None:
    out = ok("alerts", "test", "--config", str(bot.config))
    assert "no alert channels configured" in out  # the shipped config has none
    r = as_json("alerts", "status", "--config", str(bot.config))["result"]
    assert r["enabled"] is True and r["channels"] == []


def test_reload_applies_changed_settings(bot: Bot) -> None:
    cfg = ("--config", str(bot.config))
    assert "nothing changed" in ok("reload", *cfg)
    before = node(as_json("tree", *cfg)["result"], "scanner")["incarnation"]
    raw = shipped_config()
    redirect_state(raw, bot.config.parent / "state")
    settings(raw, "market").update(crash_at_bar=None, speed=60)
    settings(raw, "scanner")["top"] = 3  # one worker's settings: applied live
    write_config(raw, bot.config)
    out = ok("reload", *cfg)
    assert "applied scanner.settings" in out
    assert node(as_json("tree", *cfg)["result"], "scanner")["incarnation"] == before + 1


def test_errors_exit_with_lsb_statuses_and_no_traceback(bot: Bot, tmp_path: Path) -> None:
    cfg = ("--config", str(bot.config))
    unknown = botvisor("stop", "nosuch", *cfg)
    assert unknown.returncode == 4 and "no actor named 'nosuch'" in unknown.stderr
    as_data = botvisor("restart", "nosuch", "--json", *cfg)
    assert as_data.returncode == 4 and json.loads(as_data.stdout)["code"] == 4
    root = botvisor("stop", "root", *cfg)
    assert root.returncode == 2 and "root" in root.stderr
    for usage in (("breaker", "explode", *cfg), ("stop", *cfg),
                  ("status", "--config", str(tmp_path / "missing.yaml")),
                  ("status", "--socket", "x", "--config", "y")):
        done = botvisor(*usage)
        assert done.returncode == 2, (usage, done.stderr)
    elsewhere = tmp_path / "config.yaml"
    elsewhere.write_text("{}\n")  # a config no bot runs with: nothing at its socket
    down = botvisor("status", "--config", str(elsewhere))
    assert down.returncode == 3 and "not running" in down.stderr
    for done in (unknown, root, down):
        assert "Traceback" not in done.stderr + done.stdout


def test_events_recent_and_followed(bot: Bot) -> None:
    out = ok("events", "--config", str(bot.config), "--limit", "200", "--actor", "exits")
    assert "started exits (under pipeline)" in out
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **NO_RUNTIME_DIR)
    follower = subprocess.Popen(
        [sys.executable, "-m", "supervisor.host.cli", "events", "--config", str(bot.config),
         "--limit", "0", "--follow", "--actor", "exits", "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stderr is not None and follower.stdout is not None
        assert "following events" in follower.stderr.readline()  # subscribed from here on
        ok("restart", "exits", "--config", str(bot.config))
        seen = []
        for line in follower.stdout:  # the pipe blocks until a line comes (or the bot ends)
            event = json.loads(line)
            seen.append((event["kind"], event["actor"]))
            if event["kind"] == "restarted":
                break
        assert seen == [("stopped", "exits"), ("restarted", "exits")]
    finally:
        follower.terminate()
        follower.wait(10)


def test_after_sigterm_the_socket_is_gone_and_status_exits_3(bot: Bot) -> None:
    bot.process.signal(signal.SIGTERM)
    assert bot.process.wait() == 0
    assert not bot.socket.exists()
    down = botvisor("status", "--config", str(bot.config))
    assert down.returncode == 3 and "not running" in down.stderr
    as_data = botvisor("status", "--json", "--config", str(bot.config))
    assert as_data.returncode == 3
    assert json.loads(as_data.stdout) == {
        "ok": False, "code": 3,
        "error": f"the bot is not running (no control socket at {bot.socket})"}
