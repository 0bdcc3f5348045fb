"""The wiring's hooks: a settings object judges the settings of the peers it names.

After the peer checks, the host calls a settings' ``check_peers`` (refusals) and, for
``botvisor run``, ``peer_warnings`` (logged at every start) with a view of each named peer:
its tree path, its settings and its fallback's. The host only calls them; a hook that
raises or answers nonsense is a problem naming the settings, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict

from supervisor import SupervisedActor
from supervisor.host.config import ConfigError, parse_config
from supervisor.host.wiring import Configured, PeerView, check_wiring, wiring_warnings
from supervisor.peers import Peer
from supervisor.spec import ChildSpec, Fallback, SupervisorSpec

pytestmark = pytest.mark.unit


class Source(SupervisedActor):
    """A peer with settings of its own (``colour``), which a Judge has opinions about."""

    publishes = int

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        colour: str = "red"

    def __init__(self, settings: Source.Settings) -> None:
        super().__init__()
        self.settings = settings


class Bare(SupervisedActor):
    """A peer built without settings."""

    publishes = int


class Judge(SupervisedActor):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        source: Annotated[str, Peer(publishes=int)] = "source"
        others: Annotated[tuple[str, ...], Peer(publishes=int)] = ()
        wants: str = "red"
        behaviour: str = "judge"  # judge | raise | nonsense

        def check_peers(self, peers: Mapping[str, PeerView]) -> list[tuple[str, str]]:
            if self.behaviour == "raise":
                raise KeyError("colour")
            if self.behaviour == "nonsense":
                return "no"  # type: ignore[return-value]
            return [(key, f"{view.path} is {_colour(view)}, not {self.wants}")
                    for key, peer in peers.items() for view in peer.incarnations()
                    if _colour(view) != self.wants]

        def peer_warnings(self, peers: Mapping[str, PeerView]) -> list[tuple[str, str]]:
            return [("wants", f"{key} seen at {view.path}") for key, view in peers.items()]

    def __init__(self, settings: Judge.Settings) -> None:
        super().__init__()
        self.settings = settings


def _colour(view: PeerView) -> str:
    return "unknown" if view.settings is None else str(view.settings.colour)


def judge(**settings: Any) -> ChildSpec:
    return ChildSpec(id="judge", factory=Configured(Judge, Judge.Settings(**settings)))


def source(name: str = "source", colour: str = "red", fallback: str | None = None
           ) -> ChildSpec:
    spare = None if fallback is None else Fallback(
        Configured(Source, Source.Settings(colour=fallback)))
    return ChildSpec(id=name, factory=Configured(Source, Source.Settings(colour=colour)),
                     fallback=spare)


def group(*children: ChildSpec) -> ChildSpec:
    return ChildSpec(id="group", supervisor=SupervisorSpec(children=children))


def tree(*children: ChildSpec) -> SupervisorSpec:
    return SupervisorSpec(children=children)


def test_a_hook_sees_its_peers_settings_and_paths_and_refuses_by_key() -> None:
    assert check_wiring(tree(judge(), group(source()))) == []
    assert check_wiring(tree(judge(wants="blue"), group(source()))) == [
        ("tree > judge > settings.source", "tree > group > source is red, not blue")]


def test_each_name_of_a_tuple_and_each_fallback_is_a_view() -> None:
    found = check_wiring(tree(judge(others=("source", "other")), source(fallback="green"),
                              source("other", colour="blue")))
    assert found == [
        ("tree > judge > settings.source", "tree > source (fallback) is green, not red"),
        ("tree > judge > settings.others[0]", "tree > source (fallback) is green, not red"),
        ("tree > judge > settings.others[1]", "tree > other is blue, not red"),
    ]


def test_a_peer_built_without_settings_is_seen_without_them() -> None:
    bare = ChildSpec(id="source", factory=Bare)
    assert check_wiring(tree(judge(), bare)) == [
        ("tree > judge > settings.source", "tree > source is unknown, not red")]


def test_a_fallbacks_settings_are_asked_too() -> None:
    spec = ChildSpec(id="judge", factory=Configured(Judge, Judge.Settings()),
                     fallback=Fallback(Configured(Judge, Judge.Settings(wants="blue"))))
    assert check_wiring(tree(spec, source())) == [
        ("tree > judge > fallback.settings.source", "tree > source is red, not blue")]


def test_the_hook_is_not_asked_while_the_peers_themselves_are_wrong() -> None:
    assert check_wiring(tree(judge(source="nowhere", behaviour="raise"))) == [
        ("tree > judge > settings.source",
         "no actor named 'nowhere' in the tree (it must publish int)")]


def test_a_hook_that_raises_or_answers_nonsense_is_a_problem_not_a_traceback() -> None:
    assert check_wiring(tree(judge(behaviour="raise"), source())) == [
        ("tree > judge > settings",
         "Judge.Settings.check_peers failed: KeyError: 'colour'")]
    assert check_wiring(tree(judge(behaviour="nonsense"), source())) == [
        ("tree > judge > settings",
         "Judge.Settings.check_peers failed: it returned no, not a list of (key, reason) "
         "pairs")]


def test_warnings_come_from_peer_warnings_and_do_not_refuse() -> None:
    spec = tree(judge(others=("other",)), group(source(), source("other")))
    assert check_wiring(spec) == []
    assert wiring_warnings(spec) == [
        ("tree > judge > settings.wants", "source seen at tree > group > source"),
        ("tree > judge > settings.wants", "others[0] seen at tree > group > other")]
    assert wiring_warnings(tree(source())) == []  # no hooks: nothing to say


def test_a_config_file_is_refused_with_the_hooks_reason() -> None:
    children: list[dict[str, Any]] = [
        {"name": "judge", "actor": "tests.host.test_wiring_hooks:Judge",
         "settings": {"wants": "blue"}},
        {"name": "source", "actor": "tests.host.test_wiring_hooks:Source"}]
    with pytest.raises(ConfigError) as info:
        parse_config({"tree": {"children": children}})
    assert info.value.problems == [("tree > judge > settings.source",
                                    "tree > source is red, not blue")]
    children[1]["settings"] = {"colour": "blue"}
    parse_config({"tree": {"children": children}})
