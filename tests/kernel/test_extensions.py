"""Runtime extensions (supervisor.extensions): one per factory and runtime, closed at stop."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor import (
    ChildSpec,
    Intensity,
    ManualClock,
    Runtime,
    StartFailed,
    SupervisedActor,
    SupervisorSpec,
)

CLOSED: list[str] = []  # the order extensions were closed in, across one test


class First:
    """An extension that records its close."""

    def __init__(self) -> None:
        self.closes = 0

    def close(self) -> None:
        self.closes += 1
        CLOSED.append(type(self).__name__)


class Second(First):
    """A second kind, built after :class:`First`."""


class Uses(SupervisedActor):
    """Asks for the extension from its own thread, as an actor of the bot would."""

    def on_receive(self, message: Any) -> Any:
        return self.ctx.runtime.extensions.get(First)


class Broken(SupervisedActor):
    def on_start(self) -> None:
        raise RuntimeError("never starts")


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CLOSED.clear()


def _runtime(*children: ChildSpec) -> Runtime:
    rt = Runtime(clock=ManualClock(), monitor_interval=0)
    rt.start(SupervisorSpec(children=children))
    return rt


def test_one_instance_per_factory_and_runtime_closed_once_at_stop_in_reverse() -> None:
    rt = _runtime(ChildSpec("uses", factory=Uses))
    other = Runtime(clock=ManualClock(), monitor_interval=0)
    first = rt.extensions.get(First)
    assert rt.ask("uses", "get") is first  # the actor's runtime hands out the same one
    second = rt.extensions.get(Second)
    assert other.extensions.get(First) is not first  # another runtime has its own
    rt.stop()
    rt.stop()
    assert (first.closes, second.closes) == (1, 1)
    assert CLOSED == ["Second", "First"]


def test_an_extension_asked_for_after_the_stop_is_closed_at_once() -> None:
    rt = _runtime()
    rt.stop()
    late = rt.extensions.get(First)
    assert late.closes == 1 and rt.extensions.get(First) is late


def test_extensions_are_closed_when_the_root_cannot_start() -> None:
    rt = Runtime(clock=ManualClock(), monitor_interval=0)
    built = rt.extensions.get(First)
    spec = SupervisorSpec(intensity=Intensity(max_restarts=0),  # the first failure escalates
                          children=(ChildSpec("broken", factory=Broken),))
    with pytest.raises(StartFailed):
        rt.start(spec, name="root", shutdown=1.0)
    assert built.closes == 1
