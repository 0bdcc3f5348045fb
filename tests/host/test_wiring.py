"""Wiring checked at start: every peer an actor's settings name is in the tree, of its kind.

The shipped config passes; a typo in a peer's name or a peer of the wrong kind is refused
by ``botvisor check-config`` and ``botvisor run`` (exit 2, the key path named, nothing
started, no state written) and by a reload; the check itself on small specs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from supervisor import SupervisedActor
from supervisor.events import EventKind, EventRecorder
from supervisor.host.config import ConfigError, load_config, parse_config
from supervisor.host.reload import ConfigReloader
from supervisor.host.session import RunSession
from supervisor.host.wiring import Configured, check_wiring
from supervisor.peers import Peer
from supervisor.runtime import Runtime
from supervisor.spec import ChildSpec, Fallback, SupervisorSpec
from tests.conftest import REPO, BotProcess

WAIT = 10.0
EVALUATOR_KEY = "tree > pipeline > evaluator > settings.executor"


# -- small actors: a sender naming its peers, and the kinds of peer it may name ------------------
@dataclass(frozen=True)
class Ping:
    """What the sender tells its ``target``."""


@dataclass(frozen=True)
class LoudPing(Ping):
    """A Ping of a kind of its own (accepted wherever a Ping is)."""


@dataclass(frozen=True)
class Snapshot:
    """What the sender reads from its ``watched`` peer."""


@dataclass(frozen=True)
class FineSnapshot(Snapshot):
    """A Snapshot with more in it (it still is a Snapshot)."""


class Sender(SupervisedActor):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        target: Annotated[str, Peer(accepts=(Ping,))] = "target"
        loud: Annotated[str | None, Peer(accepts=(LoudPing,))] = None
        watched: Annotated[str | None, Peer(publishes=Snapshot)] = None
        fanout: Annotated[tuple[str, ...], Peer(accepts=(Ping,))] = ()
        label: str = "not a peer"  # a plain string setting: never looked up

    def __init__(self, settings: Sender.Settings) -> None:
        super().__init__()
        self.settings = settings

    def on_receive(self, message: Any) -> Any:
        return self.settings.target


class Pinged(SupervisedActor):
    accepts: ClassVar[tuple[type, ...]] = (Ping,)

    def on_receive(self, message: Any) -> Any:
        return "pinged"


class Shown(SupervisedActor):
    publishes: ClassVar[type] = FineSnapshot


class Other(SupervisedActor):
    accepts: ClassVar[tuple[type, ...]] = (Snapshot,)
    publishes: ClassVar[type] = Ping


class Undeclared(SupervisedActor):
    """Declares nothing: a peer named by it is taken on its name."""


def sender(name: str = "a", **settings: Any) -> ChildSpec:
    return ChildSpec(id=name, factory=Configured(Sender, Sender.Settings(**settings)))


def worker(name: str, actor: type[SupervisedActor], fallback: type | None = None) -> ChildSpec:
    return ChildSpec(id=name, factory=actor,
                     fallback=Fallback(fallback) if fallback is not None else None)


def problems(*children: ChildSpec) -> dict[str, str]:
    return dict(check_wiring(SupervisorSpec(children=children)))


# -- the check on small specs -------------------------------------------------------------------
def test_peers_of_the_right_kind_pass() -> None:
    assert problems(sender(target="b", loud="b", watched="c", fanout=("b", "u")),
                    worker("b", Pinged), worker("c", Shown), worker("u", Undeclared)) == {}


def test_a_missing_peer_is_named_with_its_key_path_and_what_it_must_be() -> None:
    found = problems(sender(target="nobody"), worker("b", Pinged))
    assert found == {"tree > a > settings.target":
                     "no actor named 'nobody' in the tree (it must accept Ping)"}


def test_an_optional_peer_set_to_none_is_fine_and_plain_strings_are_not_peers() -> None:
    assert problems(sender(target="b", loud=None, watched=None, label="b2"),
                    worker("b", Pinged)) == {}


def test_each_name_of_a_tuple_is_checked() -> None:
    found = problems(sender(target="b", fanout=("b", "gone")), worker("b", Pinged))
    assert list(found) == ["tree > a > settings.fanout[1]"]
    assert "no actor named 'gone'" in found["tree > a > settings.fanout[1]"]


def test_a_peer_of_the_wrong_kind_is_refused() -> None:
    found = problems(sender(target="c"), worker("c", Shown))
    assert found == {"tree > a > settings.target":
                     "'c' is tests.host.test_wiring:Shown, which does not accept Ping"}
    # an actor that accepts Ping accepts a LoudPing (a subclass) too; one that does not, not
    assert problems(sender(target="b", loud="b"), worker("b", Pinged)) == {}
    loud_only = problems(sender(target="b", loud="x"), worker("b", Pinged), worker("x", Other))
    assert "does not accept LoudPing" in loud_only["tree > a > settings.loud"]


def test_a_peer_read_with_peek_must_publish_the_snapshot() -> None:
    found = problems(sender(target="b", watched="b"), worker("b", Pinged))
    assert found == {"tree > a > settings.watched":
                     "'b' is tests.host.test_wiring:Pinged, which publishes nothing, "
                     "not Snapshot"}
    wrong = problems(sender(target="b", watched="o"), worker("b", Pinged), worker("o", Other))
    assert "publishes Ping, not Snapshot" in wrong["tree > a > settings.watched"]


def test_a_supervisor_is_not_a_peer() -> None:
    group = ChildSpec(id="group", supervisor=SupervisorSpec(children=(worker("b", Pinged),)))
    found = problems(sender(target="group"), group)
    assert found["tree > a > settings.target"].startswith("'group' is a supervisor")


def test_nested_workers_and_fallbacks_are_checked_too() -> None:
    nested = ChildSpec(id="group", supervisor=SupervisorSpec(children=(
        sender("inner", target="missing"),)))
    assert list(problems(nested)) == ["tree > group > inner > settings.target"]
    # a worker's fallback takes its messages while it runs: it must be of the kind too
    found = problems(sender(target="b"), worker("b", Pinged, fallback=Shown))
    assert found["tree > a > settings.target"] == (
        "the fallback of 'b' is tests.host.test_wiring:Shown, which does not accept Ping")
    # and a fallback's own settings name peers like the primary's
    with_fallback = ChildSpec(id="a", factory=Configured(Sender, Sender.Settings(target="b")),
                              fallback=Fallback(Configured(Sender, Sender.Settings(
                                  target="nowhere"))))
    found = problems(with_fallback, worker("b", Pinged))
    assert list(found) == ["tree > a > fallback.settings.target"]


def test_a_peer_marker_says_what_the_peer_must_be() -> None:
    with pytest.raises(ValueError, match="accepts or publishes"):
        Peer()
    assert Peer(accepts=(Ping, Snapshot), publishes=Snapshot).describe() == (
        "accept Ping, Snapshot; publish Snapshot")


def test_parse_config_refuses_a_bad_peer_with_the_others_problems() -> None:
    tree = {"children": [
        {"name": "a", "actor": "tests.host.test_wiring:Sender", "settings": {"target": "bee"}},
        {"name": "b", "actor": "tests.host.test_wiring:Pinged"},
    ]}
    with pytest.raises(ConfigError) as info:
        parse_config({"tree": tree})
    assert info.value.problems == [("tree > a > settings.target",
                                    "no actor named 'bee' in the tree (it must accept Ping)")]
    tree["children"][0]["settings"] = {"target": "b"}
    parse_config({"tree": tree})


# -- the shipped config, and the typo, through the real command -------------------------------
def test_the_shipped_config_is_wired_soundly() -> None:
    _, spec = load_config(REPO / "config.yaml")
    assert check_wiring(spec) == []
    configured = [c for c in _workers(spec) if isinstance(c.factory, Configured)]
    assert len(configured) >= 10  # the check saw the trading actors' settings


def _workers(spec: SupervisorSpec) -> Iterator[ChildSpec]:
    for child in spec.children:
        if child.supervisor is not None:
            yield from _workers(child.supervisor)
        else:
            yield child


def _shipped_with_executor(tmp_path: Path, executor: str) -> Path:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    anchor = "          actor: actors.strategies.evaluator:EvaluatorActor\n"
    settings = "          settings:\n"
    at = text.index(settings, text.index(anchor)) + len(settings)
    path = tmp_path / "config.yaml"
    path.write_text(text[:at] + f"            executor: {executor}\n" + text[at:],
                    encoding="utf-8")
    return path


def test_check_config_refuses_the_typo(bot_process: type[BotProcess], tmp_path: Path) -> None:
    path = _shipped_with_executor(tmp_path, "exectuor")
    bot = bot_process("check-config", str(path), cwd=tmp_path)
    assert bot.wait() == 2
    text = "\n".join(bot.lines)
    assert (f"{EVALUATOR_KEY}: no actor named 'exectuor' in the tree (it must accept "
            "Signal)") in text
    assert "Traceback" not in text
    assert "ok" not in bot.stdout()


def test_run_refuses_the_typo_before_anything_starts(bot_process: type[BotProcess],
                                                    tmp_path: Path) -> None:
    path = _shipped_with_executor(tmp_path, "exectuor")
    bot = bot_process("run", "--config", str(path), "--duration", "5", cwd=tmp_path)
    assert bot.wait() == 2
    text = "\n".join(bot.lines)
    assert f"{EVALUATOR_KEY}: no actor named 'exectuor'" in text
    assert "Traceback" not in text
    assert "tree is up" not in text and "starting tree" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no state at all


def test_a_peer_of_the_wrong_kind_exits_2(bot_process: type[BotProcess], tmp_path: Path) -> None:
    path = _shipped_with_executor(tmp_path, "alerts")  # the alerts actor takes no Signal
    bot = bot_process("check-config", str(path), cwd=tmp_path)
    assert bot.wait() == 2
    text = "\n".join(bot.lines)
    assert (f"{EVALUATOR_KEY}: 'alerts' is actors.alerts.alerts:AlertsActor, which does not "
            "accept Signal") in text
    assert "Traceback" not in text
    good = bot_process("check-config", str(_shipped_with_executor(tmp_path, "executor")),
                       cwd=tmp_path)
    assert good.wait() == 0


# -- a reload with a bad peer changes nothing ---------------------------------------------------
def _two_actor_config(target: str) -> str:
    return f"""
tree:
  children:
    - name: a
      actor: tests.host.test_wiring:Sender
      settings: {{target: {target}}}
    - name: b
      actor: tests.host.test_wiring:Pinged
"""


def test_a_reload_naming_a_missing_peer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(_two_actor_config("b"))
    config, spec = load_config(path)
    runtime = Runtime(monitor_interval=0)
    session = RunSession(config, spec, runtime, config_path=path,
                         reloader=ConfigReloader(path))
    code: Future[int] = Future()
    recorder = EventRecorder(runtime.events)
    thread = threading.Thread(target=lambda: code.set_result(session.run()))
    thread.start()
    try:
        recorder.wait_for(EventKind.STARTED, "b", timeout=WAIT)
        path.write_text(_two_actor_config("bb"))
        applied, pending = session.request_reload().result(timeout=WAIT)
        assert applied == []
        assert len(pending) == 1 and pending[0].startswith("reload failed: ")
        assert "tree > a > settings.target: no actor named 'bb'" in pending[0]
        assert runtime.ask("a", "target?") == "b"  # still the old settings
    finally:
        session.request_stop("test over")
        assert code.result(timeout=WAIT) == 0
        thread.join(WAIT)
