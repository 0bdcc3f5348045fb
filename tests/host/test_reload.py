"""Reloading the config of a running tree: what can change live does, the rest is named."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from supervisor.events import EventKind, EventRecorder
from supervisor.host.config import BotConfig, load_config, parse_config
from supervisor.host.reload import ConfigReloader, plan_reload
from supervisor.host.session import RunSession
from supervisor.runtime import Runtime
from tests.conftest import BotProcess

WAIT = 10.0
Running = tuple[Path, RunSession, Runtime]


def config_text(label: str = "one", strategy: str = "one_for_one", extra: str = "",
                level: str = "info") -> str:
    return f"""
runtime: {{log_level: {level}}}
tree:
  intensity: {{max_restarts: 1, within_seconds: 60}}
  children:
    - name: group
      strategy: {strategy}
      intensity: {{max_restarts: 0, within_seconds: 60}}   # any counted restart escalates
      children:
        - name: a1
          actor: tests.support.fixture_actors:Echo
          settings: {{label: {label}}}
        - name: a2
          actor: tests.support.fixture_actors:Echo
          settings: {{label: steady}}
{extra}
"""


def test_plan_separates_live_changes_from_those_needing_a_restart() -> None:
    import yaml

    def cfg(text: str) -> BotConfig:
        return parse_config(yaml.safe_load(text))[0]

    base = cfg(config_text())
    plan = plan_reload(base, cfg(config_text(label="two", level="debug")))
    assert plan.settings == ("a1",)
    assert plan.runtime_keys == ("runtime.log_level",)
    assert plan.needs_restart == ()
    plan = plan_reload(base, cfg(config_text(strategy="one_for_all")))
    assert plan.settings == ()
    assert plan.needs_restart == ("tree.children[0].strategy",)
    more = "        - {name: a3, actor: 'tests.support.fixture_actors:Echo'}"
    plan = plan_reload(base, cfg(config_text(extra=more)))
    assert len(plan.needs_restart) == 1
    assert "children added, removed or reordered" in plan.needs_restart[0]
    assert plan_reload(base, cfg(config_text())) == plan_reload(base, base)
    plan = plan_reload(base, cfg(config_text() + "metrics: {enabled: true}\n"))
    assert plan.needs_restart == ("metrics",)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    path = tmp_path / "bot.yaml"
    path.write_text(config_text())
    config, spec = load_config(path)
    runtime = Runtime(monitor_interval=0)
    session = RunSession(config, spec, runtime, config_path=path,
                         reloader=ConfigReloader(path))
    code: Future[int] = Future()
    thread = threading.Thread(target=lambda: code.set_result(session.run()))
    recorder = EventRecorder(runtime.events)
    thread.start()
    recorder.wait_for(EventKind.STARTED, "a2", timeout=WAIT)
    yield path, session, runtime
    session.request_stop("test over")
    assert code.result(timeout=WAIT) == 0
    thread.join(WAIT)


def test_changed_settings_restart_that_worker_only_and_do_not_count(running: Running) -> None:
    path, session, runtime = running
    assert runtime.ask("a1", "who") == ("one", 1)
    path.write_text(config_text(label="two", strategy="one_for_all"))
    applied, pending = session.request_reload().result(timeout=WAIT)
    assert applied == ["a1.settings"]
    assert pending == ["tree.children[0].strategy"]
    assert runtime.ask("a1", "who") == ("two", 2)
    assert runtime.ask("a2", "who") == ("steady", 1)  # untouched
    assert runtime.exit_code is None  # group allows no restart, and nothing escalated
    assert runtime.cell("group").incarnation == 1

    # The same file again: nothing new to apply, the pending change is still named.
    applied, pending = session.request_reload().result(timeout=WAIT)
    assert applied == []
    assert pending == ["tree.children[0].strategy"]
    assert runtime.ask("a1", "who") == ("two", 2)

    # A supervisor restart keeps the reloaded settings.
    runtime.restart_child("group")
    assert runtime.ask("a1", "who")[0] == "two"


def test_a_bad_new_config_changes_nothing(running: Running) -> None:
    path, session, runtime = running
    path.write_text(config_text(label="[unclosed"))
    applied, pending = session.request_reload().result(timeout=WAIT)
    assert applied == []
    assert len(pending) == 1 and pending[0].startswith("reload failed: ")
    assert runtime.ask("a1", "who") == ("one", 1)
    path.write_text(config_text().replace("label: one", "label: one, colour: red"))
    applied, pending = session.request_reload().result(timeout=WAIT)
    assert applied == [] and "colour" in pending[0]
    assert runtime.ask("a1", "who") == ("one", 1)


def test_sighup_reloads_a_running_bot(bot_process: type[BotProcess], tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(config_text())
    bot = bot_process("run", "--config", str(path), cwd=tmp_path)
    bot.wait_for_line(r"tree is up")
    path.write_text(config_text(label="two", strategy="one_for_all"))
    bot.signal(signal.SIGHUP)
    bot.wait_for_line(r"reload: applied a1\.settings")
    bot.wait_for_line(r"reload: tree\.children\[0\]\.strategy changed; it takes effect after a "
                      r"restart")
    bot.signal(signal.SIGTERM)
    assert bot.wait() == 0


def test_json_logs_and_a_live_switch_to_them(bot_process: type[BotProcess],
                                              tmp_path: Path) -> None:
    """log_format json: one JSON object per line on stderr; a reload switches it live."""
    import json

    path = tmp_path / "bot.yaml"
    path.write_text(config_text())
    bot = bot_process("run", "--config", str(path), cwd=tmp_path)
    bot.wait_for_line(r"tree is up")
    path.write_text(config_text().replace("runtime: {log_level: info}",
                                          "runtime: {log_level: info, log_format: json}"))
    bot.signal(signal.SIGHUP)
    line = bot.wait_for_line(r'^\{.*"reload: applied runtime\.log_format"')
    record = json.loads(line)
    assert record["level"] == "info" and record["logger"] == "botvisor"
    assert set(record) >= {"ts", "time", "level", "logger", "thread", "msg"}
    bot.signal(signal.SIGTERM)
    assert bot.wait() == 0
    stopped = [json.loads(x) for x in bot.lines if x.startswith("{") and "stopped cleanly" in x]
    assert stopped and stopped[0]["msg"] == "stopped cleanly"
