"""`botvisor` as a real process: start, signals, duration, bad config, root escalation."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import REPO, BotProcess


def _shipped(tmp_path: Path) -> Path:
    """A copy of the shipped config in ``tmp_path``: run from there, its relative state/
    paths and its control socket land in the test's directory, not the repository's."""
    config = tmp_path / "config.yaml"
    shutil.copy(REPO / "config.yaml", config)
    return config


def test_run_shipped_config_stops_cleanly_on_sigterm(bot_process: type[BotProcess],
                                                     tmp_path: Path) -> None:
    bot = bot_process("run", "--config", str(_shipped(tmp_path)), cwd=tmp_path)
    bot.wait_for_line(r"tree is up")
    bot.signal(signal.SIGTERM)
    assert bot.wait() == 0
    bot.wait_for_line(r"received SIGTERM")
    bot.wait_for_line(r"stopped cleanly")


def test_run_stops_on_sigint_too(bot_process: type[BotProcess], tmp_path: Path) -> None:
    bot = bot_process("run", "--config", str(_shipped(tmp_path)), cwd=tmp_path)
    bot.wait_for_line(r"tree is up")
    bot.signal(signal.SIGINT)
    assert bot.wait() == 0
    bot.wait_for_line(r"received SIGINT")


def test_run_with_duration_stops_by_itself(bot_process: type[BotProcess], tmp_path: Path) -> None:
    bot = bot_process("run", "--config", str(_shipped(tmp_path)), "--duration", "0.5",
                      cwd=tmp_path)
    assert bot.wait() == 0
    bot.wait_for_line(r"stopped cleanly")


def test_bad_config_exits_2_without_traceback(
    bot_process: type[BotProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("tree:\n  strategy: sideways\n")
    bot = bot_process("run", "--config", str(cfg))
    assert bot.wait() == 2
    text = "\n".join(bot.lines)
    assert "tree.strategy" in text
    assert "Traceback" not in text


def test_check_config(bot_process: type[BotProcess], tmp_path: Path) -> None:
    good = bot_process("check-config", str(REPO / "config.yaml"))
    assert good.wait() == 0
    assert "ok" in good.stdout()
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("runtime: {log_level: chatty}\n")
    bad = bot_process("check-config", str(cfg))
    assert bad.wait() == 2
    assert any("runtime.log_level" in line for line in bad.lines)


@pytest.mark.parametrize("layout", ["root", "nested"])
def test_root_escalation_exits_non_zero(
    bot_process: type[BotProcess], tmp_path: Path, layout: str
) -> None:
    crasher = {"name": "crasher", "actor": "tests.support.fixture_actors:CrashOnStart"}
    if layout == "root":
        children = f"[{{name: crasher, actor: '{crasher['actor']}'}}]"
    else:
        children = (
            "[{name: inner, intensity: {max_restarts: 1, within_seconds: 60}, "
            f"backoff: {{initial: 0, jitter: 0}}, children: [{{name: crasher, "
            f"actor: '{crasher['actor']}'}}]}}]"
        )
    cfg = tmp_path / "crash.yaml"
    cfg.write_text(
        "tree:\n"
        "  intensity: {max_restarts: 2, within_seconds: 60}\n"
        "  backoff: {initial: 0, jitter: 0}\n"
        f"  children: {children}\n"
    )
    bot = bot_process("run", "--config", str(cfg), cwd=tmp_path)  # its state/ there
    assert bot.wait() == 1
    bot.wait_for_line(r"exiting with status 1")
    assert any("RestartIntensityExceeded" in line for line in bot.lines)
