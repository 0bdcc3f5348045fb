"""The exits actor: what it publishes for a restarted instance, and that a restarted
instance keeps the trailing stop's high-water mark.

Real actors: the exits actor; a stand-in for the position actor that publishes the
snapshots the test gives it; a stand-in for the executor that keeps the exit requests.
"""

from __future__ import annotations

from pykka.messages import ProxyGetAttr

from actors.execution.contract import ExitRequest
from actors.execution.exits import ExitsActor, ExitWatches
from actors.market.contract import Bar, Bars
from supervisor import ChildSpec, Runtime, SupervisorSpec
from tests.support.standins import Collector, Ledger, Publish, snapshot


def _bar(symbol: str, at: float, high: float, low: float) -> Bar:
    return Bar(symbol, at, low, high, low, low, 1e6)


def _tree() -> Runtime:
    # stop 3 %, trailing 2 % once 1.5 % up (the shipped rules); take profit out of the way
    settings = ExitsActor.Settings(stop_loss_pct=3, take_profit_pct=20, trailing_pct=2,
                                   trailing_activation_pct=1.5, time_stop_seconds=None)
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("positions", factory=Ledger),
        ChildSpec("executor", factory=lambda: Collector(ExitRequest)),
        ChildSpec("exits", factory=lambda: ExitsActor(settings)),
    )))
    return rt


def _watches(rt: Runtime) -> dict[str, tuple[float, float, float, float | None]]:
    rt.ask("exits", ProxyGetAttr(attr_path=("requests",)))  # every bar told is handled
    published = rt.peek("exits")
    assert isinstance(published, ExitWatches)
    return {row[0]: row[1:] for row in published.watches}


def _requests(rt: Runtime) -> list[tuple[str, str, float]]:
    rt.ask("exits", ProxyGetAttr(attr_path=("requests",)))  # every bar told is handled
    got = rt.ask("executor", ProxyGetAttr(attr_path=("got",)))
    return [(r.symbol, r.reason, r.at) for r in got]


def test_published_watches_follow_highs_requests_and_closed_positions() -> None:
    rt = _tree()
    try:
        rt.ask("positions", Publish(snapshot(1, {"A": ("1", 100.0), "B": ("2", 50.0)})))
        rt.tell("exits", Bars((_bar("A", 60, 101, 100.5), _bar("B", 60, 50.2, 50.1))))
        assert _watches(rt) == {"A": (100.0, 60, 101, None), "B": (50.0, 60, 50.2, None)}
        rt.tell("exits", Bars((_bar("A", 120, 104, 103.9),)))  # a new high; no rule fires
        rt.tell("exits", Bars((_bar("A", 180, 103, 101.5),)))  # 2 % under 104: trailing
        assert _requests(rt) == [("A", "trailing_stop", 180)]
        assert _watches(rt) == {"A": (100.0, 60, 104, 180), "B": (50.0, 60, 50.2, None)}
        rt.ask("positions", Publish(snapshot(2, {"B": ("2", 50.0)})))  # A was sold
        rt.tell("exits", Bars((_bar("B", 240, 50.3, 50.2),)))
        assert _watches(rt) == {"B": (50.0, 60, 50.3, None)}
    finally:
        rt.stop()


def test_a_restarted_exits_actor_keeps_the_high_water_mark() -> None:
    """A rose to 110 before the restart; 107.5 after it is more than 2 % under 110, so the
    trailing stop fires (a restart that forgot the high would not see it: 107.5 is above
    the 1.5 % activation and below any high seen since)."""
    rt = _tree()
    try:
        rt.ask("positions", Publish(snapshot(1, {"A": ("1", 100.0)})))
        rt.tell("exits", Bars((_bar("A", 60, 110, 109),)))
        assert _watches(rt)["A"][2] == 110
        rt.restart_child("exits")
        rt.tell("exits", Bars((_bar("A", 120, 108, 107.5),)))
        assert _requests(rt) == [("A", "trailing_stop", 120)]
    finally:
        rt.stop()
