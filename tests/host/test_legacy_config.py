"""The original bot's config keys carry over: each lands where its meaning now lives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from actors.risk.breaker import BreakerActor
from actors.risk.contract import ApiResult, GetBreakerStatus, OrderIntent
from supervisor import Runtime
from supervisor.host.config import ConfigError, parse_config
from supervisor.spec import ChildSpec, SupervisorSpec
from tests.support.breaker_helpers import breaker_settings, gate, start_breaker

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = {
    "circuit_breaker": {
        "failure_threshold": 3,
        "max_drawdown_percent": 7.5,
        "max_daily_loss_percent": 12.0,
    },
    "position_sync_interval": 9,
    "max_conflict_history": 42,
    "max_error_history": 777,
    "enable_notifications": False,
}


def shipped() -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert isinstance(raw, dict)
    return raw


def without(raw: dict[str, Any]) -> None:
    """Drop the settings the shipped file gives for the keys under test."""
    def walk(node: dict[str, Any]) -> None:
        for child in node.get("children") or []:
            settings = child.get("settings", {})
            if child.get("actor") == "actors.risk.breaker:BreakerActor":
                for key in ("drawdown", "daily_loss", "api_errors"):
                    settings.pop(key, None)
            if child.get("actor") == "actors.portfolio.positions:PositionActor":
                settings.pop("reconcile_interval", None)
                settings.pop("max_conflict_history", None)
            if child.get("actor") == "actors.alerts.alerts:AlertsActor":
                settings.pop("enabled", None)
            walk(child)
    walk(raw["tree"])
    raw.get("runtime", {}).pop("event_history", None)


def find(spec: SupervisorSpec, name: str) -> ChildSpec:
    for child in spec.children:
        if child.id == name:
            return child
        if child.supervisor is not None:
            try:
                return find(child.supervisor, name)
            except KeyError:
                pass
    raise KeyError(name)


def test_the_original_keys_land_in_their_new_homes() -> None:
    raw = shipped()
    without(raw)
    raw.update(ORIGINAL)
    config, spec = parse_config(raw)
    breaker = find(spec, "breaker").settings
    assert breaker["api_errors"]["max_consecutive"] == 3
    assert breaker["drawdown"]["max_percent"] == 7.5
    assert breaker["daily_loss"]["max_percent"] == 12.0
    positions = find(spec, "positions").settings
    assert positions["reconcile_interval"] == 9
    assert positions["max_conflict_history"] == 42
    assert find(spec, "alerts").settings["enabled"] is False
    assert config.runtime.event_history == 777
    assert any("circuit_breaker.failure_threshold" in n for n in config.notes)


def test_the_same_value_given_both_ways_is_fine_but_different_values_are_an_error() -> None:
    raw = shipped()  # the shipped file already says drawdown.max_percent: 10.0
    raw["circuit_breaker"] = {"max_drawdown_percent": 10.0}
    parse_config(raw)
    raw["circuit_breaker"] = {"max_drawdown_percent": 20.0}
    try:
        parse_config(raw, "bot.yaml")
    except ConfigError as exc:
        assert exc.problems[0][0] == "circuit_breaker.max_drawdown_percent"
        assert "drawdown.max_percent" in exc.problems[0][1]
        assert "20.0" in exc.problems[0][1] and "10.0" in exc.problems[0][1]
    else:
        raise AssertionError("conflicting values were accepted")


def test_unknown_or_homeless_old_keys_are_named(tmp_path: Path) -> None:
    raw = shipped()
    raw["circuit_breaker"] = {"failure_treshold": 5}  # a typo
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "supervisor.host.cli", "check-config", str(path)],
                          check=False, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert "circuit_breaker.failure_treshold: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr

    raw = {"tree": {"children": []}, "enable_notifications": True}
    try:
        parse_config(raw)
    except ConfigError as exc:
        assert exc.problems == [
            ("enable_notifications",
             "there is no actors.alerts.alerts:AlertsActor in tree to apply it to")
        ]
    else:
        raise AssertionError("a key with nowhere to go was accepted")


def test_failure_threshold_keeps_its_meaning(tmp_path: Path) -> None:
    """failure_threshold consecutive failed exchange calls open the breaker; fewer do not."""
    raw = shipped()
    without(raw)
    raw.update(ORIGINAL)
    _, spec = parse_config(raw)
    api = find(spec, "breaker").settings["api_errors"]
    settings = breaker_settings(tmp_path, api_errors=api)
    assert isinstance(settings, BreakerActor.Settings)
    rt = start_breaker(settings)
    try:
        opening = OrderIntent("BTC/USDT", reduces_exposure=False)
        for _ in range(2):
            rt.tell("breaker", ApiResult(False, "place_order"))
        rt.tell("breaker", ApiResult(True, "place_order"))  # breaks the run
        for _ in range(2):
            rt.tell("breaker", ApiResult(False, "place_order"))
        _settle(rt)
        assert gate(rt).check(opening).allowed, "2 in a row must not trip a threshold of 3"
        rt.tell("breaker", ApiResult(False, "place_order"))
        _settle(rt)
        assert not gate(rt).check(opening).allowed
    finally:
        rt.stop()


def _settle(rt: Runtime) -> None:
    """Wait until the breaker has handled everything told so far (its mailbox is FIFO)."""
    rt.ask("breaker", GetBreakerStatus(), timeout=5)
