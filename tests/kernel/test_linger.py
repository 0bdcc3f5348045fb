"""A child stopped for good may linger (``SupervisedActor.on_stopping``): it goes on taking
the replies to its own asks, on its own turns, until it has them or its ``linger`` ends on
the runtime's clock; ordinary messages are refused meanwhile, a restart never lingers, and a
reply's notice is a control message that a full mailbox does not lose."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from supervisor import ChildSpec, ManualClock, Runtime, SupervisedActor, SupervisorSpec
from supervisor.context import Replied
from tests.support.bot_helpers import wait_until

WAIT = 10.0
SHARED = "shared"


class Responder(SupervisedActor):
    """Answers every ask once ``release`` is set (a slow venue or ledger)."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        assert self.release.wait(WAIT), "the test never released the responder"
        return f"answer to {message}"


class Asker(SupervisedActor):
    """Asks the responder on "go" without waiting; lingers while that answer is out, and
    records what it saw (``log``) and when it was asked to stop (``lingering``)."""

    def __init__(self, log: list[str], lingering: threading.Event) -> None:
        super().__init__()
        self.log = log
        self.lingering = lingering
        self.out: dict[int, Any] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Replied):
            future = self.out.pop(message.token)
            self.log.append(future.get(timeout=0))
        elif message == "go":
            self.out[len(self.log) + len(self.out)] = self.ctx.ask_notify(
                "responder", "order", len(self.log) + len(self.out))
            self.log.append("asked")
        return None

    def on_stopping(self) -> bool:
        self.log.append(f"stopping with {len(self.out)} out")
        if self.out:
            self.lingering.set()
        return bool(self.out)

    def on_stop(self) -> None:
        self.log.append("on_stop")


class Mate(SupervisedActor):
    """A thread-mate: answers anything with "pong"."""

    def on_receive(self, message: Any) -> Any:
        return "pong"


@pytest.fixture
def parts() -> Iterator[tuple[list[str], threading.Event, threading.Event]]:
    release = threading.Event()
    yield [], release, threading.Event()
    release.set()


def _tree(log: list[str], release: threading.Event, lingering: threading.Event, *,
          clock: ManualClock | None = None, linger: float = 2.0) -> Runtime:
    rt = Runtime(clock=clock, ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("responder", factory=lambda: Responder(release)),
        ChildSpec("mate", factory=Mate, thread=SHARED),
        ChildSpec("asker", factory=lambda: Asker(log, lingering), thread=SHARED,
                  linger=linger),
    )))
    return rt


def _go(rt: Runtime, log: list[str]) -> None:
    """Have the asker ask, and wait until it has."""
    rt.tell("asker", "go")
    wait_until(lambda: "asked" in log, timeout=WAIT, what="the asker's ask")


def _stop_in_background(rt: Runtime) -> threading.Thread:
    stopper = threading.Thread(target=rt.stop, name="test-stopper", daemon=True)
    stopper.start()
    return stopper


def test_a_stop_for_good_waits_for_the_answer_out_and_acts_on_it_before_on_stop(
        parts: tuple[list[str], threading.Event, threading.Event]) -> None:
    log, release, lingering = parts
    rt = _tree(log, release, lingering, linger=30.0)
    _go(rt, log)
    stopper = _stop_in_background(rt)
    assert lingering.wait(WAIT), "the asker never lingered"
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert log == ["asked", "stopping with 1 out", "answer to order", "stopping with 0 out",
                   "on_stop"]


def test_a_lingering_actor_leaves_its_shared_thread_to_its_mates(
        parts: tuple[list[str], threading.Event, threading.Event]) -> None:
    log, release, lingering = parts
    rt = _tree(log, release, lingering, linger=30.0)
    _go(rt, log)
    stopper = _stop_in_background(rt)
    assert lingering.wait(WAIT), "the asker never lingered"
    # the asker stops first (reverse start order) and lingers; its mate still runs, on
    # the same shared thread, which the linger does not hold
    assert rt.ask("mate", "ping", timeout=WAIT) == "pong"
    assert not rt.try_tell("asker", "go"), "a lingering actor took an ordinary message"
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert log.count("asked") == 1 and log[-1] == "on_stop"


def test_the_linger_ends_on_the_runtimes_clock(
        parts: tuple[list[str], threading.Event, threading.Event]) -> None:
    log, release, lingering = parts
    clock = ManualClock()
    rt = _tree(log, release, lingering, clock=clock, linger=60.0)
    _go(rt, log)
    stopper = _stop_in_background(rt)
    assert lingering.wait(WAIT), "the asker never lingered"
    clock.advance(60.0)  # the answer never comes: the linger's end is the clock's
    # far less than the 60 real seconds it would otherwise take
    wait_until(lambda: "on_stop" in log, timeout=WAIT, what="the linger to end")
    release.set()  # the asker is gone: the responder's stop need not wait out its grace
    stopper.join(WAIT)
    assert not stopper.is_alive(), "the stop did not end when the linger did"
    assert log == ["asked", "stopping with 1 out", "on_stop"]


def test_a_restart_never_lingers(
        parts: tuple[list[str], threading.Event, threading.Event]) -> None:
    log, release, lingering = parts
    rt = _tree(log, release, lingering, linger=30.0)
    try:
        _go(rt, log)
        rt.restart_child("asker")
        assert "on_stop" in log and not any(e.startswith("stopping") for e in log)
        release.set()
    finally:
        rt.stop()


def test_an_actor_that_does_not_linger_stops_as_before(
        parts: tuple[list[str], threading.Event, threading.Event]) -> None:
    log, release, lingering = parts
    rt = _tree(log, release, lingering, linger=0.0)  # linger 0: it is never asked
    _go(rt, log)
    stopper = _stop_in_background(rt)
    wait_until(lambda: "on_stop" in log, timeout=WAIT, what="the asker's stop")
    release.set()  # the asker is gone: the responder's stop need not wait out its grace
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert log == ["asked", "on_stop"]


class Blocked(SupervisedActor):
    """Asks the responder on "go", then blocks its own thread until ``unblock`` (so its
    mailbox fills behind it); records the replies it is told of."""

    def __init__(self, unblock: threading.Event, replies: list[Any],
                 blocking: threading.Event) -> None:
        super().__init__()
        self.unblock = unblock
        self.blocking = blocking
        self.replies = replies
        self.future: Any = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Replied):
            self.replies.append(self.future.get(timeout=0))
        elif message == "go":
            self.future = self.ctx.ask_notify("responder", "order", "token")
            self.blocking.set()
            assert self.unblock.wait(WAIT), "the test never unblocked the actor"
        return None


def test_a_full_mailbox_does_not_lose_the_notice_of_a_reply() -> None:
    release, unblock, blocking = threading.Event(), threading.Event(), threading.Event()
    replies: list[Any] = []
    rt = Runtime(ask_timeout=WAIT)
    rt.start(SupervisorSpec(children=(
        ChildSpec("responder", factory=lambda: Responder(release)),
        ChildSpec("blocked", factory=lambda: Blocked(unblock, replies, blocking),
                  mailbox_limit=1),
    )))
    try:
        rt.tell("blocked", "go")
        assert blocking.wait(WAIT), "the actor never took its message"
        rt.tell("blocked", "filler")  # the mailbox is full now (limit 1)
        answered = rt.ask_future("responder", "probe")  # queued behind "order"
        release.set()
        answered.get(timeout=WAIT)  # so the reply to "order" was set, its notice sent
        unblock.set()
        wait_until(lambda: bool(replies), timeout=WAIT, what="the reply's notice")
        assert replies == ["answer to order"]
    finally:
        unblock.set()
        rt.stop()
