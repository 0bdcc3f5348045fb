"""Config loading: every bad key is named with its reason; good files build the tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.error_handler import Directive, Severity
from supervisor.host.config import ConfigError, load_config, parse_config
from supervisor.spec import RestartType, Strategy

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid() -> None:
    config, spec = load_config(REPO / "config.yaml")
    assert config.runtime.name == "root"
    assert "events" in spec.all_ids()


def _problems(raw: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "test.yaml")
    return dict(info.value.problems)


def test_unknown_keys_and_bad_values_are_named_by_path() -> None:
    problems = _problems(
        {
            "runtime": {"ask_timeout": 0},
            "tree": {
                "strategy": "one_for_some",
                "children": [
                    {"name": "a", "actor": "supervisor.host.event_log:EventLog", "restart": "often"}
                ],
            },
            "typo": 1,
        }
    )
    assert "greater than 0" in problems["runtime.ask_timeout"]
    assert "one_for_one" in problems["tree.strategy"]
    assert "permanent" in problems["tree.children[0].restart"]
    assert problems["typo"] == "unknown key"


def test_actor_settings_are_validated_by_the_actor_model() -> None:
    problems = _problems(
        {
            "tree": {
                "children": [
                    {
                        "name": "events",
                        "actor": "supervisor.host.event_log:EventLog",
                        "settings": {"min_severity": "loud", "colour": "red"},
                    }
                ]
            }
        }
    )
    assert "tree.children[0].settings.min_severity" in problems
    assert problems["tree.children[0].settings.colour"] == "unknown key"


def test_import_errors_duplicates_and_shape_errors() -> None:
    problems = _problems(
        {
            "tree": {
                "children": [
                    {"name": "a", "actor": "no.such.module:Thing"},
                    {"name": "b", "actor": "supervisor.host.config:ConfigError"},
                    {"name": "c"},
                    {"name": "a", "actor": "tests.support.fixture_actors:CrashOnStart"},
                    {"name": "d", "actor": "nocolon"},
                ]
            }
        }
    )
    assert "cannot import 'no.such.module'" in problems["tree.children[0].actor"]
    assert "not a SupervisedActor" in problems["tree.children[1].actor"]
    assert "exactly one of" in problems["tree.children[2]"]
    assert "already used" in problems["tree.children[3].name"]
    assert "import path" in problems["tree.children[4].actor"]


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.yaml")
    assert "(file)" in str(missing.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tree: [1,\n")
    with pytest.raises(ConfigError) as syntax:
        load_config(bad)
    assert "line" in syntax.value.problems[0][0]
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError):
        load_config(scalar)


def test_nested_tree_and_error_rules_build_specs() -> None:
    config, spec = parse_config(
        {
            "errors": {"KeyError": {"severity": "critical", "directive": "escalate"}},
            "tree": {
                "strategy": "one_for_all",
                "intensity": {"max_restarts": 2, "within_seconds": 5},
                "children": [
                    {
                        "name": "pipeline",
                        "strategy": "rest_for_one",
                        "children": [
                            {
                                "name": "tick",
                                "actor": "tests.support.fixture_actors:Ticker",
                                "restart": "transient",
                                "settings": {"interval": 0.5},
                                "fallback": {
                                    "actor": "tests.support.fixture_actors:Ticker",
                                    "after": 2,
                                },
                            }
                        ],
                    }
                ],
            },
        }
    )
    assert spec.strategy is Strategy.ONE_FOR_ALL
    assert spec.intensity.max_restarts == 2
    pipeline = spec.children[0]
    assert pipeline.supervisor is not None
    assert pipeline.supervisor.strategy is Strategy.REST_FOR_ONE
    tick = pipeline.supervisor.children[0]
    assert tick.restart is RestartType.TRANSIENT
    assert tick.fallback is not None and tick.fallback.after == 2
    assert tick.factory is not None
    actor = tick.factory()
    assert actor.interval == 0.5  # type: ignore[attr-defined]
    decision = config.error_handler().classify(KeyError("x"))
    assert (decision.severity, decision.directive) == (Severity.CRITICAL, Directive.ESCALATE)


def test_health_thresholds_are_validated_and_reach_the_watchdog() -> None:
    from supervisor.clock import ManualClock
    from supervisor.host.cli import _parser, _services
    from supervisor.host.sd_notify import SystemdService
    from supervisor.host.session import RunSession
    from supervisor.runtime import Runtime

    with pytest.raises(ConfigError) as err:
        parse_config({"health": {"max_restarts": -1, "down_grace": "soon"}})
    keys = {key for key, _ in err.value.problems}
    assert keys == {"health.max_restarts", "health.down_grace"}

    config, spec = parse_config({"health": {"down_grace": 7, "max_restarts": 2,
                                            "restart_window": 42}})
    session = RunSession(config, spec, Runtime(clock=ManualClock()),
                         config_path=Path("bot.yaml"))
    args = _parser().parse_args(["run"])
    systemd = [s for s in _services(session, args) if isinstance(s, SystemdService)]
    assert len(systemd) == 1
    policy = systemd[0].policy
    assert policy is not None
    assert (policy.down_grace, policy.max_restarts, policy.restart_window) == (7, 2, 42)


def test_the_config_module_keeps_its_names_after_the_split() -> None:
    from supervisor.host import (
        config,
        config_build,
        config_errors,
        config_imports,
        config_models,
        config_yaml,
    )

    names = ["ACTOR_PACKAGES_GROUP", "MAX_DEPTH", "MAX_VALUES", "BotConfig", "ConfigError",
             "ControlModel", "Imports", "NodeModel", "build_tree", "load_config",
             "parse_config", "trusted_packages"]
    assert set(names) <= set(config.__all__)
    homes = (config_build, config_errors, config_imports, config_models, config_yaml)
    for name in config.__all__:
        value = getattr(config, name)
        if name not in ("load_config", "parse_config"):  # the two the module defines itself
            assert any(getattr(home, name, None) is value for home in homes), name
